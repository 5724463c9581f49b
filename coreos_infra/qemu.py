"""QEMU boot harness: machine profiles, accelerator and firmware lookup, a serial-marker runner, and the
parser of the fixture OS's serial protocol.

Typical use (see ``tests/conftest.py`` for the pytest fixtures built on it)::

    vm = VmConfig(Machine("x86_64", "uefi"), cdrom=iso)
    log = boot(vm, timeout=120)               # waits for FIXTURE-DONE (or QEMU exit)
    result = parse_log(log.text)              # FixtureResult
    assert result.ignition_ok and result.files["/etc/hostname"].text == "node1\\n"

Profiles:

- ``Machine("x86_64", "bios")``: q35 + SeaBIOS; ``Machine("x86_64", "uefi")``: q35 + OVMF (pflash code +
  a per-boot copy of the vars); ``Machine("aarch64", "uefi")``: virt + AAVMF. A direct kernel boot
  (``kernel=``) ignores the firmware kind.
- The accelerator is chosen at run time (:func:`pick_accel`): KVM only when ``/dev/kvm`` is usable, the
  guest architecture equals the host's and, on x86, the CPU advertises vmx/svm (nested "PVM" kvm has
  /dev/kvm but cannot run ordinary guests); otherwise TCG. ``COREOS_INFRA_ACCEL=kvm|tcg`` overrides.

The runner (:func:`boot`, :func:`running`) first checks the media (:mod:`coreos_infra.preflight`: missing
files, wrong architecture, 4Kn vs 512-byte sectors), then streams the serial console, stops successfully
on the first ``until`` marker or when QEMU exits, and fails fast (:class:`BootError` with a ``reason`` and
the log tail) on the patterns of :mod:`coreos_infra.bootwatch` (kernel panic, Oops, emergency shell,
Ignition failure, firmware "no bootable device", GRUB errors), a QEMU error exit, no console output for
the idle limit, or the overall cap; both limits derive from the accelerator (:class:`Timeouts`).
SeaBIOS prints on the serial port (``-M q35,graphics=off`` turns on its serial console), so its "No
bootable device." and iPXE's text under SeaBIOS reach the runner too.
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import select
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import Popen

from coreos_infra import preflight
from coreos_infra.bootwatch import FAIL_PATTERNS, FailPattern, Timeouts, active_patterns
from coreos_infra.errors import CoreosInfraError
from coreos_infra.fixtureproto import FileInfo, FixtureResult, User, parse_log
from coreos_infra.log import LOG
from coreos_infra.run import find_binary, spawn

__all__ = ["FAIL_PATTERNS", "BootError", "BootLog", "FailPattern", "FileInfo", "FixtureResult", "Machine",
           "Timeouts", "User", "VmConfig", "boot", "parse_log", "running"]  # fmt: skip
DEFAULT_UNTIL = ("FIXTURE-DONE",)

# Firmware images: (code, vars template) candidates, Debian first, then Fedora/Arch/SUSE names.
FIRMWARE: dict[str, list[tuple[str, str]]] = {
    "x86_64": [
        ("/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd"),
        ("/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/OVMF/OVMF_VARS.fd"),
        ("/usr/share/edk2/ovmf/OVMF_CODE.fd", "/usr/share/edk2/ovmf/OVMF_VARS.fd"),
        ("/usr/share/edk2/x64/OVMF_CODE.4m.fd", "/usr/share/edk2/x64/OVMF_VARS.4m.fd"),
        ("/usr/share/qemu/ovmf-x86_64-code.bin", "/usr/share/qemu/ovmf-x86_64-vars.bin"),
    ],
    "aarch64": [
        ("/usr/share/AAVMF/AAVMF_CODE.fd", "/usr/share/AAVMF/AAVMF_VARS.fd"),
        ("/usr/share/edk2/aarch64/QEMU_EFI-pflash.raw", "/usr/share/edk2/aarch64/vars-template-pflash.raw"),
        ("/usr/share/edk2/aarch64/QEMU_CODE.fd", "/usr/share/edk2/aarch64/QEMU_VARS.fd"),
    ],
}
QEMU_BINARIES = {"x86_64": "qemu-system-x86_64", "aarch64": "qemu-system-aarch64"}
HOST_ARCHES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}
SERIAL_CONSOLE = {"x86_64": "ttyS0,115200n8", "aarch64": "ttyAMA0,115200n8"}


class EmulatorCrash(CoreosInfraError):
    """QEMU itself died from a signal (SIGSEGV/SIGABRT in TCG): a host-side fault, not a guest failure."""


class EarlyStall(EmulatorCrash):
    """The guest went silent right after the kernel started ``/init`` (seen once in a few hundred TCG
    boots on a loaded host: no output at all from init, which prints within a second otherwise)."""


STALL_AFTER = re.compile(r"Run /\S*init as init process\s*$")


class BootError(CoreosInfraError):
    """A VM did not reach its success marker; ``log`` holds the serial output so far, ``reason`` a short
    cause (``kernel panic``, ``no console output``, ``timeout``, ``qemu exit``, ``missing file`` ...)."""

    def __init__(self, message: str, log: str, *, reason: str = "boot failed") -> None:
        tail = "\n".join(log.splitlines()[-40:])
        super().__init__(f"{message}\n--- last serial lines ---\n{tail}" if log else message)
        self.log = log
        self.reason = reason
        self.headline = message


@dataclass(frozen=True)
class Firmware:
    code: Path
    vars_template: Path


def find_firmware(arch: str) -> Firmware:
    """The UEFI firmware for ``arch`` (OVMF or AAVMF); ``COREOS_INFRA_OVMF_CODE``/``_VARS`` override."""
    env_code, env_vars = os.environ.get("COREOS_INFRA_OVMF_CODE"), os.environ.get("COREOS_INFRA_OVMF_VARS")
    if arch == "x86_64" and env_code and env_vars:
        return Firmware(Path(env_code), Path(env_vars))
    for code, vars_ in FIRMWARE[arch]:
        if Path(code).is_file() and Path(vars_).is_file():
            return Firmware(Path(code), Path(vars_))
    pkg = "ovmf" if arch == "x86_64" else "qemu-efi-aarch64"
    raise CoreosInfraError(f"no UEFI firmware found for {arch}", hint=f"install the Debian package {pkg}")


def host_arch() -> str:
    return HOST_ARCHES.get(platform.machine(), platform.machine())


def kvm_usable(arch: str) -> bool:
    """Whether hardware KVM can run an ``arch`` guest here."""
    if host_arch() != arch or not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False
    if arch == "x86_64":
        try:
            flags = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
        return bool(re.search(r"^flags\s*:.*\b(vmx|svm)\b", flags, re.M))
    return True


def pick_accel(arch: str) -> str:
    forced = os.environ.get("COREOS_INFRA_ACCEL")
    if forced in ("kvm", "tcg"):
        return forced
    return "kvm" if kvm_usable(arch) else "tcg"


@dataclass(frozen=True)
class Machine:
    """A machine profile: architecture, firmware kind, size."""

    arch: str = "x86_64"
    firmware: str = "uefi"  # "uefi" or "bios" (x86_64 only)
    memory_mb: int = 1024
    cpus: int = 2

    def __post_init__(self) -> None:
        if self.arch not in QEMU_BINARIES:
            raise CoreosInfraError(f"unsupported machine architecture {self.arch!r} (x86_64, aarch64)")
        if self.firmware not in ("uefi", "bios") or (self.arch == "aarch64" and self.firmware == "bios"):
            raise CoreosInfraError(f"unsupported firmware {self.firmware!r} for {self.arch}")

    @property
    def console(self) -> str:
        """The kernel ``console=`` value for this machine's first serial port."""
        return SERIAL_CONSOLE[self.arch]


@dataclass(frozen=True)
class VmConfig:
    """What to boot. Exactly one of kernel / cdrom / disks / pxe is the boot source."""

    machine: Machine = field(default_factory=Machine)
    kernel: Path | None = None
    initrds: tuple[Path, ...] = ()  # concatenated (QEMU cannot take several)
    append: str = ""
    cdrom: Path | None = None
    disks: tuple[Path, ...] = ()  # virtio, snapshot=on unless writable_disks
    disk_format: str = "raw"  # of every disk: raw or qcow2
    writable_disks: bool = False
    disk_sector_size: int = 512  # 4096 for 4Kn images (metal4k): logical and physical block size
    disk_as_cdrom_device: bool = False
    usb_disks: tuple[Path, ...] = ()  # usb-storage on a qemu-xhci controller (read-only, snapshot)
    net: bool = False
    ssh_port: int | None = None  # host port forwarded to guest 22
    tftp_dir: Path | None = None
    bootfile: str | None = None  # TFTP bootfile (PXE/iPXE script)
    pxe: bool = False
    extra_args: tuple[str, ...] = ()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_ssh(port: int, *, timeout: float = 120.0, host: str = "127.0.0.1") -> str:
    """Poll a forwarded SSH port until the server's ``SSH-`` banner arrives; return the banner line.

    QEMU's user-mode network accepts host connections even before the guest listens (and then closes
    them), so "connected" means nothing until the banner is read.
    """
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=5) as s:
                s.settimeout(5)
                banner = s.recv(256)
            if banner.startswith(b"SSH-"):
                return banner.split(b"\r\n")[0].decode(errors="replace")
            last = f"unexpected banner {banner[:40]!r}" if banner else "closed without a banner"
        except OSError as e:
            last = str(e)
        time.sleep(1)
    raise CoreosInfraError(f"no SSH server on {host}:{port} after {timeout:.0f} s ({last})")


def _machine_args(vm: VmConfig, accel: str, uefi: bool, workdir: Path) -> list[str]:
    m = vm.machine
    argv = [find_binary(QEMU_BINARIES[m.arch], reason=f"boot {m.arch} VMs"), "-accel", accel]
    if m.arch == "x86_64":
        # graphics=off: SeaBIOS enables its serial console, so its messages (and option ROMs' text,
        # e.g. iPXE's) reach the serial port the runner reads
        argv += ["-M", "q35" if uefi else "q35,graphics=off"]
        if accel == "kvm":
            argv += ["-cpu", "host"]
    else:
        argv += ["-M", "virt", "-cpu", "host" if accel == "kvm" else "cortex-a72"]
    argv += ["-m", str(m.memory_mb), "-smp", str(m.cpus), "-nodefaults", "-display", "none",
             "-serial", "stdio", "-no-reboot",
             # entropy from the host: without it, key generation at first boot (dropbearkey, sshd) can
             # stall for minutes on a loaded host (q35 and virt both have PCI)
             "-object", "rng-random,filename=/dev/urandom,id=rng0",
             "-device", "virtio-rng-pci,rng=rng0"]  # fmt: skip
    if uefi:
        fw = find_firmware(m.arch)
        vars_copy = workdir / "efivars.fd"
        shutil.copyfile(fw.vars_template, vars_copy)
        argv += ["-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={fw.code}",
                 "-drive", f"if=pflash,format=raw,unit=1,file={vars_copy}"]  # fmt: skip
    return argv


def _direct_args(vm: VmConfig, workdir: Path) -> list[str]:
    assert vm.kernel is not None
    argv = ["-kernel", str(vm.kernel), "-append", vm.append]
    if vm.initrds:
        combined = workdir / "initrd.img"
        with open(combined, "wb") as out:
            for p in vm.initrds:
                data = p.read_bytes()
                out.write(data + b"\x00" * (-len(data) % 4))
        argv += ["-initrd", str(combined)]
    return argv


def _media_args(vm: VmConfig) -> list[str]:
    """CD, USB disks, disks and the NIC, in boot order (the first bootable one wins)."""
    argv: list[str] = []
    bootindex = 0
    if vm.cdrom is not None:
        argv += ["-drive", f"if=none,id=cd0,media=cdrom,readonly=on,format=raw,file={vm.cdrom}"]
        if vm.machine.arch == "x86_64":
            argv += ["-device", f"ide-cd,drive=cd0,bootindex={bootindex}"]
        else:
            argv += [
                "-device",
                "virtio-scsi-pci,id=scsi0",
                "-device",
                f"scsi-cd,drive=cd0,bootindex={bootindex}",
            ]
        bootindex += 1
    if vm.usb_disks:
        argv += ["-device", "qemu-xhci,id=xhci"]
    for i, disk in enumerate(vm.usb_disks):
        usb = f"usb-storage,bus=xhci.0,drive=u{i},removable=on,bootindex={bootindex}"
        argv += ["-drive", f"if=none,id=u{i},format=raw,readonly=on,file={disk}", "-device", usb]
        bootindex += 1
    sectors = vm.disk_sector_size
    blocks = f",logical_block_size={sectors},physical_block_size={sectors}" if sectors != 512 else ""
    for i, disk in enumerate(vm.disks):
        snap = "" if vm.writable_disks else ",snapshot=on"
        argv += ["-drive", f"if=none,id=d{i},format={vm.disk_format},file={disk}{snap}",
                 "-device", f"virtio-blk-pci,drive=d{i},bootindex={bootindex}{blocks}"]  # fmt: skip
        bootindex += 1
    if vm.net or vm.ssh_port or vm.pxe:
        netdev = "user,id=n0"
        if vm.ssh_port:
            netdev += f",hostfwd=tcp:127.0.0.1:{vm.ssh_port}-:22"
        if vm.tftp_dir is not None:
            netdev += f",tftp={vm.tftp_dir}"
        if vm.bootfile:
            netdev += f",bootfile={vm.bootfile}"
        nic = "virtio-net-pci,netdev=n0"
        nic += f",bootindex={bootindex}" if vm.pxe else ",romfile="
        argv += ["-netdev", netdev, "-device", nic]
    return argv


def qemu_command(vm: VmConfig, workdir: Path) -> list[str]:
    """The full QEMU argv for ``vm``; per-boot files (vars copy, combined initrd) go into ``workdir``."""
    m = vm.machine
    accel = pick_accel(m.arch)
    direct = vm.kernel is not None
    uefi = not direct and (m.firmware == "uefi" or m.arch == "aarch64")
    argv = _machine_args(vm, accel, uefi, workdir)
    if direct:
        argv += _direct_args(vm, workdir)
    return argv + _media_args(vm) + list(vm.extra_args)


@dataclass
class BootLog:
    """What a boot printed and how it ended."""

    text: str
    reason: str  # "marker:<m>", "exit:<rc>"
    elapsed: float
    argv: list[str]


class _Console:
    """Incremental reader of QEMU's stdout (the serial console)."""

    def __init__(self, proc: Popen[bytes], log_path: Path | None) -> None:
        self.proc = proc
        self.buf = bytearray()
        self.log_file = open(log_path, "wb") if log_path else None  # noqa: SIM115

    @property
    def text(self) -> str:
        return self.buf.decode(errors="replace").replace("\r\n", "\n").replace("\r", "")

    def pump(self, wait: float) -> bool:
        """Read what is available (waiting at most ``wait`` s); False at end of file."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        ready, _, _ = select.select([fd], [], [], wait)
        if not ready:
            return True
        chunk = os.read(fd, 65536)
        if not chunk:
            return False
        self.buf += chunk
        if self.log_file:
            self.log_file.write(chunk)
            self.log_file.flush()
        return True

    def close(self) -> None:
        if self.log_file:
            self.log_file.close()


@dataclass
class _Watch:
    """What the runner waits for and how long."""

    until: Sequence[str]
    patterns: tuple[FailPattern, ...]
    limits: Timeouts
    argv: list[str]
    grace: float = 3.0  # after a failure pattern: keep reading this long for context (the reason line)


def _fail(console: _Console, watch: _Watch, pattern: FailPattern, line: str) -> BootError:
    """Read a little more (what follows a panic or an Ignition failure explains it), then the error."""
    end = time.monotonic() + watch.grace
    last = time.monotonic()
    while time.monotonic() < end and time.monotonic() - last < 1.0:
        size = len(console.buf)
        if not console.pump(0.2):
            break
        if len(console.buf) != size:
            last = time.monotonic()
    text = console.text
    found = pattern.find(text) or line
    if pattern.reason == "Ignition failed" and "FIXTURE-IGNITION-FAILED" in text:
        found = next(ln for ln in text.splitlines() if ln.startswith("FIXTURE-IGNITION-FAILED"))
    return BootError(f"boot failed: {pattern.reason}: {found!r} on the serial console", text,
                     reason=pattern.reason)  # fmt: skip


def _wait_for(
    console: _Console,
    until: Sequence[str],
    timeout: float | Timeouts,
    start: float,
    argv: list[str],
    patterns: Sequence[FailPattern] = FAIL_PATTERNS,
) -> str:
    """Pump until a marker, QEMU exit, a failure pattern, silence or the cap; return the end reason."""
    limits = timeout if isinstance(timeout, Timeouts) else Timeouts(timeout, timeout)
    watch = _Watch(until, active_patterns(tuple(patterns), tuple(until)), limits, argv)
    scanned = 0  # lines before this offset were checked already
    last_output = time.monotonic()
    while True:
        size = len(console.buf)
        alive = console.pump(0.25)
        now = time.monotonic()
        if len(console.buf) != size:
            last_output = now
        text = console.text
        fresh = text[scanned:]
        for pat in watch.patterns:
            line = pat.find(fresh)
            if line is not None:
                raise _fail(console, watch, pat, line)
        for marker in until:
            found = re.search(rf"(^|\n){re.escape(marker)}(\s|$)", text)
            if found:
                _finish_line(console, found.end())
                return f"marker:{marker}"
        scanned = max(scanned, text.rfind("\n", 0, len(text)) + 1)
        if not alive:
            rc = console.proc.wait()
            if rc < 0:
                raise EmulatorCrash(f"QEMU was killed by signal {-rc}: {' '.join(argv)}")
            if rc != 0:
                raise BootError(f"QEMU exited with code {rc}: {' '.join(argv)}", text, reason="qemu exit")
            return "exit:0"
        stall = max(10.0, limits.idle / 4)
        if now - last_output > stall and STALL_AFTER.search(text[-200:]):
            raise EarlyStall(f"the guest printed nothing for {stall:.0f} s after the kernel started /init")
        if now - last_output > limits.idle:
            raise BootError(f"no console output for {limits.idle:.0f} s (waiting for {' or '.join(until)})",
                            text, reason="no console output")  # fmt: skip
        if now - start > limits.overall:
            raise BootError(f"timed out after {limits.overall:.0f} s waiting for {' or '.join(until)}", text,
                            reason="timeout")  # fmt: skip


def _finish_line(console: _Console, start: int, grace: float = 3.0) -> None:
    """Read on until the marker's line is complete (its reason follows the marker), at most ``grace`` s."""
    deadline = time.monotonic() + grace
    while "\n" not in console.text[start - 1 :] and time.monotonic() < deadline:
        if not console.pump(0.1):
            return


def boot_timeouts(vm: VmConfig, timeout: float | None, idle_timeout: float | None) -> Timeouts:
    """The limits of one boot: from the accelerator (and host load), capped by the caller's ``timeout``."""
    limits = Timeouts.for_accel(pick_accel(vm.machine.arch)).capped(timeout)
    if idle_timeout is not None:
        limits = Timeouts(limits.overall, idle_timeout)
    return limits


@contextlib.contextmanager
def running(
    vm: VmConfig,
    *,
    until: Sequence[str] = DEFAULT_UNTIL,
    timeout: float | None = 180.0,
    idle_timeout: float | None = None,
    log_path: Path | None = None,
    crash_retries: int = 1,
    fail_on: Sequence[FailPattern] = FAIL_PATTERNS,
) -> Iterator[BootLog]:
    """Start ``vm``, wait for a marker, yield the log so far; QEMU is stopped when the block exits.

    ``timeout`` caps the whole wait (None: derived from the accelerator, :class:`Timeouts`);
    ``idle_timeout`` is the longest silence on the console (default: derived from the accelerator).
    ``fail_on`` are the console patterns that fail the boot at once (a pattern matching one of the
    ``until`` markers is not a failure: the caller waits for it).

    The media are checked first (:func:`coreos_infra.preflight.check_vm`: :class:`BootError` with reason
    ``missing file``, ``wrong architecture`` or ``sector size mismatch``, before QEMU starts).
    If QEMU itself is killed by a signal before the marker (seen under TCG on a loaded host: SIGSEGV a
    second into the guest kernel), or the guest stalls silently right after the kernel started ``/init``
    (:class:`EarlyStall`), the boot is started again from scratch, at most ``crash_retries`` times, with a
    warning; guest failures (patterns, non-zero exits, timeouts) are never retried.
    """
    try:
        preflight.check_vm(vm)
    except preflight.PreflightError as e:
        raise BootError(str(e), "", reason=e.reason) from None
    limits = boot_timeouts(vm, timeout, idle_timeout)
    for attempt in range(crash_retries + 1):
        with tempfile.TemporaryDirectory(prefix="coreos-infra-vm-") as tmp:
            argv = qemu_command(vm, Path(tmp))
            LOG.debug("booting: %s", " ".join(argv))
            start = time.monotonic()
            with spawn(argv) as proc:
                console = _Console(proc, log_path)
                try:
                    try:
                        reason = _wait_for(console, until, limits, start, argv, fail_on)
                    except EmulatorCrash as exc:
                        if attempt == crash_retries:
                            why = "guest stall" if isinstance(exc, EarlyStall) else "qemu crash"
                            raise BootError(f"{exc} (after {attempt + 1} attempts)", console.text,
                                            reason=why) from exc  # fmt: skip
                        LOG.warning("%s; booting again (attempt %d)", exc, attempt + 2)
                        continue
                    yield BootLog(console.text, reason, time.monotonic() - start, argv)
                    return
                finally:
                    console.close()


def boot(
    vm: VmConfig,
    *,
    until: Sequence[str] = DEFAULT_UNTIL,
    timeout: float | None = 180.0,
    idle_timeout: float | None = None,
    log_path: Path | None = None,
    fail_on: Sequence[FailPattern] = FAIL_PATTERNS,
) -> BootLog:
    """Boot ``vm`` until a marker or until QEMU exits; return the serial log (see :func:`running`)."""
    with running(vm, until=until, timeout=timeout, idle_timeout=idle_timeout, log_path=log_path,
                 fail_on=fail_on) as log:  # fmt: skip
        return log
