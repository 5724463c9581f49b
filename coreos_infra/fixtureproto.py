"""The fixture OS's serial protocol: :func:`parse_log` turns the ``FIXTURE-*`` lines a boot printed into a
:class:`FixtureResult` (see ``qemu/README.md``, "The fixture OS protocol"). Re-exported by
:mod:`coreos_infra.qemu`, where callers import it from.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

from coreos_infra.errors import CoreosInfraError


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
