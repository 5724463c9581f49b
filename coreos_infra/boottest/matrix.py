"""The boot matrix: every declared boot path of a host, built and booted with bounded parallelism.

``invoke boot-test --all`` is :func:`run_matrix`: it builds each recipe the paths need (through the
caller's ``build`` function, i.e. the project's pipeline), boots every path in a thread pool of
:func:`bounded_jobs` workers (each VM is a QEMU process; the threads only wait on their consoles), and
writes ``junit.xml`` and ``summary.md`` (:mod:`coreos_infra.boottest.junit`) into the output directory.

The scenario of a path selects its runner in :data:`RUNNERS`, the one place that maps scenarios to code:
plain boots go to :func:`run_boot` (``boot_artifact`` with the path's VM, plus a check that the firmware
took the path's medium), ``install``/``ipxe-http-install`` to ``boottest.install.run_install``,
``second-boot`` to ``boottest.install.run_second_boot`` and ``services`` to
``boottest.services.boot_services`` (the host's metal image on the systemd fixture root, built by the
caller's ``MatrixOptions.services``, booted with SSH and every overlay check). A scenario without a
runner is reported as an error ("no runner for scenario X"), never skipped silently.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from coreos_infra import pipeline, qemu
from coreos_infra.boottest import BootTestReport, boot_artifact, install, services
from coreos_infra.boottest.junit import PathResult, write_reports
from coreos_infra.boottest.netboot import HttpServer
from coreos_infra.boottest.paths import BootPath, path_vm
from coreos_infra.errors import CoreosInfraError
from coreos_infra.targets import REGISTRY
from coreos_infra.targets.base import Target
from coreos_infra.targets.base import target as target_class

LOG = logging.getLogger("coreos_infra.boottest.matrix")

ServicesBuild = Callable[[], pipeline.BuildOutcome]  # builds the host's metal image on the systemd root

QEMU_OVERHEAD_MB = 384  # a QEMU process beside its guest's RAM (TCG translation cache, device models)
VM_CPUS = 2  # vCPUs per VM (qemu.Machine default): a TCG VM keeps up to that many host threads busy


@dataclass(frozen=True)
class PathRun:
    """Everything a runner needs for one path."""

    path: BootPath
    meta_path: Path
    ignition: bytes
    spec: Target
    artifact: Path
    machine: qemu.Machine
    workdir: Path  # private scratch directory of this path
    log_dir: Path  # where its serial logs go (kept)
    timeout: float | None  # cap per boot; None: derived from the accelerator
    http: HttpServer | None = None
    services: ServicesBuild | None = None  # builds the services image (MatrixOptions.services)

    @property
    def log_path(self) -> Path:
        return self.log_dir / "serial.log"

    def vm(self) -> qemu.VmConfig:
        return path_vm(self.path, self.spec, self.artifact, self.machine, self.workdir, self.http)

    def cap(self, vm: qemu.VmConfig) -> float:
        return self.timeout if self.timeout is not None else qemu.boot_timeouts(vm, None, None).overall


Runner = Callable[[PathRun], BootTestReport]

# what the console shows when the firmware took the path's medium (x86_64; None: nothing to look for)
_TFTP_SCRIPT = (r"tftp://10\.0\.2\.2/boot\.ipxe\.\.\. ok", "iPXE fetched boot.ipxe over TFTP")
_HTTP_SCRIPT = (r"http://10\.0\.2\.2:\d+/\S+/boot\.ipxe\.\.\. ok", "iPXE fetched boot.ipxe over HTTP")
MEDIUM_EVIDENCE: dict[tuple[str, str], tuple[str, str]] = {
    ("cdrom", "bios"): (r"ISOLINUX \S+ \S+ (?!EHDD)", "SeaBIOS booted ISOLINUX from the CD-ROM"),
    ("cdrom", "uefi"): (r'BdsDxe: starting Boot\w+ "UEFI QEMU DVD-ROM', "OVMF booted the CD-ROM"),
    ("usb-disk", "bios"): (r"ISOLINUX \S+ \S+ EHDD", "SeaBIOS booted ISOLINUX from the USB stick"),
    ("usb-disk", "uefi"): (
        r'BdsDxe: starting Boot\w+ "UEFI QEMU QEMU USB HARDDRIVE',
        "OVMF booted the USB stick",
    ),
    ("ipxe-tftp", "bios"): _TFTP_SCRIPT,
    ("ipxe-tftp", "uefi"): _TFTP_SCRIPT,
    ("ipxe-http", "bios"): _HTTP_SCRIPT,
    ("ipxe-http", "uefi"): _HTTP_SCRIPT,
    ("pxelinux", "bios"): (r"PXELINUX \d", "PXELINUX ran (pxelinux.0 over TFTP)"),
    ("grub", "uefi"): (
        r"grubx64\.efi\.\.\. ok[\s\S]*Welcome to GRUB",
        "GRUB EFI netboot image loaded over TFTP",
    ),
}


def medium_checks(path: BootPath, arch: str, log_text: str) -> tuple[list[str], list[str]]:
    """(passed, failed): did the firmware boot the path's medium (from what the console shows)."""
    evidence = MEDIUM_EVIDENCE.get((path.medium, path.firmware)) if arch == "x86_64" else None
    if evidence is None:
        return [], []
    regex, what = evidence
    return ([what], []) if re.search(regex, log_text) else ([], [what])


def run_boot(run: PathRun) -> BootTestReport:
    """Boot the path's VM once and compare the system with the delivered config."""
    vm = run.vm()
    report = boot_artifact(run.meta_path, ignition_bytes=run.ignition, firmware=run.path.firmware,
                           timeout=run.cap(vm), log_path=run.log_path, vm=vm)  # fmt: skip
    text = run.log_path.read_text(errors="replace") if run.log_path.exists() else ""
    passed, failed = medium_checks(run.path, run.machine.arch, text)
    return dataclasses.replace(report, passed=report.passed + passed, failed=report.failed + failed)


def run_install_path(run: PathRun) -> BootTestReport:
    vm = run.vm()
    return install.run_install(
        run.meta_path,
        ignition_bytes=run.ignition,
        live_vm=vm,
        workdir=run.workdir,
        timeout=run.cap(vm),
        log_dir=run.log_dir,
    )


def run_second_boot_path(run: PathRun) -> BootTestReport:
    """First boot (a writable copy of the disk, or an install), then the second boot of that disk."""
    vm = run.vm()
    if run.path.medium == "disk":
        vm = dataclasses.replace(vm, writable_disks=True)
        first = boot_artifact(
            run.meta_path,
            ignition_bytes=run.ignition,
            firmware=run.path.firmware,
            timeout=run.cap(vm),
            log_path=run.log_dir / "first-boot.log",
            vm=vm,
        )
        disk = vm.disks[0]
    else:
        first = run_install_path(run)
        disk = install.installed_disk(run.workdir)
    if not first.ok:
        return dataclasses.replace(
            first, failed=[f"first boot: {f}" for f in first.failed] or ["first boot failed"]
        )
    second = install.run_second_boot(
        run.meta_path,
        disk=disk,
        machine=run.machine,
        expected=first,
        timeout=run.cap(vm),
        log_dir=run.log_dir,
    )
    return dataclasses.replace(
        second,
        elapsed=first.elapsed + second.elapsed,
        passed=[f"first boot: {p}" for p in first.passed] + second.passed,
        not_applicable=first.not_applicable + second.not_applicable,
    )


def run_services_path(run: PathRun) -> BootTestReport:
    """The host's metal image on the systemd fixture root: SSH, the comparison and every overlay check."""
    if run.services is None:
        raise CoreosInfraError(f"{run.path.name}: no services build given (MatrixOptions.services)")
    outcome = run.services()
    return services.boot_services(outcome, timeout=run.timeout or 900.0, log_path=run.log_path)


# scenario -> runner
RUNNERS: dict[str, Runner] = {
    **dict.fromkeys(
        ("cdrom", "usb-disk", "disk", "4kn", "ipxe-tftp", "ipxe-http", "pxelinux", "grub"), run_boot
    ),
    "install": run_install_path,
    "ipxe-http-install": run_install_path,
    "second-boot": run_second_boot_path,
    "services": run_services_path,
}


def declared_paths(recipes: Sequence[str]) -> tuple[BootPath, ...]:
    """Every boot path the target kinds declare whose recipe is one of ``recipes``, in declaration order."""
    found = [p for kind in sorted(REGISTRY) for p in REGISTRY[kind].boot_paths if p.build_recipe in recipes]
    names = [p.name for p in found]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise CoreosInfraError(f"boot paths declared twice: {', '.join(dupes)}")
    return tuple(found)


def available_memory_mb() -> int:
    """MemAvailable of /proc/meminfo in MiB (a large number where it cannot be read)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 1 << 20


def bounded_jobs(requested: int | None, *, cores: int, free_mb: int, vm_mb: int) -> int:
    """How many VMs to run at once: ``requested`` (or one per ``VM_CPUS`` cores), never more than the
    free memory holds (each VM: its RAM + :data:`QEMU_OVERHEAD_MB`), at least one."""
    by_memory = max(1, free_mb // (vm_mb + QEMU_OVERHEAD_MB))
    wanted = requested if requested and requested > 0 else max(1, cores // VM_CPUS)
    return max(1, min(wanted, by_memory))


def _slug(name: str) -> str:
    return name.replace("/", "-")


BuildFn = Callable[[str], tuple[Path, bytes]]  # recipe -> (meta.json of the build, the site's Ignition)
Progress = Callable[[str], None]


@dataclass(frozen=True)
class MatrixOptions:
    paths: tuple[BootPath, ...]
    out_dir: Path  # artifacts/boot-test
    jobs: int | None = None  # None: bounded_jobs' default
    timeout: float | None = None  # cap per boot; None: from the accelerator
    services: ServicesBuild | None = None  # builds the host's services image (boottest.services)


def _prepare(path: BootPath, built: tuple[Path, bytes], root: Path, opts: MatrixOptions,
             http: HttpServer) -> PathRun:  # fmt: skip
    meta_path, ignition = built
    meta = json.loads(meta_path.read_text())
    spec = target_class(meta["kind"])()
    arch = meta["arch"]
    machine = qemu.Machine(
        arch, path.firmware if arch == "x86_64" else "uefi", memory_mb=spec.boot.memory_mb
    )
    workdir = root / _slug(path.name)
    workdir.mkdir(parents=True)
    log_dir = opts.out_dir / "logs" / _slug(path.name)
    log_dir.mkdir(parents=True, exist_ok=True)
    artifact = meta_path.parent / meta["artifacts"][0]["name"]
    return PathRun(path, meta_path, ignition, spec, artifact, machine, workdir, log_dir, opts.timeout, http,
                   opts.services)  # fmt: skip


def run_path(run: PathRun) -> PathResult:
    """Run one path; every failure becomes its result (one broken path never stops the matrix)."""
    path = run.path
    start = time.monotonic()
    runner = RUNNERS.get(path.scenario)
    if runner is None:
        return PathResult(path.name, path.target, "error", message=f"no runner for scenario {path.scenario}")
    try:
        report = runner(run)
    except qemu.BootError as e:
        log = run.log_path if run.log_path.exists() else None
        return PathResult(path.name, path.target, "fail", time.monotonic() - start, message=e.headline,
                          failed=[f"boot: {e.reason}"], serial_log=log)  # fmt: skip
    except CoreosInfraError as e:
        return PathResult(
            path.name, path.target, "error", time.monotonic() - start, message=str(e).splitlines()[0]
        )
    except Exception as e:  # a harness bug in one runner must not hide the other paths' results
        LOG.exception("boot path %s crashed", path.name)
        return PathResult(
            path.name, path.target, "error", time.monotonic() - start, message=f"{type(e).__name__}: {e}"
        )
    status = "pass" if report.ok else "fail"
    message = "" if report.ok else (report.failed[0] if report.failed else "no check passed")
    return PathResult(
        path.name,
        path.target,
        status,
        time.monotonic() - start,
        list(report.passed),
        list(report.failed),
        list(report.not_applicable),
        message,
        report.serial_log,
    )


def _started(run: PathRun, progress: Progress) -> PathResult:
    progress(f"      start {run.path.name} ({run.machine.arch}, log {run.log_path})")
    return run_path(run)


def _builds(
    paths: Sequence[BootPath], build: BuildFn, progress: Progress
) -> dict[str, tuple[Path, bytes] | str]:
    built: dict[str, tuple[Path, bytes] | str] = {}
    for recipe in dict.fromkeys(p.build_recipe for p in paths):
        progress(f"building {recipe}")
        try:
            built[recipe] = build(recipe)
        except CoreosInfraError as e:
            built[recipe] = f"build of {recipe} failed: {str(e).splitlines()[0]}"
    return built


def run_matrix(opts: MatrixOptions, build: BuildFn, progress: Progress = LOG.info) -> list[PathResult]:
    """Build, boot every path of ``opts``, write the reports; the results in path order."""
    lock = threading.Lock()

    def say(line: str) -> None:  # one line at a time from the boot threads
        with lock:
            progress(line)

    built = _builds(opts.paths, build, say)
    vm_mb = max([REGISTRY[k].boot.memory_mb for k in REGISTRY] or [1536])
    jobs = bounded_jobs(opts.jobs, cores=os.cpu_count() or 1, free_mb=available_memory_mb(), vm_mb=vm_mb)
    say(f"booting {len(opts.paths)} paths, {jobs} at a time (accelerator: {qemu.pick_accel('x86_64')})")
    results: dict[str, PathResult] = {}
    with (
        tempfile.TemporaryDirectory(prefix="coreos-infra-matrix-") as tmp,
        HttpServer(Path(tmp) / "http") as http,
    ):
        runs: list[PathRun] = []
        for path in opts.paths:
            b = built[path.build_recipe]
            if isinstance(b, str):
                results[path.name] = PathResult(path.name, path.target, "error", message=b)
            else:
                runs.append(_prepare(path, b, Path(tmp), opts, http))
        with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="boot") as pool:
            futures = {pool.submit(_started, run, say): run.path for run in runs}
            for n, future in enumerate(as_completed(futures), len(results) + 1):
                r = future.result()
                results[r.name] = r
                why = f": {r.message}" if r.message and not r.ok else ""
                say(f"[{n}/{len(opts.paths)}] {r.status.upper():5} {r.name} ({r.seconds:.0f} s){why}")
    ordered = [results[p.name] for p in opts.paths]
    write_reports(ordered, opts.out_dir)
    return ordered
