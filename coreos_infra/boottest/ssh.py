"""Talking to a booted guest over SSH: port forwarding, readiness, and the guest's state for the comparison.

The harness logs in as ``core`` with the site's boot-test key (:mod:`coreos_infra.recipes.boottestkey`)
through QEMU's user-mode network (``hostfwd`` from ``127.0.0.1:<port>``) with OpenSSH's ``ssh``: no
host key is trusted or stored (a fresh VM has fresh keys). Everything the comparison needs is read by
one shell script (POSIX sh + coreutils or busybox; ``sudo -n`` where it works, as on FCOS), so the
same code reads real FCOS, the systemd fixture root and the busybox fixture OS.

:func:`real_os_running` starts a VM whose OS prints no fixture markers (real FCOS): readiness is the
SSH server answering and ``systemctl is-system-running --wait`` (bounded), never a serial marker.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shlex
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from coreos_infra import qemu
from coreos_infra.boottest.expect import PRESET_FILE, Expected, GuestState, parse_accounts
from coreos_infra.errors import CoreosInfraError
from coreos_infra.run import find_binary, run, spawn


class SshError(CoreosInfraError):
    """The guest's SSH server did not let the harness in (or a command could not run)."""


def forward(
    vm: qemu.VmConfig, *, mac: str | None = None, guest_addr: str | None = None
) -> tuple[qemu.VmConfig, dict[str, int]]:
    """``vm`` with host ports forwarded to the guest's port 22; returns (vm, {guest address: host port}).

    The guest address ``""`` is slirp's DHCP address (10.0.2.15, also the busybox fixture OS's fixed
    one). ``guest_addr`` adds a forward to a site host's static address and ``mac`` gives the NIC the
    host's MAC (its NetworkManager keyfile matches on it); both need the harness's own ``-netdev``, so
    the VM's own user network must be off.
    """
    if mac is None and guest_addr is None:
        port = vm.ssh_port or qemu.free_port()
        return dataclasses.replace(vm, ssh_port=port), {"": port}
    if vm.net or vm.ssh_port or vm.pxe:
        raise CoreosInfraError("forward(mac=, guest_addr=) needs a VM without its own network")
    ports = {"": qemu.free_port()}
    if guest_addr:
        ports[guest_addr] = qemu.free_port()
    netdev = "user,id=bt0" + "".join(f",hostfwd=tcp:127.0.0.1:{p}-{a}:22" for a, p in ports.items())
    nic = "virtio-net-pci,netdev=bt0,romfile=" + (f",mac={mac}" if mac else "")
    return dataclasses.replace(vm, extra_args=(*vm.extra_args, "-netdev", netdev, "-device", nic)), ports


@dataclass(frozen=True)
class Ssh:
    port: int
    identity: Path
    user: str = "core"
    host: str = "127.0.0.1"

    @property
    def testinfra_host(self) -> str:
        return f"paramiko://{self.user}@{self.host}:{self.port}"

    def argv(self, command: str) -> list[str]:
        ssh = find_binary("ssh", reason="log in to the booted VM (openssh-client)")
        return [
            ssh, "-i", str(self.identity), "-p", str(self.port), "-F", "/dev/null",
            "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=15",
            "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=8",
            f"{self.user}@{self.host}", command,
        ]  # fmt: skip

    def run(
        self, command: str, *, stdin: bytes | None = None, timeout: float = 300.0
    ) -> subprocess.CompletedProcess[bytes]:
        """Run ``command`` on the guest (through its login shell); never raises on a non-zero exit."""
        try:
            return run(self.argv(command), input=stdin, capture=True, check=False, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise SshError(
                f"ssh {self.user}@{self.host}:{self.port} {command!r} took over {timeout:.0f} s"
            ) from None


def wait_ready(ssh: Ssh, *, timeout: float) -> str:
    """Wait for the SSH banner and a successful login; returns the banner."""
    deadline = time.monotonic() + timeout
    banner = qemu.wait_for_ssh(ssh.port, timeout=timeout, host=ssh.host)
    last = ""
    while time.monotonic() < deadline:
        out = ssh.run("true", timeout=60)
        if out.returncode == 0:
            return banner
        last = out.stderr.decode(errors="replace").strip()[-300:]
        time.sleep(2)
    raise SshError(f"{ssh.user}@{ssh.host}:{ssh.port} does not accept the boot-test key: {last}")


def system_running(ssh: Ssh, *, timeout: float) -> str:
    """``systemctl is-system-running --wait`` on the guest, at most ``timeout`` seconds: the state, or
    ``no-systemd`` (busybox fixture OS) or ``timeout (<state>; jobs: ...)``."""
    t = int(timeout)
    script = (
        "command -v systemctl >/dev/null 2>&1 || { echo no-systemd; exit 0; }\n"
        f"timeout {t} systemctl is-system-running --wait && exit 0\n"
        'echo "timeout ($(systemctl is-system-running); jobs: '
        "$(systemctl list-jobs --no-legend --plain | awk '{print $2}' | paste -sd, -))\"\n"
    )
    out = ssh.run("sh -s", stdin=script.encode(), timeout=timeout + 60)
    lines = out.stdout.decode(errors="replace").split()
    return " ".join(lines) if lines else f"unknown (ssh exit {out.returncode})"


# ------------------------------------------------------------------------------------ the guest state
AS_ROOT = "if sudo -n true 2>/dev/null; then exec sudo -n sh -s; else exec sh -s; fi"
_COLLECT = r"""
S=
[ "$(id -u)" = 0 ] || { command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null && S="sudo -n"; }
item() {
    if $S test -L "$1"; then
        printf 'L\t%s\t%s\t%s\n' "$1" "$($S stat -c '%u %g' "$1")" "$($S readlink "$1")"
    elif $S test -d "$1"; then
        printf 'D\t%s\t%s\n' "$1" "$($S stat -c '%a %u %g' "$1")"
    elif $S test -f "$1"; then
        printf 'F\t%s\t%s\t%s\n' "$1" "$($S stat -c '%a %u %g' "$1")" \
            "$($S sha256sum "$1" 2>/dev/null | cut -d' ' -f1)"
    fi
}
lines() {
    $S cat "$2" 2>/dev/null | while IFS= read -r l || [ -n "$l" ]; do printf '%s\t%s\n' "$1" "$l"; done
}
keys() {
    h=$(awk -F: -v u="$1" '$1 == u { print $6 }' /etc/passwd)
    f="$h/.ssh/authorized_keys.d/ignition"
    [ -n "$h" ] && $S test -f "$f" && printf 'KF\t%s\n' "$1" && lines "K	$1" "$f"
    return 0
}
lines P /etc/passwd
lines G /etc/group
lines R __PRESET__
SD=0
command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ] && SD=1 && echo SYSTEMD
unit() {
    [ "$SD" = 1 ] && printf 'U\t%s\t%s\n' "$1" "$(systemctl is-enabled "$1" 2>/dev/null | head -n1)"
    return 0
}
"""


def collect_script(expected: Expected) -> str:
    paths = sorted({*expected.files, *expected.dirs, *expected.links})
    body = _COLLECT.replace("__PRESET__", PRESET_FILE)
    body += "".join(f"item {shlex.quote(p)}\n" for p in paths)
    body += "".join(f"unit {shlex.quote(u)}\n" for u in sorted(expected.units))
    body += "".join(f"keys {shlex.quote(u)}\n" for u, eu in sorted(expected.users.items()) if eu.ssh_keys)
    return body + "exit 0\n"


def parse_state(text: str) -> GuestState:
    """Parse what :func:`collect_script` printed."""
    st = GuestState(source="ssh")
    passwd: list[str] = []
    group: list[str] = []
    presets: list[str] = []
    keys: dict[str, list[str]] = {}
    for line in text.splitlines():
        kind, _, rest = line.partition("\t")
        if kind == "P":
            passwd.append(rest)
        elif kind == "G":
            group.append(rest)
        elif kind == "R":
            presets.append(rest)
        elif kind == "SYSTEMD":
            st.unit_states = {}
        elif kind == "U" and st.unit_states is not None:
            name, _, state = rest.partition("\t")
            st.unit_states[name] = state.strip() or "not-found"
        elif kind == "KF":
            keys.setdefault(rest, [])
        elif kind == "K":
            user, _, key = rest.partition("\t")
            if key.strip() and not key.startswith("#"):
                keys.setdefault(user, []).append(key.strip())
        elif kind in ("F", "D", "L"):
            _parse_item(st, kind, rest.split("\t"))
    st.passwd, st.groups = parse_accounts("\n".join(passwd), "\n".join(group))
    st.presets = "\n".join(presets) + "\n" if presets else None
    st.ssh_keys = {u: tuple(k) for u, k in keys.items()}
    return st


def _parse_item(st: GuestState, kind: str, fields: list[str]) -> None:
    if len(fields) < 2:
        return
    path, ids = fields[0], fields[1].split()
    if kind == "F" and len(ids) == 3 and len(fields) >= 3:
        st.files[path] = (int(ids[0], 8), int(ids[1]), int(ids[2]), fields[2] or None)
    elif kind == "D" and len(ids) == 3:
        st.dirs[path] = (int(ids[0], 8), int(ids[1]), int(ids[2]))
    elif kind == "L" and len(ids) == 2 and len(fields) >= 3:
        st.links[path] = (fields[2], int(ids[0]), int(ids[1]))


def guest_state(ssh: Ssh, expected: Expected) -> GuestState:
    # one sudo for the whole script (a sudo per stat costs seconds under TCG), plain sh without it
    out = ssh.run(AS_ROOT, stdin=collect_script(expected).encode(), timeout=300)
    if out.returncode not in (0, 1) or b"\nG\t" not in b"\n" + out.stdout:
        raise SshError(f"reading the guest's state over SSH failed (exit {out.returncode}): "
                       f"{out.stderr.decode(errors='replace')[-300:]}")  # fmt: skip
    return parse_state(out.stdout.decode(errors="replace"))


def merge_serial(st: GuestState, serial: GuestState) -> GuestState:
    """Fill what ``core`` could not read over SSH (no sudo on the busybox OS) from the serial report,
    which the fixture's /init wrote as root."""
    for path, (mode, uid, gid, digest) in st.files.items():
        if digest is None and path in serial.files:
            st.files[path] = (mode, uid, gid, serial.files[path][3])
    for user, keys in serial.ssh_keys.items():
        st.ssh_keys.setdefault(user, keys)
    if st.presets is None:
        st.presets = serial.presets
    return st


# ------------------------------------------------------------------------------------- real FCOS VMs
@dataclass
class Console:
    """A VM started by :func:`real_os_running`: its serial log file and QEMU process."""

    proc: subprocess.Popen[bytes]
    log_path: Path
    fail_patterns: Sequence[qemu.FailPattern] = qemu.FAIL_PATTERNS

    @property
    def text(self) -> str:
        return self.log_path.read_bytes().decode(errors="replace").replace("\r\n", "\n")

    def check(self) -> None:
        """Raise :class:`qemu.BootError` on a failure pattern or if QEMU exited."""
        text = self.text
        for pat in self.fail_patterns:
            line = pat.find(text)
            if line is not None:
                raise qemu.BootError(f"boot failed ({pat.reason}): {line!r} on the serial console", text,
                                     reason=pat.reason)  # fmt: skip
        rc = self.proc.poll()
        if rc is not None:
            raise qemu.BootError(f"QEMU exited with code {rc} before SSH was reachable", text,
                                 reason="qemu exit")  # fmt: skip


@contextlib.contextmanager
def real_os_running(vm: qemu.VmConfig, *, log_path: Path) -> Iterator[Console]:
    """Start ``vm`` with its serial console written to ``log_path``; QEMU is stopped when the block ends.

    No marker is waited for: the caller waits for SSH (:func:`wait_real_os`).
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="coreos-infra-vm-") as tmp, open(log_path, "wb") as log:
        argv = qemu.qemu_command(vm, Path(tmp))
        with spawn(argv, stdout=log, stderr=subprocess.STDOUT) as proc:
            yield Console(proc, log_path)


def wait_real_os(ssh: Ssh, console: Console, *, timeout: float) -> str:
    """Wait for an SSH login, failing fast on the console's failure patterns; returns the banner."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        console.check()
        try:
            return wait_ready(ssh, timeout=min(20.0, max(1.0, deadline - time.monotonic())))
        except CoreosInfraError as e:
            last = e.message
    raise qemu.BootError(f"no SSH login after {timeout:.0f} s ({last})", console.text)
