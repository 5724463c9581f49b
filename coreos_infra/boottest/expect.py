"""What a system that applied an Ignition config must contain, what a booted system shows, the comparison.

:func:`expected_state` reads the config (only what Ignition itself writes); :class:`GuestState` is the
booted system as seen over SSH (:mod:`coreos_infra.boottest.ssh`) or in the fixture OS's serial report
(:meth:`GuestState.from_serial`); :func:`compare` checks one against the other: content (SHA-256 of the
decoded source), mode, owner (names resolved through the guest's /etc/passwd and /etc/group), link
targets, units (``systemctl is-enabled`` where systemd runs, else Ignition's preset file), users (uid,
supplementary groups, authorized SSH keys) and groups.
"""

from __future__ import annotations

import hashlib
import posixpath
from dataclasses import dataclass, field
from typing import Any

from coreos_infra import ignition, qemu

PRESET_FILE = "/etc/systemd/system-preset/20-ignition.preset"
Owner = tuple[str | int | None, str | int | None]  # (user name or uid, group name or gid); None: root


@dataclass(frozen=True)
class ExpectedFile:
    sha256: str | None  # None: remote or appended from a remote source (not checked)
    mode: int
    owner: Owner = (None, None)


@dataclass(frozen=True)
class ExpectedUser:
    uid: int | None = None
    groups: tuple[str, ...] = ()  # supplementary groups
    ssh_keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class Expected:
    files: dict[str, ExpectedFile]
    dirs: dict[str, tuple[int, Owner]]  # path -> (mode, owner)
    links: dict[str, tuple[str, Owner]]  # path -> (target, owner)
    users: dict[str, ExpectedUser]
    groups: dict[str, int | None] = field(default_factory=dict)  # passwd.groups: name -> gid
    units: dict[str, str] = field(default_factory=dict)  # name -> enabled | disabled | masked
    defined_units: frozenset[str] = frozenset()  # units whose unit file the config itself writes


@dataclass(frozen=True)
class PasswdEntry:
    uid: int
    gid: int
    home: str


@dataclass
class GuestState:
    """The booted system, as far as the comparison needs it."""

    files: dict[str, tuple[int, int, int, str | None]] = field(default_factory=dict)  # mode, uid, gid, sha
    dirs: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # mode, uid, gid
    links: dict[str, tuple[str, int, int]] = field(default_factory=dict)  # target, uid, gid
    passwd: dict[str, PasswdEntry] = field(default_factory=dict)
    groups: dict[str, tuple[int, tuple[str, ...]]] = field(default_factory=dict)  # gid, members
    unit_states: dict[str, str] | None = None  # systemctl is-enabled; None: no systemd (busybox OS)
    presets: str | None = None  # content of Ignition's preset file
    ssh_keys: dict[str, tuple[str, ...]] = field(default_factory=dict)  # user -> Ignition's keys
    source: str = "serial"  # ssh | serial

    @classmethod
    def from_serial(cls, r: qemu.FixtureResult) -> GuestState:
        """The fixture OS's serial report (only what Ignition changed; owners as numbers)."""
        st = cls(source="serial")
        for path, f in r.files.items():
            st.files[path] = (f.mode, f.uid, f.gid, f.sha256)
        st.dirs = dict(r.dirs)
        st.links = {p: (t, 0, 0) for p, t in r.links.items()}  # the serial report has no link owners
        st.passwd, st.groups = parse_accounts(_text(r, "/etc/passwd"), _text(r, "/etc/group"))
        st.presets = _text(r, PRESET_FILE)
        for name, entry in st.passwd.items():
            keys = _text(r, posixpath.join(entry.home, ".ssh/authorized_keys.d/ignition"))
            if keys is not None:
                st.ssh_keys[name] = _key_lines(keys)
        return st


def _text(r: qemu.FixtureResult, path: str) -> str | None:
    info = r.files.get(path)
    return info.content.decode(errors="replace") if info is not None and info.content is not None else None


def _key_lines(text: str) -> tuple[str, ...]:
    return tuple(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))


def parse_accounts(
    passwd: str | None, group: str | None
) -> tuple[dict[str, PasswdEntry], dict[str, tuple[int, tuple[str, ...]]]]:
    users: dict[str, PasswdEntry] = {}
    for line in (passwd or "").splitlines():
        p = line.split(":")
        if len(p) >= 7 and p[2].isdigit() and p[3].isdigit():
            users[p[0]] = PasswdEntry(int(p[2]), int(p[3]), p[5])
    groups: dict[str, tuple[int, tuple[str, ...]]] = {}
    for line in (group or "").splitlines():
        p = line.split(":")
        if len(p) >= 4 and p[2].isdigit():
            groups[p[0]] = (int(p[2]), tuple(filter(None, p[3].split(","))))
    return users, groups


def _norm(path: str) -> str:
    return posixpath.normpath(path)


def _owner(node: dict[str, Any]) -> Owner:
    user, group = node.get("user") or {}, node.get("group") or {}
    u = user.get("id") if user.get("id") is not None else user.get("name")
    g = group.get("id") if group.get("id") is not None else group.get("name")
    return (u, g)


def _file_digest(f: dict[str, Any]) -> str | None:
    contents = f.get("contents") or {}
    source = contents.get("source")
    data: bytes | None = b""
    if source is not None:
        data = (
            ignition.decode_source(source, contents.get("compression"))
            if source.startswith("data:")
            else None
        )
    for app in f.get("append") or []:
        asrc = app.get("source")
        if data is not None and asrc is not None and asrc.startswith("data:"):
            data += ignition.decode_source(asrc, app.get("compression"))
        else:
            data = None
    return hashlib.sha256(data).hexdigest() if data is not None else None


def expected_state(config: dict[str, Any]) -> Expected:
    """What a system that applied ``config`` must contain (only what Ignition itself writes)."""
    storage = config.get("storage") or {}
    files: dict[str, ExpectedFile] = {}
    for f in storage.get("files") or []:
        mode = f.get("mode")
        files[_norm(f["path"])] = ExpectedFile(_file_digest(f), 0o644 if mode is None else mode, _owner(f))
    dirs = {_norm(d["path"]): (d.get("mode") or 0o755, _owner(d)) for d in storage.get("directories") or []}
    links = {
        _norm(lk["path"]): (lk["target"], _owner(lk))
        for lk in storage.get("links") or []
        if not lk.get("hard")
    }
    units: dict[str, str] = {}
    for unit in (config.get("systemd") or {}).get("units") or []:
        base, name = "/etc/systemd/system", unit["name"]
        if unit.get("contents") is not None and not unit.get("mask"):
            files[f"{base}/{name}"] = ExpectedFile(
                hashlib.sha256(unit["contents"].encode()).hexdigest(), 0o644
            )
        for dropin in unit.get("dropins") or []:
            if dropin.get("contents") is not None:
                digest = hashlib.sha256(dropin["contents"].encode()).hexdigest()
                files[f"{base}/{name}.d/{dropin['name']}"] = ExpectedFile(digest, 0o644)
        if unit.get("mask"):
            links[f"{base}/{name}"] = ("/dev/null", (None, None))
            units[name] = "masked"
        elif unit.get("enabled") is not None:
            units[name] = "enabled" if unit["enabled"] else "disabled"
    passwd = config.get("passwd") or {}
    users = {
        u["name"]: ExpectedUser(
            uid=u.get("uid"),
            groups=tuple(u.get("groups") or ()),
            ssh_keys=tuple(k.strip() for k in u.get("sshAuthorizedKeys") or ()),
        )
        for u in passwd.get("users") or []
    }
    groups = {g["name"]: g.get("gid") for g in passwd.get("groups") or []}
    defined = frozenset(
        u["name"] for u in (config.get("systemd") or {}).get("units") or [] if u.get("contents") is not None
    )
    return Expected(files, dirs, links, users, groups, units, defined)


class _Checks:
    def __init__(self, missing_units: str | None = None) -> None:
        self.passed: list[str] = []
        self.failed: list[str] = []
        self.not_applicable: list[str] = []
        self.missing_units = missing_units  # why a unit the OS does not ship is not applicable, or None

    def __call__(self, ok: bool, what: str) -> None:
        (self.passed if ok else self.failed).append(what)


def _resolve(owner: Owner, st: GuestState) -> tuple[int | None, int | None, str | None]:
    """Owner ids on the guest; (uid, gid, problem) - a name the guest does not know is a problem."""
    user, group = owner
    uid: int | None = 0
    gid: int | None = 0
    if isinstance(user, str):
        uid = st.passwd[user].uid if user in st.passwd else None
    elif user is not None:
        uid = user
    if isinstance(group, str):
        gid = st.groups[group][0] if group in st.groups else None
    elif group is not None:
        gid = group
    missing = ([f"user {user}"] if uid is None else []) + ([f"group {group}"] if gid is None else [])
    return uid, gid, ("unknown " + " and ".join(missing) + " on the guest") if missing else None


def _check_owner(check: _Checks, what: str, owner: Owner, got: tuple[int, int], st: GuestState) -> None:
    uid, gid, problem = _resolve(owner, st)
    shown = f"{owner[0] if owner[0] is not None else 'root'}:{owner[1] if owner[1] is not None else 'root'}"
    if problem is not None:
        check(False, f"{what} owned by {shown} ({problem})")
        return
    check(got == (uid, gid), f"{what} owned by {shown} (uid {uid} gid {gid}; got {got[0]}:{got[1]})")


def _compare_storage(check: _Checks, expected: Expected, st: GuestState) -> None:
    for path, ef in sorted(expected.files.items()):
        got = st.files.get(path)
        if got is None:
            check(False, f"file {path} exists")
            continue
        mode, uid, gid, digest = got
        if ef.sha256 is not None:
            check(digest == ef.sha256, f"file {path} has the configured content")
        check(mode & 0o7777 == ef.mode, f"file {path} has mode {ef.mode:04o} (got {mode & 0o7777:04o})")
        _check_owner(check, f"file {path}", ef.owner, (uid, gid), st)
    for path, (mode, owner) in sorted(expected.dirs.items()):
        d = st.dirs.get(path)
        check(d is not None and d[0] & 0o7777 == mode, f"directory {path} with mode {mode:04o}")
        if d is not None:
            _check_owner(check, f"directory {path}", owner, (d[1], d[2]), st)
    for path, (target, owner) in sorted(expected.links.items()):
        lk = st.links.get(path)
        check(lk is not None and lk[0] == target, f"link {path} -> {target}")
        if lk is not None and owner != (None, None) and st.source == "ssh":
            _check_owner(check, f"link {path}", owner, (lk[1], lk[2]), st)


def _compare_units(check: _Checks, expected: Expected, st: GuestState) -> None:
    presets = st.presets or ""
    for name, want in sorted(expected.units.items()):
        if st.unit_states is not None:
            got = st.unit_states.get(name, "not reported")
            if got == "not-found" and name not in expected.defined_units and check.missing_units:
                check.not_applicable.append(f"unit {name} is {want}: {check.missing_units}")
            else:
                check(got == want, f"unit {name} is {want} (systemctl is-enabled: {got})")
        if want == "masked":
            continue  # the /dev/null link is compared with the links
        # Ignition enables and disables through its preset file (systemd applies it at first boot)
        line = f"{'enable' if want == 'enabled' else 'disable'} {name}"
        check(line in presets.splitlines(), f"unit {name}: '{line}' in {PRESET_FILE}")


def _compare_accounts(check: _Checks, expected: Expected, st: GuestState) -> None:
    for name, gid in sorted(expected.groups.items()):
        g = st.groups.get(name)
        check(g is not None and (gid is None or g[0] == gid),
              f"group {name} exists" + (f" with gid {gid}" if gid is not None else ""))  # fmt: skip
    for name, eu in sorted(expected.users.items()):
        entry = st.passwd.get(name)
        check(entry is not None, f"user {name} exists")
        if entry is None:
            continue
        if eu.uid is not None:
            check(entry.uid == eu.uid, f"user {name} has uid {eu.uid} (got {entry.uid})")
        for group in eu.groups:
            members = st.groups.get(group, (0, ()))[1]
            check(name in members, f"user {name} is in group {group}")
        if eu.ssh_keys:
            got = st.ssh_keys.get(name)
            if got is None:
                check(False, f"user {name} has Ignition's authorized_keys.d/ignition")
                continue
            for key in eu.ssh_keys:
                label = " ".join(key.split()[:1] + [key.split()[1][-12:]]) if len(key.split()) > 1 else key
                check(key in got, f"user {name} accepts SSH key {label}...")


def compare(expected: Expected, state: GuestState | qemu.FixtureResult) -> tuple[list[str], list[str]]:
    """(passed, failed) check descriptions. A :class:`qemu.FixtureResult` adds the boot and Ignition
    checks of the serial report."""
    passed, failed, _ = compare_state(expected, state)
    return passed, failed


def compare_state(
    expected: Expected, state: GuestState | qemu.FixtureResult, *, missing_units: str | None = None
) -> tuple[list[str], list[str], list[str]]:
    """(passed, failed, not applicable). ``missing_units``: why a unit that the config only enables or
    disables and that the OS does not have is not applicable (the fixture OS lacks some FCOS packages);
    None makes it a failure (real FCOS)."""
    check = _Checks(missing_units)
    if isinstance(state, qemu.FixtureResult):
        r = state
        check(r.booted, "system booted")
        check(r.ignition_ok, f"Ignition succeeded{': ' + r.ignition_failed if r.ignition_failed else ''}")
        if r.rootfs:  # live media: the initramfs found the rootfs, and it is the one built with it
            source, match = r.rootfs.get("source", "missing"), r.rootfs.get("stamp-match") == "yes"
            check(source != "missing" and match, f"live rootfs loaded (from {source}, stamp match: {match})")
        state = GuestState.from_serial(r)
    _compare_storage(check, expected, state)
    _compare_units(check, expected, state)
    _compare_accounts(check, expected, state)
    return check.passed, check.failed, check.not_applicable
