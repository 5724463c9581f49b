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

The runner (:func:`boot`, :func:`running`) streams the serial console, stops successfully on the first
``until`` marker or when QEMU exits, and fails fast (:class:`BootError`, with the log tail) on GRUB's
"Press any key to continue", "Kernel panic", "KVM internal error", a QEMU error exit or a timeout.
"""

from __future__ import annotations

import base64
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

from coreos_infra.errors import CoreosInfraError
from coreos_infra.log import LOG
from coreos_infra.run import find_binary, spawn

FAIL_PATTERNS = (
    "FIXTURE-GRUB-ERROR",
    "Press any key to continue",
    "Kernel panic",
    "KVM internal error",
    "end Kernel panic",
    "No bootable device",
    "Boot failed: not a bootable disk",
)
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


class BootError(CoreosInfraError):
    """A VM did not reach its success marker; ``log`` holds the serial output so far."""

    def __init__(self, message: str, log: str) -> None:
        tail = "\n".join(log.splitlines()[-40:])
        super().__init__(f"{message}\n--- last serial lines ---\n{tail}")
        self.log = log


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


def qemu_command(vm: VmConfig, workdir: Path) -> list[str]:
    """The full QEMU argv for ``vm``; per-boot files (vars copy, combined initrd) go into ``workdir``."""
    m = vm.machine
    accel = pick_accel(m.arch)
    argv = [find_binary(QEMU_BINARIES[m.arch], reason=f"boot {m.arch} VMs"), "-accel", accel]
    if m.arch == "x86_64":
        argv += ["-M", "q35"]
        if accel == "kvm":
            argv += ["-cpu", "host"]
    else:
        argv += ["-M", "virt", "-cpu", "host" if accel == "kvm" else "cortex-a72"]
    argv += [
        "-m",
        str(m.memory_mb),
        "-smp",
        str(m.cpus),
        "-nodefaults",
        "-display",
        "none",
        "-serial",
        "stdio",
        "-no-reboot",
        # entropy from the host: without it, key generation at first boot (dropbearkey, sshd) can
        # stall for minutes on a loaded host (q35 and virt both have PCI)
        "-object",
        "rng-random,filename=/dev/urandom,id=rng0",
        "-device",
        "virtio-rng-pci,rng=rng0",
    ]
    direct = vm.kernel is not None
    if not direct and (m.firmware == "uefi" or m.arch == "aarch64"):
        fw = find_firmware(m.arch)
        vars_copy = workdir / "efivars.fd"
        shutil.copyfile(fw.vars_template, vars_copy)
        argv += [
            "-drive",
            f"if=pflash,format=raw,unit=0,readonly=on,file={fw.code}",
            "-drive",
            f"if=pflash,format=raw,unit=1,file={vars_copy}",
        ]
    if direct:
        assert vm.kernel is not None
        argv += ["-kernel", str(vm.kernel), "-append", vm.append]
        if vm.initrds:
            combined = workdir / "initrd.img"
            with open(combined, "wb") as out:
                for p in vm.initrds:
                    data = p.read_bytes()
                    out.write(data + b"\x00" * (-len(data) % 4))
            argv += ["-initrd", str(combined)]
    bootindex = 0
    if vm.cdrom is not None:
        if m.arch == "x86_64":
            argv += [
                "-drive",
                f"if=none,id=cd0,media=cdrom,readonly=on,format=raw,file={vm.cdrom}",
                "-device",
                f"ide-cd,drive=cd0,bootindex={bootindex}",
            ]
        else:
            argv += [
                "-drive",
                f"if=none,id=cd0,media=cdrom,readonly=on,format=raw,file={vm.cdrom}",
                "-device",
                "virtio-scsi-pci,id=scsi0",
                "-device",
                f"scsi-cd,drive=cd0,bootindex={bootindex}",
            ]
        bootindex += 1
    for i, disk in enumerate(vm.disks):
        snap = "" if vm.writable_disks else ",snapshot=on"
        argv += [
            "-drive",
            f"if=none,id=d{i},format={vm.disk_format},file={disk}{snap}",
            "-device",
            f"virtio-blk-pci,drive=d{i},bootindex={bootindex}"
            + (
                f",logical_block_size={vm.disk_sector_size},physical_block_size={vm.disk_sector_size}"
                if vm.disk_sector_size != 512
                else ""
            ),
        ]
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
    argv += list(vm.extra_args)
    return argv


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


def _wait_for(console: _Console, until: Sequence[str], timeout: float, start: float, argv: list[str]) -> str:
    """Pump until a marker, QEMU exit, a failure pattern or the timeout; return the end reason."""
    while True:
        alive = console.pump(0.25)
        text = console.text
        for pat in FAIL_PATTERNS:
            if pat in text:
                raise BootError(f"boot failed: {pat!r} on the serial console", text)
        for marker in until:
            if re.search(rf"(^|\n){re.escape(marker)}(\s|$)", text):
                return f"marker:{marker}"
        if not alive:
            rc = console.proc.wait()
            if rc < 0:
                raise EmulatorCrash(f"QEMU was killed by signal {-rc}: {' '.join(argv)}")
            if rc != 0:
                raise BootError(f"QEMU exited with code {rc}: {' '.join(argv)}", text)
            return "exit:0"
        if time.monotonic() - start > timeout:
            raise BootError(f"timed out after {timeout:.0f} s waiting for {' or '.join(until)}", text)


@contextlib.contextmanager
def running(
    vm: VmConfig,
    *,
    until: Sequence[str] = DEFAULT_UNTIL,
    timeout: float = 180.0,
    log_path: Path | None = None,
    crash_retries: int = 1,
) -> Iterator[BootLog]:
    """Start ``vm``, wait for a marker, yield the log so far; QEMU is stopped when the block exits.

    If QEMU itself is killed by a signal before the marker (seen under TCG on a loaded host: SIGSEGV a
    second into the guest kernel), the boot is started again from scratch, at most ``crash_retries``
    times, with a warning; guest failures (patterns, non-zero exits, timeouts) are never retried.
    """
    for attempt in range(crash_retries + 1):
        with tempfile.TemporaryDirectory(prefix="coreos-infra-vm-") as tmp:
            argv = qemu_command(vm, Path(tmp))
            LOG.debug("booting: %s", " ".join(argv))
            start = time.monotonic()
            with spawn(argv) as proc:
                console = _Console(proc, log_path)
                try:
                    try:
                        reason = _wait_for(console, until, timeout, start, argv)
                    except EmulatorCrash as exc:
                        if attempt == crash_retries:
                            raise BootError(f"{exc} (after {attempt + 1} attempts)", console.text) from exc
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
    timeout: float = 180.0,
    log_path: Path | None = None,
) -> BootLog:
    """Boot ``vm`` until a marker or until QEMU exits; return the serial log."""
    with running(vm, until=until, timeout=timeout, log_path=log_path) as log:
        return log


# ---------------------------------------------------------------- the fixture OS protocol


@dataclass(frozen=True)
class FileInfo:
    path: str
    mode: int
    uid: int
    gid: int
    size: int
    sha256: str
    content: bytes | None  # only for files < 8 KiB

    @property
    def text(self) -> str:
        if self.content is None:
            raise CoreosInfraError(f"{self.path}: content not reported (file is {self.size} bytes)")
        return self.content.decode()


@dataclass(frozen=True)
class User:
    name: str
    uid: int
    gid: int
    home: str
    shell: str
    groups: tuple[str, ...]


@dataclass
class FixtureResult:
    """The fixture OS's report, parsed from its serial log (see coreos_infra.fixtures)."""

    booted: bool = False
    arch: str = ""
    cmdline: str = ""
    release: str = ""
    source: str | None = None  # initrd | boot | url | none
    ignition_ok: bool = False
    ignition_failed: str | None = None
    ignition_skipped: bool = False
    ignition_log: list[str] = field(default_factory=list)
    rootfs: dict[str, str] = field(default_factory=dict)
    bootdev: str | None = None
    files: dict[str, FileInfo] = field(default_factory=dict)
    dirs: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # path -> (mode, uid, gid)
    links: dict[str, str] = field(default_factory=dict)
    ssh_ready: bool = False
    done: bool = False
    root: dict[str, str] = field(default_factory=dict)  # FIXTURE-ROOT (metal-systemd): label, dev, init
    systemd_state: str | None = None  # FIXTURE-SYSTEMD: systemctl is-system-running --wait
    failed_units: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Booted, and Ignition ran and succeeded."""
        return self.booted and self.ignition_ok

    @property
    def kargs(self) -> list[str]:
        return self.cmdline.split()

    def karg(self, name: str) -> str | None:
        """Value of the last ``name=value`` (``""`` for a bare flag) on the kernel command line, or None."""
        value = None
        for word in self.kargs:
            if word == name:
                value = ""
            elif word.startswith(name + "="):
                value = word[len(name) + 1 :]
        return value

    @property
    def users(self) -> dict[str, User]:
        """Users from the /etc/passwd Ignition (useradd) wrote, with groups from /etc/group."""
        passwd, group = self.files.get("/etc/passwd"), self.files.get("/etc/group")
        if passwd is None or passwd.content is None:
            return {}
        members: dict[str, list[str]] = {}
        if group is not None and group.content is not None:
            for line in group.text.splitlines():
                parts = line.split(":")
                if len(parts) >= 4:
                    for member in filter(None, parts[3].split(",")):
                        members.setdefault(member, []).append(parts[0])
        users = {}
        for line in passwd.text.splitlines():
            p = line.split(":")
            if len(p) >= 7:
                users[p[0]] = User(p[0], int(p[2]), int(p[3]), p[5], p[6], tuple(members.get(p[0], [])))
        return users


def _kv(words: list[str]) -> dict[str, str]:
    return dict(w.split("=", 1) for w in words if "=" in w)


def parse_log(text: str) -> FixtureResult:
    """Parse the ``FIXTURE-*`` lines of a serial log (kernel/firmware noise is ignored)."""
    r = FixtureResult()
    content_path: str | None = None
    content: list[str] = []
    for raw in text.replace("\r", "").split("\n"):
        line = raw.strip()
        if content_path is not None:
            if line == "FIXTURE-CONTENT-END":
                info = r.files.get(content_path)
                data = base64.b64decode("".join(content))
                if info is not None:
                    r.files[content_path] = FileInfo(
                        info.path, info.mode, info.uid, info.gid, info.size, info.sha256, data
                    )
                content_path = None
            else:
                content.append(line)
            continue
        if not line.startswith("FIXTURE-"):
            # a getty's "host login: " prompt can precede a marker printed by a systemd unit
            if "login: FIXTURE-" not in line:
                continue
            line = line[line.index("login: FIXTURE-") + len("login: ") :]
        key, _, rest = line.partition(" ")
        if key == "FIXTURE-BOOT-OK":
            r.booted = True
            r.arch = _kv(rest.split()).get("arch", "")
        elif key == "FIXTURE-CMDLINE":
            r.cmdline = rest
        elif key == "FIXTURE-RELEASE":
            r.release = rest.split()[0] if rest else ""
        elif key == "FIXTURE-IGNITION-SOURCE":
            r.source = rest.strip()
        elif key == "FIXTURE-IGNITION-OK":
            r.ignition_ok = True
        elif key == "FIXTURE-IGNITION-FAILED":
            r.ignition_failed = rest.strip() or "unknown"
        elif key == "FIXTURE-IGNITION-SKIPPED":
            r.ignition_skipped = True
        elif key == "FIXTURE-IGNITION-LOG":
            r.ignition_log.append(rest)
        elif key == "FIXTURE-ROOTFS":
            r.rootfs = _kv(rest.split())
        elif key == "FIXTURE-BOOTDEV":
            r.bootdev = _kv(rest.split()).get("dev")
        elif key == "FIXTURE-FILE":
            path, *fields = rest.rsplit(" ", 5)
            kv = _kv(fields)
            r.files[path] = FileInfo(
                path,
                int(kv["mode"], 8),
                int(kv["uid"]),
                int(kv["gid"]),
                int(kv["size"]),
                kv["sha256"],
                b"" if kv["size"] == "0" else None,
            )
        elif key == "FIXTURE-CONTENT-BEGIN":
            content_path, content = rest, []
        elif key == "FIXTURE-DIR":
            path, *fields = rest.rsplit(" ", 3)
            kv = _kv(fields)
            r.dirs[path] = (int(kv["mode"], 8), int(kv["uid"]), int(kv["gid"]))
        elif key == "FIXTURE-LINK":
            path, _, target = rest.rpartition(" target=")
            r.links[path] = target
        elif key == "FIXTURE-ROOT":
            r.root = _kv(rest.split())
        elif key == "FIXTURE-SYSTEMD":
            kv = _kv(rest.split())
            r.systemd_state = kv.get("state")
            r.failed_units = [u for u in kv.get("failed", "none").split(",") if u and u != "none"]
        elif key == "FIXTURE-SSH-READY":
            r.ssh_ready = True
        elif key == "FIXTURE-DONE":
            r.done = True
    return r
