"""Merge the Butane fragments of several overlays into one Butane document.

Lists of named things are merged by their key; two overlays that claim the same key with different
contents is an error naming both (``/etc/chrony.conf is written by overlays base and ntp``). Identical
entries (the same directory declared twice) are kept once. Within one overlay duplicates are left to
Butane/Ignition validation, which reports them with the rendered position.

``local:`` references are rewritten from ``NAME`` (relative to ``overlays/<overlay>/files/``) to
``<overlay>/files/NAME`` so that one ``files_dir`` (the overlays directory) serves the merged document.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from typing import Any

from coreos_infra.errors import InputError, Location

TOP_KEYS = ("variant", "version", "ignition", "storage", "systemd", "passwd", "kernel_arguments")
STORAGE_NODE_LISTS = ("directories", "files", "links")  # one key space: the path
STORAGE_OTHER = {"disks": "device", "raid": "name", "filesystems": "device", "luks": "name", "trees": "path"}

Fragment = tuple[str, str, dict[str, Any]]  # (overlay name, display file, butane data)
Owners = dict[tuple[str, str], str]  # (key space, key) -> the overlay that declared it first


class _Conflict(Exception):
    pass


def merge_fragments(fragments: list[Fragment], *, variant: str, version: str) -> dict[str, Any]:
    out: dict[str, Any] = {"variant": variant, "version": version}
    owners: dict[tuple[str, str], str] = {}  # (kind, key) -> overlay that wrote it
    for overlay, display, data in fragments:
        where = Location(display)
        if not isinstance(data, dict):
            raise InputError("the rendered template is not a mapping", where)
        for key in data:
            if key not in TOP_KEYS:
                raise InputError(
                    f"unsupported top-level Butane key {key!r} in an overlay",
                    where,
                    hint=f"overlays may use: {', '.join(TOP_KEYS)}",
                )
        for key, want in (("variant", variant), ("version", version)):
            if key in data and str(data[key]) != want:
                raise InputError(f"{key} {data[key]!r} does not match the project's {want!r}", where)
        _rewrite_locals(overlay, data, where)
        _merge_one(out, overlay, data, owners, where)
    return out


def _claim(owners: dict[tuple[str, str], str], kind: str, key: str, overlay: str, where: Location) -> None:
    prev = owners.get((kind, key))
    if prev is not None and prev != overlay:
        raise InputError(
            f"{kind} {key} is written by overlays {prev} and {overlay}",
            where,
            hint="an overlay variable may turn one of them off; two overlays cannot own one path",
        )
    owners[(kind, key)] = overlay


def _merge_one(
    out: dict[str, Any],
    overlay: str,
    data: dict[str, Any],
    owners: dict[tuple[str, str], str],
    where: Location,
) -> None:
    def section(name: str) -> dict[str, Any]:
        value = data.get(name) or {}
        if not isinstance(value, dict):
            raise InputError(f"{name} must be a mapping", where)
        return value

    _merge_storage(out, overlay, section("storage"), owners, where)
    _merge_systemd(out, overlay, section("systemd"), owners, where)
    _merge_passwd(out, overlay, section("passwd"), owners, where)
    _merge_kargs(out, overlay, section("kernel_arguments"), owners, where)
    _merge_ignition(out, overlay, section("ignition"), owners, where)


def _target(out: dict[str, Any], name: str) -> dict[str, Any]:
    result: dict[str, Any] = out.setdefault(name, {})
    return result


def _merge_storage(
    out: dict[str, Any], overlay: str, storage: dict[str, Any], owners: Owners, where: Location
) -> None:
    """Files, directories and links (one owner per path; the same node twice is fine), disks, raid,
    filesystems, luks and trees (one owner per key)."""
    for lst in STORAGE_NODE_LISTS:
        for entry in _list(storage, lst, where):
            path = _key(entry, "path", f"storage.{lst}", where)
            existing = _find_node(out, path)
            if existing is not None and existing[1] == entry and existing[0] == lst:
                continue  # the same directory/link declared twice
            if existing is not None:
                _claim(owners, "path", path, overlay, where)
            owners.setdefault(("path", path), overlay)
            _target(out, "storage").setdefault(lst, []).append(entry)
    for lst, key in STORAGE_OTHER.items():
        for entry in _list(storage, lst, where):
            k = _key(entry, key, f"storage.{lst}", where)
            _claim(owners, f"storage.{lst}", k, overlay, where)
            _target(out, "storage").setdefault(lst, []).append(entry)
    for key in storage:
        if key not in STORAGE_NODE_LISTS and key not in STORAGE_OTHER:
            raise InputError(f"unsupported key storage.{key}", where)


def _merge_systemd(
    out: dict[str, Any], overlay: str, systemd: dict[str, Any], owners: Owners, where: Location
) -> None:
    """Units: the fields of two definitions of a name must agree; their drop-ins add up (same name: same
    contents)."""
    for unit in _list(systemd, "units", where):
        name = _key(unit, "name", "systemd.units", where)
        units = _target(out, "systemd").setdefault("units", [])
        existing = next((u for u in units if u.get("name") == name), None)
        if existing is None:
            owners[("unit", name)] = overlay
            units.append(unit)
            continue
        try:
            _merge_unit(existing, unit)
        except _Conflict as e:
            prev = owners.get(("unit", name), "?")
            raise InputError(
                f"systemd unit {name} is defined by overlays {prev} and {overlay} ({e})", where
            ) from None


def _merge_passwd(
    out: dict[str, Any], overlay: str, passwd: dict[str, Any], owners: Owners, where: Location
) -> None:
    """Users and groups: fields merge, SSH keys and groups are unions; conflicts are errors."""
    for lst in ("users", "groups"):
        for entry in _list(passwd, lst, where):
            name = _key(entry, "name", f"passwd.{lst}", where)
            entries = _target(out, "passwd").setdefault(lst, [])
            existing = next((u for u in entries if u.get("name") == name), None)
            if existing is None:
                owners[(lst, name)] = overlay
                entries.append(entry)
                continue
            try:
                _merge_fields(existing, entry, union=("ssh_authorized_keys", "groups"))
            except _Conflict as e:
                prev = owners.get((lst, name), "?")
                raise InputError(
                    f"passwd {lst[:-1]} {name} is defined by overlays {prev} and {overlay} ({e})", where
                ) from None


def _merge_kargs(
    out: dict[str, Any], overlay: str, kargs: dict[str, Any], owners: Owners, where: Location
) -> None:
    """Kernel arguments: unions, and no argument both required and removed."""
    for lst in ("should_exist", "should_not_exist"):
        for arg in _list(kargs, lst, where):
            other = "should_not_exist" if lst == "should_exist" else "should_exist"
            if arg in out.get("kernel_arguments", {}).get(other, []):
                prev = owners.get(("karg", str(arg)), "?")
                raise InputError(
                    f"kernel argument {arg} is required by one overlay and removed by another "
                    f"({prev} and {overlay})",
                    where,
                )
            dest = _target(out, "kernel_arguments").setdefault(lst, [])
            if arg not in dest:
                dest.append(arg)
                owners[("karg", str(arg))] = overlay


def _merge_ignition(
    out: dict[str, Any], overlay: str, ign: dict[str, Any], owners: Owners, where: Location
) -> None:
    """The ignition section: config merges append, other keys must agree."""
    for key, value in ign.items():
        dest_ign = _target(out, "ignition")
        if key == "config" and isinstance(value, dict):
            cfg = dest_ign.setdefault("config", {})
            for ck, cv in value.items():
                if ck == "merge" and isinstance(cv, list):
                    cfg.setdefault("merge", []).extend(cv)
                elif ck in cfg and cfg[ck] != cv:
                    raise InputError(f"ignition.config.{ck} is set by two overlays differently", where)
                else:
                    cfg[ck] = cv
        elif key in dest_ign and dest_ign[key] != value:
            raise InputError(
                f"ignition.{key} is set by overlays {owners.get(('ign', key), '?')} and {overlay} "
                "differently",
                where,
            )
        else:
            dest_ign[key] = value
            owners[("ign", key)] = overlay


def _list(section: dict[str, Any], name: str, where: Location) -> list[Any]:
    value = section.get(name) or []
    if not isinstance(value, list):
        raise InputError(f"{name} must be a list", where)
    return value


def _key(entry: Any, key: str, what: str, where: Location) -> str:
    if not isinstance(entry, dict) or not entry.get(key):
        raise InputError(f"every {what} entry needs {key}", where)
    return str(entry[key])


def _find_node(out: dict[str, Any], path: str) -> tuple[str, Any] | None:
    storage = out.get("storage", {})
    for lst in STORAGE_NODE_LISTS:
        for entry in storage.get(lst, []):
            if entry.get("path") == path:
                return lst, entry
    return None


def _merge_unit(existing: dict[str, Any], new: dict[str, Any]) -> None:
    for key, value in new.items():
        if key == "dropins":
            dropins = existing.setdefault("dropins", [])
            for d in value or []:
                prev = next((x for x in dropins if x.get("name") == d.get("name")), None)
                if prev is None:
                    dropins.append(d)
                elif prev != d:
                    raise _Conflict(f"both write drop-in {d.get('name')}")
        elif key in existing and existing[key] != value:
            raise _Conflict(f"different {key}")
        else:
            existing[key] = value


def _merge_fields(existing: dict[str, Any], new: dict[str, Any], *, union: tuple[str, ...]) -> None:
    for key, value in new.items():
        if key in union and isinstance(value, list):
            dest = existing.setdefault(key, [])
            dest.extend(v for v in value if v not in dest)
        elif key in existing and existing[key] != value:
            raise _Conflict(f"different {key}")
        else:
            existing[key] = value


def _rewrite_locals(overlay: str, data: dict[str, Any], where: Location) -> None:
    prefix = f"{overlay}/files"

    def fix(value: Any, what: str) -> str:
        if not isinstance(value, str) or not value:
            raise InputError(f"{what} must be a non-empty path", where)
        joined = posixpath.normpath(posixpath.join(prefix, value.lstrip("/")))
        if not joined.startswith(prefix + "/"):
            raise InputError(f"{what} {value!r} points outside the overlay's files/ directory", where)
        return joined

    def each(items: Any, fn: Callable[[dict[str, Any]], None]) -> None:
        for item in items or []:
            if isinstance(item, dict):
                fn(item)

    storage = data.get("storage") or {}
    if isinstance(storage, dict):

        def resource(res: Any) -> None:
            if isinstance(res, dict) and "local" in res:
                res["local"] = fix(res["local"], "local")

        def file(f: dict[str, Any]) -> None:
            resource(f.get("contents"))
            for a in f.get("append") or []:
                resource(a)

        each(storage.get("files"), file)
        each(storage.get("trees"), lambda t: t.__setitem__("local", fix(t.get("local"), "trees.local")))
    systemd = data.get("systemd") or {}
    if isinstance(systemd, dict):

        def unit(u: dict[str, Any]) -> None:
            if "contents_local" in u:
                u["contents_local"] = fix(u["contents_local"], "contents_local")
            each(
                u.get("dropins"),
                lambda d: (
                    d.__setitem__("contents_local", fix(d["contents_local"], "contents_local"))
                    if "contents_local" in d
                    else None
                ),
            )

        each(systemd.get("units"), unit)
    passwd = data.get("passwd") or {}
    if isinstance(passwd, dict):
        each(
            passwd.get("users"),
            lambda u: (
                u.__setitem__(
                    "ssh_authorized_keys_local",
                    [fix(p, "ssh_authorized_keys_local") for p in u["ssh_authorized_keys_local"]],
                )
                if "ssh_authorized_keys_local" in u
                else None
            ),
        )
