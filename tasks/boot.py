"""Booting what was built: the boot test, a manual QEMU boot, and the end-to-end demo."""

from __future__ import annotations

import sys
from pathlib import Path

from invoke import Context, Exit, task

from coreos_infra.exits import exits_on_errors
from tasks._common import ROOT, SOURCE_HELP, outcomes, recipes
from tasks.dev import fixtures


@task(
    iterable=["host", "path"],
    help={
        "target": f"target recipe to build and boot ({recipes()})",
        "site": "site profile (default: the only/first site)",
        "host": "host of the site (repeatable); default: a site-wide image",
        "all_hosts": "boot-test one image per host of the site",
        "firmware": "x86_64 firmware: uefi (OVMF) or bios (SeaBIOS); aarch64 always boots AAVMF",
        "timeout": "seconds a boot may take at most (default: derived from the accelerator and host load)",
        "all": "boot every declared boot path (target x firmware x scenario) of the host; writes "
        "artifacts/boot-test/junit.xml and summary.md",
        "jobs": "--all: VMs at once (default: one per 2 cores, bounded by free memory)",
        "path": "--all: only the paths matching this pattern, e.g. 'pxe/*' or '*/uefi/*' (repeatable)",
        **SOURCE_HELP,
    },
)
@exits_on_errors
def boot_test(
    c: Context,
    target: str = "",
    site: str = "",
    host: list[str] | None = None,
    all_hosts: bool = False,
    firmware: str = "uefi",
    timeout: float = 0.0,
    all: bool = False,
    jobs: int = 0,
    path: list[str] | None = None,
    offline: bool = False,
    stream_base_url: str = "",
    keyring: str = "",
    insecure: bool = False,
    firmware_url: str = "",
    force: bool = False,
) -> None:
    """Build (if needed) and boot an artifact in QEMU; check that the system applied its Ignition config.

    Every file, directory, link, unit and user the delivered config declares is compared with what the booted
    system reports; with the site's boot-test key (boot_test.ssh_key, else a throw-away key in
    artifacts/keys) the harness logs in as core over SSH and runs the base's and overlays' testinfra
    checks. KVM is used when it works, TCG otherwise. The serial log is kept beside the artifact.

    With --all, every boot path the project claims for the host is built and booted (ISO as CD and USB
    stick under SeaBIOS and OVMF, installs, iPXE TFTP/HTTP, PXELINUX, GRUB netboot, metal BIOS/UEFI/4Kn,
    rpi4 under AAVMF, ...; see qemu/README.md "Boot paths"), --jobs at a time; one JUnit testcase per
    path named <target>/<bios|uefi>/<scenario>. Exit code 1 when any path fails.
    """
    if all:
        source = (offline, stream_base_url, keyring, insecure, firmware_url)
        _boot_matrix(site, host, jobs, path, timeout, source, force)
        return
    from coreos_infra.boottest import boot_build

    failed = 0
    source_args = (offline, stream_base_url, keyring, insecure, firmware_url)
    for outcome in outcomes(target, site, host, all_hosts, source_args, force):
        report = boot_build(outcome, firmware=firmware, timeout=timeout or 600.0)
        print(report.summary())
        print(f"  serial log: {report.serial_log}")
        failed += 0 if report.ok else 1
    if failed:
        raise Exit(code=1)


def _boot_matrix(
    site: str,
    host: list[str] | None,
    jobs: int,
    patterns: list[str] | None,
    timeout: float,
    source_args: tuple[bool, str, str, bool, str],
    force: bool,
) -> None:
    """``boot-test --all``: the host's boot paths, built through the pipeline, booted by boottest.matrix."""
    from coreos_infra.boottest.matrix import MatrixOptions, declared_paths, run_matrix
    from coreos_infra.boottest.paths import select
    from coreos_infra.boottest.services import build_services
    from coreos_infra.paths import artifacts_dir
    from coreos_infra.pipeline import BuildOutcome
    from coreos_infra.recipes import load_project
    from coreos_infra.taskplan import build_plan, source_of

    if host and len(host) > 1:
        print("Error: --all boots the paths of one host (give --host once)", file=sys.stderr)
        raise Exit(code=2)
    paths = select(declared_paths(sorted(load_project(ROOT).targets)), tuple(patterns or ()))
    offline = source_args[0]
    if not offline and any(p.scenario == "services" for p in paths):
        # the services image is built on the fixture mirror's systemd root; on real FCOS the metal paths
        # themselves run every check over SSH
        print("note: the services paths run on the offline fixture mirror only (--offline); not booted")
        paths = tuple(p for p in paths if p.scenario != "services")

    def build(recipe: str) -> tuple[Path, bytes]:
        (outcome,) = outcomes(recipe, site, host, False, source_args, force)
        return outcome.meta_path, outcome.request.ignition

    def services() -> BuildOutcome:
        return build_services(build_plan(ROOT, "metal", site, host[0] if host else None,
                                         source_of(*source_args), force))  # fmt: skip

    out = artifacts_dir(ROOT) / "boot-test"
    opts = MatrixOptions(paths, out, jobs=jobs or None, timeout=timeout or None, services=services)
    results = run_matrix(opts, build, lambda line: print(line, flush=True))
    failed = [r for r in results if not r.ok]
    print(f"\nboot-test --all: {len(results) - len(failed)}/{len(results)} paths passed; "
          f"{out / 'junit.xml'}, {out / 'summary.md'}")  # fmt: skip
    if failed:
        raise Exit(code=1)


@task(
    help={
        "targets": "comma-separated targets to build and boot-test (default: usb,pxe,metal,rpi4)",
        "host": "host of the lab site to build for",
    }
)
@exits_on_errors
def demo(c: Context, targets: str = "usb,pxe,metal,rpi4", host: str = "dns1") -> None:
    """The whole path on the offline mirror: fixtures → nightly (build, boot-test, publish) → download.

    Publishes into the local store artifacts/store/ (signed with a throwaway demo key, generated on first
    use), downloads one image back and verifies it, then prints where every image can be downloaded.
    """
    from coreos_infra.demo import DemoOptions, run_demo
    from coreos_infra.log import setup_logging
    from coreos_infra.nightly.matrix import split_names
    from coreos_infra.paths import project_root
    from coreos_infra.summary import nightly_item_line

    setup_logging()
    fixtures(c)
    d = run_demo(DemoOptions(root=project_root(), targets=split_names(targets), host=host),
                 on_result=lambda r: print(nightly_item_line(r), flush=True))  # fmt: skip
    n = d.job.summary.counts()
    counts = f"{n['passed']} passed, {n['failed']} failed, {n['skipped']} skipped"
    print(f"\nnightly: {counts}: {d.job.files.markdown}")
    key = "GENERATED a throwaway demo signing key" if d.new_key else "signed with the throwaway demo key"
    print(f"store: {d.store} ({key} in {d.key_dir}; never use it for real images)")
    if d.downloaded is not None:
        print(f"downloaded {d.download_target} build {d.downloaded.build.build_id[:16]} back into "
              f"{d.downloaded.dest}: signed SHA256SUMS and every SHA-256 verified")  # fmt: skip
    print(f"download page: {d.page}")
    for target, paths in sorted(d.latest.items()):
        for path in paths:
            print(f"  {target:<6} {path}")
    first = d.download_target or next(iter(sorted(d.latest)), "usb")
    print(f"fetch one: invoke download --site lab --host {host} --target {first}")
    if d.job.summary.failed:
        raise Exit(code=1)


@task(
    iterable=["initrd"],
    help={
        "iso": "boot this ISO as a CD-ROM",
        "disk": "boot this raw disk image (virtio-blk, snapshot mode: the file is never modified)",
        "kernel": "direct kernel boot: the kernel image",
        "initrd": "direct kernel boot: an initrd (repeatable; concatenated in order)",
        "append": "direct kernel boot: the kernel command line",
        "arch": "guest architecture: x86_64 (default) or aarch64",
        "firmware": "x86_64 firmware: uefi (OVMF, default) or bios (SeaBIOS); aarch64 always uses AAVMF",
        "sector_size": "logical sector size of --disk (4096 for 4Kn images)",
        "timeout": "seconds to wait for FIXTURE-DONE",
        "log": "also write the serial console to this file",
    },
)
@exits_on_errors
def qemu_boot(
    c: Context,
    iso: str = "",
    disk: str = "",
    kernel: str = "",
    initrd: list[str] | None = None,
    append: str = "",
    arch: str = "x86_64",
    firmware: str = "uefi",
    sector_size: int = 512,
    timeout: float = 600.0,
    log: str = "",
) -> None:
    """Boot an image carrying the fixture OS in QEMU and print what it reported (Ignition, files, users).

    The building block of the boot tests, for trying an artifact by hand: KVM when usable, else TCG;
    fails fast on GRUB's "Press any key", a kernel panic or a timeout. Exit code 1 if Ignition failed.
    """
    from coreos_infra.log import setup_logging
    from coreos_infra.qemu import Machine, VmConfig, boot, parse_log
    from coreos_infra.summary import fixture_boot_lines

    setup_logging()
    if sum(bool(x) for x in (iso, disk, kernel)) != 1:
        print("Error: give exactly one of --iso, --disk, --kernel", file=sys.stderr)
        raise Exit(code=2)
    vm = VmConfig(
        Machine(arch, firmware if arch == "x86_64" else "uefi"),
        kernel=Path(kernel) if kernel else None,
        initrds=tuple(Path(p) for p in initrd or []),
        append=append,
        cdrom=Path(iso) if iso else None,
        disks=(Path(disk),) if disk else (),
        disk_sector_size=sector_size,
    )
    result = boot(vm, timeout=timeout, log_path=Path(log) if log else None)
    r = parse_log(result.text)
    print("\n".join(fixture_boot_lines(result, r)))
    if not r.ok:
        raise Exit(code=1)
