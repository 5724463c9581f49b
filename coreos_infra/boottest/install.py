"""Install scenarios, like ``kola testiso``: an installer boots, installs to a blank disk, the disk boots.

:func:`run_install` boots the live installer (the ISO as a CD-ROM or USB disk, or the PXE set) with a
blank, sparse, writable virtio disk added as the *last* virtio disk (``/dev/vda`` when the live medium is
not itself a virtio disk), waits until the fixture installer (``coreos_infra/fixtures/data/installer.sh``)
printed ``FIXTURE-INSTALL-OK`` and rebooted (QEMU runs with ``-no-reboot``, so it exits 0), then boots
the installed disk with the same firmware and checks it with :func:`coreos_infra.boottest.boot_artifact`
against the *destination* config (``ignition-file`` of the delivered live config, usually
``/etc/coreos/dest.ign``). It also checks what the installer config asked for: ``append-karg`` and
``console`` kargs on the installed system's command line, ``delete-karg`` ones gone, the embedded config
byte for byte, ``copy-network`` keyfiles propagated, and that the live system applied its own config.

:func:`run_second_boot` boots an already-booted writable disk again: Ignition must not run (no
``FIXTURE-IGNITION-OK``, no ``ignition.firstboot`` karg, no config left on ``/boot``) and every file the
first boot reported must be there unchanged.

The installed disk stays at :func:`installed_disk` (``<workdir>/installed.raw``) for a second boot.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coreos_infra import ignition, qemu
from coreos_infra.boottest import BootTestReport, boot_artifact, compare, expected_state
from coreos_infra.errors import CoreosInfraError
from coreos_infra.live.customize import INSTALLER_DIR, parse_install_config
from coreos_infra.targets import target as target_class

LOG = logging.getLogger("coreos_infra.boottest.install")

DEST_DISK_NAME = "installed.raw"
DEST_DISK_SIZE = 2 * 1024**3  # sparse; the fixture metal image is 578 MiB (the systemd one 1.1 GiB)
NM_DIR = "/etc/NetworkManager/system-connections"
LIST_KEYS = ("console", "append-karg", "delete-karg", "save-partlabel", "save-partindex")


def installed_disk(workdir: Path) -> Path:
    """Where :func:`run_install` leaves the installed (writable, raw) disk."""
    return workdir / DEST_DISK_NAME


@dataclass
class InstallPlan:
    """What the delivered live config asks the installer to do, and what the installed system must show."""

    settings: dict[str, Any]  # the merged installer config (lists appended, last scalar wins)
    live_config: dict[str, Any] | None  # the live system's own config (None: a karg-driven install)
    dest_bytes: bytes  # the config the installer embeds
    dest_config: dict[str, Any] = field(default_factory=dict)

    @property
    def dest_sha256(self) -> str:
        return hashlib.sha256(self.dest_bytes).hexdigest()


def _file_bytes(config: dict[str, Any], path: str) -> bytes | None:
    for f in (config.get("storage") or {}).get("files") or []:
        if f.get("path") == path:
            contents = f.get("contents") or {}
            source = contents.get("source")
            if source is None:
                return b""
            if not source.startswith("data:"):
                raise CoreosInfraError(f"the live config's {path} is not inline ({source[:40]}...)")
            return ignition.decode_source(source, contents.get("compression"))
    return None


def merge_installer_configs(config: dict[str, Any]) -> dict[str, Any]:
    """The installer configs the live config writes to ``/etc/coreos/installer.d``, merged in lexical
    order as coreos-installer does (and the fixture installer): list options append, scalars: last wins."""
    files = sorted(
        f["path"]
        for f in (config.get("storage") or {}).get("files") or []
        if str(f.get("path", "")).startswith(INSTALLER_DIR + "/")
    )
    merged: dict[str, Any] = {}
    for path in files:
        data = _file_bytes(config, path) or b""
        for key, value in parse_install_config(data, path).items():
            if key in LIST_KEYS:
                merged.setdefault(key, []).extend(value)
            else:
                merged[key] = value
    return merged


def plan_install(meta_path: Path, ignition_bytes: bytes) -> InstallPlan:
    """Read the artifact's delivered config and derive the destination config and installer settings."""
    meta = json.loads(meta_path.read_text())
    artifact = meta_path.parent / meta["artifacts"][0]["name"]
    delivered = target_class(meta["kind"])().delivered_config(artifact, ignition_bytes)
    live = ignition.parse(delivered, filename=str(artifact))
    settings = merge_installer_configs(live)
    ign_file = settings.get("ignition-file")
    if ign_file:
        dest = _file_bytes(live, ign_file)
        if dest is None:
            raise CoreosInfraError(f"{artifact}: ignition-file {ign_file} is not in the live config")
        plan = InstallPlan(settings, live, dest)
    elif settings:
        plan = InstallPlan(settings, live, b"")
    else:  # coreos.inst.install_dev= + coreos.inst.ignition_url=: the delivered config is the destination's
        plan = InstallPlan(settings, None, delivered)
    plan.dest_config = (
        ignition.parse(plan.dest_bytes, filename="destination config") if plan.dest_bytes else {}
    )
    return plan


def _dest_disk(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    with open(path, "wb") as f:
        f.truncate(DEST_DISK_SIZE)
    return path


def _marker(text: str, name: str) -> str | None:
    m = re.search(rf"^{re.escape(name)}(?: (.*))?$", text, re.M)
    return None if m is None else (m.group(1) or "")


def _install_checks(plan: InstallPlan, log: qemu.BootLog) -> tuple[list[str], list[str]]:
    passed: list[str] = []
    failed: list[str] = []

    def check(ok: bool, what: str) -> None:
        (passed if ok else failed).append(what)

    text = log.text
    live = qemu.parse_log(text)
    if plan.live_config is not None:
        lp, lf = compare(expected_state(plan.live_config), live)
        passed += [f"live: {c}" for c in lp]
        failed += [f"live: {c}" for c in lf]
    why = _marker(text, "FIXTURE-INSTALL-FAILED")
    ok = _marker(text, "FIXTURE-INSTALL-OK")
    check(why is None and ok is not None, f"install: the installer finished{': ' + why if why else ''}")
    if plan.dest_bytes:
        embedded = _marker(text, "FIXTURE-INSTALL-IGNITION") or ""
        what = "install: the destination config was embedded byte for byte as ignition/config.ign"
        check(f"sha256={plan.dest_sha256}" in embedded, what)
    check(log.reason == "exit:0" and _marker(text, "FIXTURE-INSTALL-REBOOT") is not None,
          f"install: the live system rebooted after installing ({log.elapsed:.1f} s)")  # fmt: skip
    return passed, failed


def _writes_keyfiles(config: dict[str, Any]) -> bool:
    files = (config.get("storage") or {}).get("files") or []
    return any(str(f.get("path", "")).startswith(NM_DIR + "/") for f in files)


def _installed_checks(
    plan: InstallPlan, install_log: str, installed_log: str
) -> tuple[list[str], list[str]]:
    """The kernel command line, Ignition source and keyfiles of the installed system's first boot."""
    passed: list[str] = []
    failed: list[str] = []

    def check(ok: bool, what: str) -> None:
        (passed if ok else failed).append(what)

    installed_log = installed_log.replace("\r", "")
    r = qemu.parse_log(installed_log)
    kargs = r.kargs
    if plan.dest_bytes:
        check(r.source == "boot", f"installed: Ignition read /boot/ignition/config.ign (source {r.source})")
        removed = re.search(r"^FIXTURE-FIRSTBOOT-COMPLETE removed /boot/ignition$", installed_log, re.M)
        check(
            removed is not None, "installed: the embedded config was removed from /boot after the first boot"
        )
    appended = plan.settings.get("append-karg", [])
    for arg in appended:
        check(arg in kargs, f"installed: karg {arg} on the command line (append-karg)")
    for arg in plan.settings.get("delete-karg", []):
        if arg not in appended:
            check(arg not in kargs, f"installed: karg {arg} removed (delete-karg)")
    consoles = plan.settings.get("console", [])
    for c in consoles:
        check(f"console={c}" in kargs, f"installed: console={c} on the command line (console)")
    if consoles:
        last = [k for k in kargs if k.startswith("console=")][-1:]
        check(last == [f"console={consoles[-1]}"], f"installed: the primary console is {consoles[-1]}")
    if plan.settings.get("copy-network"):
        sent = _marker(install_log, "FIXTURE-INSTALL-NETWORK") or ""
        got = _marker(installed_log, "FIXTURE-FIRSTBOOT-NETWORK") or ""
        n = sent.split()[1] if sent.startswith("copied ") else "?"
        check(n not in ("0", "?"), f"install: {n} NetworkManager keyfiles copied to /boot (copy-network)")
        if _writes_keyfiles(plan.dest_config):  # FCOS propagates them only if Ignition wrote none
            what = (
                "installed: the copied keyfiles were not propagated (Ignition wrote NetworkManager keyfiles)"
            )
            check(got.startswith(f"kept {n} "), what)
        else:
            what = f"installed: {n} NetworkManager keyfiles propagated to {NM_DIR}"
            check(got.startswith(f"copied {n} "), what)
    return passed, failed


def run_install(
    meta_path: Path,
    *,
    ignition_bytes: bytes,
    live_vm: qemu.VmConfig,
    workdir: Path,
    timeout: float,
    log_dir: Path,
) -> BootTestReport:
    """Install with ``live_vm`` onto a blank disk, boot the installed disk, check both (module docs)."""
    plan = plan_install(meta_path, ignition_bytes)
    artifact = json.loads(meta_path.read_text())["artifacts"][0]["name"]
    machine = live_vm.machine
    name = f"{machine.arch} {machine.firmware}"
    disk = _dest_disk(installed_disk(workdir))
    dest = plan.settings.get("dest-device")
    expected_dev = "/dev/vd" + "abcdefghijklmnopqrstuvwxyz"[len(live_vm.disks)]
    if dest is not None and dest.startswith("/dev/vd") and dest != expected_dev:
        raise CoreosInfraError(
            f"{artifact} installs to {dest}, but the blank disk of this VM is {expected_dev} "
            f"(the live VM already has {len(live_vm.disks)} virtio disk(s))"
        )
    vm = dataclasses.replace(
        live_vm,
        extra_args=(*live_vm.extra_args, "-drive", f"if=none,id=dest,format=raw,file={disk}",
                    "-device", "virtio-blk-pci,drive=dest"),
    )  # fmt: skip
    log_dir.mkdir(parents=True, exist_ok=True)
    install_log_path = log_dir / f"install-{machine.arch}-{machine.firmware}.log"
    try:
        log = qemu.boot(vm, until=("FIXTURE-INSTALL-FAILED",), timeout=timeout, log_path=install_log_path)
    except qemu.BootError as e:
        return BootTestReport(artifact, name, 0.0, failed=[f"install: {e}"], serial_log=install_log_path)
    LOG.info("install boot of %s (%s): %.1f s (%s)", artifact, name, log.elapsed, log.reason)
    passed, failed = _install_checks(plan, log)
    if failed:
        return BootTestReport(artifact, name, log.elapsed, passed, failed, serial_log=install_log_path)
    disk_vm = qemu.VmConfig(machine, disks=(disk,), writable_disks=True)
    installed_log_path = log_dir / f"installed-{machine.arch}-{machine.firmware}.log"
    report = boot_artifact(meta_path, ignition_bytes=ignition_bytes, firmware=machine.firmware,
                           timeout=timeout, log_path=installed_log_path, vm=disk_vm,
                           config=plan.dest_config)  # fmt: skip
    LOG.info("first boot of the installed disk (%s): %.1f s", name, report.elapsed)
    ip, if_ = _installed_checks(plan, log.text, installed_log_path.read_text(errors="replace"))
    return dataclasses.replace(
        report,
        machine=name,
        elapsed=log.elapsed + report.elapsed,
        passed=passed + [f"installed: {c}" for c in report.passed] + ip,
        failed=failed + [f"installed: {c}" for c in report.failed] + if_,
    )


def run_second_boot(
    meta_path: Path,
    *,
    disk: Path,
    machine: qemu.Machine,
    expected: BootTestReport | None,
    timeout: float,
    log_dir: Path,
) -> BootTestReport:
    """Boot ``disk`` (already booted once, writable) again: Ignition must not run, nothing changed.

    ``expected`` is the report of the disk's first boot; its serial log gives the files to compare.
    """
    artifact = json.loads(meta_path.read_text())["artifacts"][0]["name"]
    name = f"{machine.arch} {machine.firmware}"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"second-boot-{machine.arch}-{machine.firmware}.log"
    vm = qemu.VmConfig(machine, disks=(disk,), writable_disks=True)
    try:
        log = qemu.boot(vm, timeout=timeout, log_path=log_path)
    except qemu.BootError as e:
        return BootTestReport(artifact, name, 0.0, failed=[f"second boot: {e}"], serial_log=log_path)
    LOG.info("second boot of %s (%s): %.1f s", disk.name, name, log.elapsed)
    r = qemu.parse_log(log.text)
    passed: list[str] = []
    failed: list[str] = []
    not_applicable: list[str] = []

    def check(ok: bool, what: str) -> None:
        (passed if ok else failed).append(what)

    check(r.booted, "second boot: system booted")
    check(not r.ignition_ok and r.ignition_skipped, "second boot: Ignition did not run again")
    check("ignition.firstboot" not in r.kargs, "second boot: no ignition.firstboot karg (the stamp is gone)")
    check(r.source != "boot", "second boot: no Ignition config left on /boot")
    first = None
    if expected is not None and expected.serial_log is not None and expected.serial_log.exists():
        first = qemu.parse_log(expected.serial_log.read_text(errors="replace"))
    if first is None:
        not_applicable.append("second boot: files unchanged: no first-boot log to compare with")
    else:
        check(
            "FIXTURE-PERSISTED restored" in log.text, "second boot: the disk kept what the first boot wrote"
        )
        for path, info in sorted(first.files.items()):
            now = r.files.get(path)
            same = now is not None and (now.sha256, now.mode, now.uid, now.gid) == (
                info.sha256, info.mode, info.uid, info.gid)  # fmt: skip
            check(same, f"second boot: file {path} unchanged")
        for path, target in sorted(first.links.items()):
            check(r.links.get(path) == target, f"second boot: link {path} unchanged")
        for path, d in sorted(first.dirs.items()):
            check(r.dirs.get(path) == d, f"second boot: directory {path} unchanged")
    return BootTestReport(artifact, name, log.elapsed, passed, failed, not_applicable, serial_log=log_path)


def installs(meta: dict[str, Any]) -> bool:
    """Whether a build's ``meta.json`` describes an installer (the iso or pxe target in install mode)."""
    return any((meta.get(kind) or {}).get("mode") == "install" for kind in ("iso", "pxe"))


def install_artifact(
    meta_path: Path,
    *,
    ignition_bytes: bytes,
    firmware: str = "bios",
    timeout: float = 600.0,
    workdir: Path,
    log_dir: Path | None = None,
) -> BootTestReport:
    """:func:`run_install` with the target's own boot (ISO as a CD-ROM, PXE by iPXE over TFTP), e.g. for
    ``invoke boot-test`` of an installer build: ``if installs(meta): report = install_artifact(...)``."""
    meta = json.loads(meta_path.read_text())
    kind, arch = meta["kind"], meta["arch"]
    spec = target_class(kind)()
    allowed = ("uefi",) if arch == "aarch64" else spec.boot.firmware
    machine = qemu.Machine(
        arch, firmware if firmware in allowed else allowed[0], memory_mb=spec.boot.memory_mb
    )
    artifact = meta_path.parent / meta["artifacts"][0]["name"]
    workdir.mkdir(parents=True, exist_ok=True)
    live_vm = spec.boot_vm(artifact, machine, workdir)
    return run_install(meta_path, ignition_bytes=ignition_bytes, live_vm=live_vm, workdir=workdir,
                       timeout=timeout, log_dir=log_dir or meta_path.parent)  # fmt: skip
