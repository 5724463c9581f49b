"""Boot a built artifact in QEMU and check that the system applied its Ignition config and works.

The expectations come from the Ignition config the artifact delivers to the first boot: the site's config
for live and disk targets, the generated live config for installer targets (whose files include the
installer settings and the destination config). Every file, directory, link, unit and user the config
declares is compared with the booted system (:mod:`coreos_infra.boottest.expect`): content, mode, owner,
link targets, enabled/disabled/masked units and Ignition's presets, users, groups and SSH keys.

With the site's boot-test key (``identity``) the harness logs in as ``core`` over SSH
(:mod:`coreos_infra.boottest.ssh`), reads the system there, and runs the testinfra checks of the base and
every overlay of the host (:mod:`coreos_infra.boottest.checks`). Without it, or when the guest offers no
SSH, the comparison uses the fixture OS's serial report (:func:`qemu.parse_log`).

Offline, the booted system is the project's fixture OS (the real ``ignition`` binary in a busybox
initramfs, or the systemd root of the metal-systemd disk, :mod:`coreos_infra.fixtures`), which reports on
its serial console. A real FCOS artifact (its base did not come from the fixture mirror: ``meta.json``
``base_source.fixture``) prints no markers: readiness is an SSH login and ``systemctl is-system-running
--wait``, then every check runs, ``running``/``podman``/``registry`` ones included.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coreos_infra import ignition, qemu
from coreos_infra.boottest import checks as overlay_checks
from coreos_infra.boottest import ssh as guest_ssh
from coreos_infra.boottest.expect import Expected, GuestState, compare, compare_state, expected_state
from coreos_infra.targets import target as target_class

if TYPE_CHECKING:
    from coreos_infra.pipeline import BuildOutcome

LOG = logging.getLogger("coreos_infra.boottest")
SERIAL_CHECKS = ("system booted", "Ignition succeeded", "live rootfs")  # from the report even with SSH
MARKERS = ("FIXTURE-SSH-READY", "FIXTURE-SSH-FAILED", "FIXTURE-DONE")  # in this order of preference

__all__ = [
    "BootTestReport",
    "Expected",
    "GuestState",
    "boot_artifact",
    "boot_build",
    "compare",
    "delivered_config",
    "expected_state",
]


@dataclass
class BootTestReport:
    artifact: str
    machine: str
    elapsed: float
    passed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    not_applicable: list[str] = field(default_factory=list)  # checks the fixture OS cannot run (and why)
    serial_log: Path | None = None

    @property
    def ok(self) -> bool:
        return not self.failed and bool(self.passed)

    def summary(self) -> str:
        status = "PASS" if self.ok else "FAIL"
        lines = [f"{status} {self.artifact} on {self.machine}: {len(self.passed)} checks passed, "
                 f"{len(self.failed)} failed, {len(self.not_applicable)} not applicable on the fixture OS "
                 f"({self.elapsed:.1f} s)"]  # fmt: skip
        lines += [f"  FAILED {f}" for f in self.failed]
        lines += [f"  not applicable: {n}" for n in self.not_applicable]
        return "\n".join(lines)


# ------------------------------------------------------------------ delivered configs and machines


def delivered_config(kind: str, artifact: Path, fallback: bytes) -> dict[str, Any]:
    """The Ignition config the artifact hands to its first boot (``fallback``: the site's config)."""
    data = target_class(kind)().delivered_config(artifact, fallback)
    return ignition.parse(data, filename=str(artifact))


def is_fixture_artifact(meta: dict[str, Any]) -> bool:
    """Whether the artifact's base came from the offline fixture mirror (then it runs the fixture OS).

    Builds from before ``base_source`` was recorded count as fixture builds (all of them were offline).
    """
    source = meta.get("base_source")
    return bool(source.get("fixture", True)) if isinstance(source, dict) else True


@dataclass(frozen=True)
class _Session:
    """What the SSH part of a boot needs."""

    expected: Expected
    identity: Path | None
    checks: tuple[Path, ...]
    system_timeout: float
    workdir: Path


def boot_artifact(
    meta_path: Path,
    *,
    ignition_bytes: bytes,
    firmware: str = "uefi",
    timeout: float = 600.0,
    log_path: Path | None = None,
    vm: qemu.VmConfig | None = None,
    config: dict[str, Any] | None = None,
    identity: Path | None = None,
    checks: Sequence[Path] = (),
    mac: str | None = None,
    guest_addr: str | None = None,
    real_os: bool | None = None,
    system_timeout: float = 300.0,
) -> BootTestReport:
    """Boot the artifact described by ``meta_path`` and compare the system with its config.

    ``vm`` boots another way than the target's default (a firmware path of the boot matrix, an installed
    disk); ``config`` is the Ignition config that boot must have applied (default: the one the artifact
    delivers to its first boot). ``identity``: the site's boot-test private key (``BuildOutcome.identity``)
    to log in as core; ``checks``: the overlays' testinfra files (``Rendered.checks``). ``mac`` and
    ``guest_addr``: the host's NIC MAC and static address, for an OS that applies its NetworkManager
    keyfile (the systemd fixture root, FCOS). ``real_os``: the artifact runs real FCOS, not the fixture
    OS (default: from meta.json). ``system_timeout`` bounds ``systemctl is-system-running --wait``.
    """
    meta = json.loads(meta_path.read_text())
    kind, arch = meta["kind"], meta["arch"]
    artifact = meta_path.parent / meta["artifacts"][0]["name"]
    if config is None:
        config = delivered_config(kind, artifact, ignition_bytes)
    spec = target_class(kind)()
    allowed = ("uefi",) if arch == "aarch64" else spec.boot.firmware
    machine = qemu.Machine(
        arch, firmware if firmware in allowed else allowed[0], memory_mb=spec.boot.memory_mb
    )
    if vm is not None:
        machine = vm.machine
    log_path = log_path or meta_path.parent / f"boot-test-{machine.arch}-{machine.firmware}.log"
    if real_os is None:
        real_os = not is_fixture_artifact(meta)
    report = BootTestReport(artifact=artifact.name, machine=f"{arch} {machine.firmware}", elapsed=0.0,
                            serial_log=log_path)  # fmt: skip
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="coreos-infra-boottest-") as tmp:
        session = _Session(expected_state(config), identity, tuple(checks), system_timeout, Path(tmp))
        base_vm = vm or spec.boot_vm(artifact, machine, Path(tmp))
        if identity is not None or real_os:
            base_vm, ports = guest_ssh.forward(base_vm, mac=mac, guest_addr=guest_addr)
        else:
            ports = {}
        if real_os:
            _boot_real_os(base_vm, ports, guest_addr, session, report, timeout=timeout, log_path=log_path)
        else:
            _boot_fixture(base_vm, ports, guest_addr, session, report, timeout=timeout, log_path=log_path)
    report.elapsed = time.monotonic() - start
    return report


def boot_build(
    outcome: BuildOutcome,
    *,
    firmware: str = "uefi",
    timeout: float = 600.0,
    log_path: Path | None = None,
    vm: qemu.VmConfig | None = None,
    real_os: bool | None = None,
) -> BootTestReport:
    """:func:`boot_artifact` for a pipeline build: its Ignition, the site's boot-test key, the overlays'
    checks and the host's NIC (MAC, static address)."""
    h = outcome.rendered.host
    return boot_artifact(
        outcome.meta_path,
        ignition_bytes=outcome.request.ignition,
        firmware=firmware,
        timeout=timeout,
        log_path=log_path,
        vm=vm,
        identity=outcome.identity,
        checks=outcome.rendered.checks,
        mac=h.mac if h is not None else None,
        guest_addr=str(h.address) if h is not None and h.address is not None else None,
        real_os=real_os,
    )


def _boot_fixture(
    vm: qemu.VmConfig,
    ports: dict[str, int],
    guest_addr: str | None,
    session: _Session,
    report: BootTestReport,
    *,
    timeout: float,
    log_path: Path,
) -> None:
    """The fixture OS: its serial report, then (when it offers SSH and a key is given) SSH and checks."""
    with qemu.running(vm, until=MARKERS, timeout=timeout, log_path=log_path) as log:
        r = qemu.parse_log(log.text)
        systemd = r.root.get("init") == "systemd"
        offered = r.ssh_ready and session.identity is not None and ports
        if not offered:
            passed, failed = compare(session.expected, r)
            report.passed += passed
            report.failed += failed
            if "FIXTURE-SSH-FAILED" in log.text:
                report.failed.append("SSH offered by the guest (FIXTURE-SSH-FAILED: sshd did not listen)")
            why = "no boot-test key given" if session.identity is None else "the guest offered no SSH"
            if session.checks:
                report.not_applicable.append(f"testinfra checks of {len(session.checks)} overlays: {why}")
            return
        # the boot and Ignition checks come from the serial report, the rest is read over SSH
        passed, failed = compare(session.expected, r)
        report.passed += [c for c in passed if c.startswith(SERIAL_CHECKS)]
        report.failed += [c for c in failed if c.startswith(SERIAL_CHECKS)]
        port = ports.get(guest_addr or "", ports[""]) if systemd else ports[""]
        _over_ssh(port, session, report, "systemd" if systemd else "busybox", GuestState.from_serial(r))


def _boot_real_os(
    vm: qemu.VmConfig,
    ports: dict[str, int],
    guest_addr: str | None,
    session: _Session,
    report: BootTestReport,
    *,
    timeout: float,
    log_path: Path,
) -> None:
    """Real FCOS: no markers; readiness is an SSH login and ``is-system-running --wait``; all checks."""
    if session.identity is None:
        report.failed.append("a real FCOS boot test needs the site's boot-test key (identity) to log in")
        return
    port = ports.get(guest_addr or "", ports[""])
    ssh = guest_ssh.Ssh(port, session.identity)
    with guest_ssh.real_os_running(vm, log_path=log_path) as console:
        banner = guest_ssh.wait_real_os(ssh, console, timeout=timeout)
        report.passed.append(f"SSH login as core with the boot-test key ({banner})")
        _over_ssh(port, session, report, "fcos", None)


def _over_ssh(port: int, session: _Session, report: BootTestReport, os_kind: str,
              serial: GuestState | None) -> None:  # fmt: skip
    """Log in, wait for the system, compare the delivered config, run the overlay checks."""
    assert session.identity is not None
    ssh = guest_ssh.Ssh(port, session.identity)
    guest_ssh.wait_ready(ssh, timeout=180)
    if os_kind != "busybox":
        state = guest_ssh.system_running(ssh, timeout=session.system_timeout)
        (report.passed if state == "running" else report.failed).append(
            f"system is running (systemctl is-system-running --wait: {state})"
        )
    st = guest_ssh.guest_state(ssh, session.expected)
    if serial is not None:
        st = guest_ssh.merge_serial(st, serial)
    missing = None if os_kind == "fcos" else "not installed in the fixture OS (a Debian root without it)"
    passed, failed, na = compare_state(session.expected, st, missing_units=missing)
    report.passed += [f"{p} (ssh)" for p in passed]
    report.failed += [f"{f} (ssh)" for f in failed]
    report.not_applicable += na
    results = overlay_checks.run_checks(session.checks, host=ssh.testinfra_host, identity=session.identity,
                                        os_kind=os_kind, workdir=session.workdir)  # fmt: skip
    report.passed += [f"check {c}" for c in results.passed]
    report.failed += [f"check {c}" for c in results.failed]
    report.not_applicable += results.not_applicable
