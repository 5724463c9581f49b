"""Ignition's semantic validation of a config (what ``ignition-validate`` and Butane's output check reject).

Order as in Ignition: the duplicate-key check over the whole config first, then a depth-first walk in field
order where each node's own checks run before its children's. Paths are JSON paths
(``("storage", "files", 0, "path")``).
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Callable
from typing import Any

from coreos_infra.ignition.report import ERROR, WARNING, PathT, Report
from coreos_infra.ignition.types import FIELDS, SUPPORTED_VERSIONS, ListOf, minor
from coreos_infra.ignition.urls import ERR_INVALID_URL, go_url_parses, validate_http_url, validate_url

# lists whose entries are appended on merge and never checked for duplicates
APPEND_ONLY = {
    ("File", "append"),
    ("Filesystem", "options"),
    ("Filesystem", "mountOptions"),
    ("Luks", "options"),
    ("Luks", "openOptions"),
    ("Raid", "options"),
}
# lists sharing one key space inside their parent struct
SHARED_SPACE = {
    ("Storage", "files"): "nodes",
    ("Storage", "directories"): "nodes",
    ("Storage", "links"): "nodes",
    ("KernelArguments", "shouldExist"): "kargs",
    ("KernelArguments", "shouldNotExist"): "kargs",
}

UNIT_EXTENSIONS = (
    ".service",
    ".socket",
    ".device",
    ".mount",
    ".automount",
    ".swap",
    ".target",
    ".path",
    ".timer",
    ".snapshot",
    ".slice",
    ".scope",
)
FS_FORMATS = ("ext4", "btrfs", "xfs", "swap", "vfat", "none")
FS_LABEL_MAX = {"ext4": 16, "btrfs": 256, "xfs": 12, "swap": 15, "vfat": 11}
RAID_LEVELS: tuple[str, ...] = ("linear", "raid0", "0", "stripe", "raid1", "1", "mirror", "raid4", "4")
RAID_LEVELS += ("raid5", "5", "raid6", "6", "raid10", "10")
_GUID = re.compile(r"^(|[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})$")
_SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")

DUPLICATE = "duplicate entry defined"
WARN_SPECIAL_BITS = (
    "setuid/setgid/sticky bits are not supported or functional in spec versions older than 3.6.0"
)


def item_key(type_name: str, item: Any) -> str | None:
    """The merge/duplicate key of a list item (None: no key)."""
    if not isinstance(item, dict):
        return None if item is None else str(item)
    # non-pointer Go fields: an absent value is the key ""
    if type_name in ("File", "Directory", "Link"):
        return str(item.get("path") or "")
    if type_name in ("Disk", "Filesystem"):
        return str(item.get("device") or "")
    if type_name in ("Luks", "Raid", "Unit", "Dropin", "PasswdUser", "PasswdGroup", "HTTPHeader"):
        return str(item.get("name") or "")
    if type_name == "Tang":
        return str(item.get("url") or "")
    if type_name == "Partition":
        if item.get("number"):
            return f"number:{item['number']}"
        if item.get("label") is not None:
            return f"label:{item['label']}"
        return ""
    if type_name in ("Resource", "ConfigRef"):
        return str(item.get("source") or "")
    return None


def check_path(p: Any) -> str | None:
    if not p:
        return "path not specified"
    if not isinstance(p, str) or not p.startswith("/"):
        return "path not absolute"
    if posixpath.normpath(p) != p or p.startswith("//"):
        return "path is not fully simplified"
    return None


def parse_unit(contents: str) -> tuple[set[str], str | None]:
    """Parse systemd unit text like go-systemd: (sections that have options, error message or None).

    Text before the first section header is ignored; inside sections, option lines need ``=``.
    """
    sections: set[str] = set()
    lines = contents.split("\n")
    current: str | None = None
    i = 0
    while i < len(lines):
        line = lines[i].lstrip()
        last = i == len(lines) - 1
        i += 1
        if line.startswith("["):
            end = line.find("]")
            if end < 0:
                return sections, "unable to find end of section"
            garbage = line[end + 1 :].strip()
            if garbage:
                return sections, f"found garbage after section name : {json.dumps(garbage)}"
            current = line[1:end]
            continue
        if current is None or not line or line[0] in "#;":
            continue
        if "=" not in line:
            return sections, "EOF" if last else "unexpected newline encountered while parsing option name"
        while line.endswith("\\") and i < len(lines):
            line = line[:-1] + lines[i]
            i += 1
        sections.add(current)
    return sections, None


class _Validator:
    def __init__(self, spec_minor: int) -> None:
        self.minor = spec_minor
        self.reports: list[Report] = []

    def err(self, path: PathT, msg: str) -> None:
        self.reports.append(Report(ERROR, msg, path))

    def warn(self, path: PathT, msg: str) -> None:
        self.reports.append(Report(WARNING, msg, path))

    # -- duplicates -----------------------------------------------------------------------------------
    def dups(self, value: Any, type_name: str, path: PathT) -> None:
        if not isinstance(value, dict) or type_name not in FIELDS:
            return
        seen: dict[str, set[str]] = {}
        for key, field in FIELDS[type_name].items():
            v = value.get(key)
            if v is None:
                continue
            if isinstance(field.type, ListOf) and isinstance(v, list):
                if (type_name, key) not in APPEND_ONLY:
                    space = SHARED_SPACE.get((type_name, key), key)
                    keys = seen.setdefault(space, set())
                    for i, item in enumerate(v):
                        k = item_key(field.type.item, item)
                        if k is None:
                            continue
                        if k in keys:
                            self.err((*path, key, i), DUPLICATE)
                        keys.add(k)
                for i, item in enumerate(v):
                    self.dups(item, field.type.item, (*path, key, i))
            elif isinstance(field.type, str):
                self.dups(v, field.type, (*path, key))

    # -- the walk -------------------------------------------------------------------------------------
    def walk(self, value: Any, type_name: str, path: PathT) -> None:
        if not isinstance(value, dict) or type_name not in FIELDS:
            return
        check = _CHECKS.get(type_name)
        if check is not None:
            check(self, value, path)
        for key, field in FIELDS[type_name].items():
            v = value.get(key)
            if v is None:
                continue
            if isinstance(field.type, ListOf):
                if isinstance(v, list):
                    for i, item in enumerate(v):
                        self.walk(item, field.type.item, (*path, key, i))
            else:
                self.walk(v, field.type, (*path, key))

    # -- per type -------------------------------------------------------------------------------------
    def config(self, c: dict[str, Any], p: PathT) -> None:
        systemd_paths: set[str] = set()
        for unit in (c.get("systemd") or {}).get("units") or []:
            name = unit.get("name") or ""
            if unit.get("contents"):
                systemd_paths.add(f"/etc/systemd/system/{name}")
            for d in unit.get("dropins") or []:
                if d.get("contents"):
                    systemd_paths.add(f"/etc/systemd/system/{name}.d/{d.get('name') or ''}")
        storage = c.get("storage") or {}
        for kind in ("files", "directories", "links"):
            for i, node in enumerate(storage.get(kind) or []):
                if node.get("path") in systemd_paths:
                    self.err((*p, "storage", kind, i, "path"), "path conflicts with systemd unit or dropin")

    def ignition(self, ign: dict[str, Any], p: PathT) -> None:
        v = ign.get("version")
        if not isinstance(v, str) or not _SEMVER.match(v):
            self.err((*p, "version"), "invalid config version (couldn't parse)")
        elif v not in SUPPORTED_VERSIONS:
            self.err((*p, "version"), "unsupported config version")

    def ignition_config(self, ic: dict[str, Any], p: PathT) -> None:
        for i, m in enumerate(ic.get("merge") or []):
            self.required_source(m, (*p, "merge", i))

    def required_source(self, res: dict[str, Any], p: PathT) -> None:
        src = res.get("source")
        msg = "source is required" if not src else validate_url(src)
        if msg:
            self.err(p, msg)

    def tls(self, t: dict[str, Any], p: PathT) -> None:
        for i, ca in enumerate(t.get("certificateAuthorities") or []):
            self.required_source(ca, (*p, "certificateAuthorities", i))

    def proxy(self, px: dict[str, Any], p: PathT) -> None:
        for key in ("httpProxy", "httpsProxy"):
            url = px.get(key)
            if url is not None:
                msg = validate_http_url(url)
                if msg is not None:
                    self.err((*p, key), msg if msg == ERR_INVALID_URL else "proxies must be http(s)")
                elif key == "httpsProxy" and url.lower().startswith("http:"):
                    self.warn((*p, key), "insecure plaintext HTTP proxy specified for HTTPS resources")

    def resource(self, r: dict[str, Any], p: PathT) -> None:
        comp = r.get("compression")
        if comp is not None and comp not in ("", "gzip"):
            self.err((*p, "compression"), "invalid compression method")
        h = (r.get("verification") or {}).get("hash")
        if h is not None:
            if r.get("source") is None:
                self.err(
                    (*p, "verification", "hash"), "source must be specified if verification is specified"
                )
            fn, dash, digest = h.partition("-")
            sizes = {"sha512": 128, "sha256": 64}
            msg = None
            if not dash:
                msg = "malformed hash specifier"
            elif fn not in sizes:
                msg = "unrecognized hash function"
            elif len(digest) != sizes[fn] or not re.fullmatch(r"[0-9a-fA-F]*", digest):
                msg = "incorrect size for hash sum"
            if msg:
                self.err((*p, "verification", "hash"), msg)
        src = r.get("source")
        if src is not None:
            msg = validate_url(src)
            if msg:
                self.err((*p, "source"), msg)
        headers = r.get("httpHeaders") or []
        if headers:
            scheme = src.split(":", 1)[0].lower() if src and ":" in src else ""
            if not src or not go_url_parses(src):
                self.err((*p, "httpHeaders"), "unable to parse url")
            elif scheme not in ("http", "https"):
                self.err((*p, "httpHeaders"), "cannot use HTTP headers with this source scheme")
            for i, hd in enumerate(headers):
                if not hd.get("name"):
                    self.err((*p, "httpHeaders", i, "name"), "HTTP header name can't be empty")
                if hd.get("value") == "":
                    self.err((*p, "httpHeaders", i, "value"), "unable to parse HTTP header")

    def node(self, n: dict[str, Any], p: PathT) -> None:
        msg = check_path(n.get("path"))
        if msg:
            self.err((*p, "path"), msg)
        for key in ("group", "user"):
            o = n.get(key) or {}
            if o.get("id") is not None and o.get("name"):
                self.err((*p, key), "cannot set both id and name")

    def mode(self, n: dict[str, Any], p: PathT) -> None:
        m = n.get("mode")
        if m is None:
            return
        if m < 0 or m > 0o7777:
            self.err((*p, "mode"), "illegal file mode")
        elif m & 0o7000 and self.minor < 6:
            self.warn(
                (*p, "mode"),
                WARN_SPECIAL_BITS,
            )

    # a type's own checks run before those of its embedded Node (path) and of the Node's user/group
    def file(self, f: dict[str, Any], p: PathT) -> None:
        if f.get("overwrite") is True and (f.get("contents") or {}).get("source") is None:
            self.err((*p, "overwrite"), "overwrite must be false if source is unspecified")
        self.mode(f, p)
        self.node(f, p)

    def directory(self, d: dict[str, Any], p: PathT) -> None:
        self.mode(d, p)
        self.node(d, p)

    def link(self, lk: dict[str, Any], p: PathT) -> None:
        if lk.get("target") is None:
            self.err((*p, "target"), "link target is required")
        self.node(lk, p)

    def storage(self, s: dict[str, Any], p: PathT) -> None:
        links = s.get("links") or []
        sym = [lk.get("path") or "" for lk in links]
        dirs = {d.get("path") or "" for d in s.get("directories") or []}

        def under_link(path: str) -> bool:
            return any(path.startswith(lp + "/") for lp in sym)

        for i, d in enumerate(s.get("directories") or []):
            if under_link(d.get("path") or ""):
                self.err((*p, "directories", i), "directory path includes link in config")
        for i, f in enumerate(s.get("files") or []):
            if under_link(f.get("path") or ""):
                self.err((*p, "files", i), "file path includes link in config")
        for i, lk in enumerate(links):
            lpath = lk.get("path") or ""
            if under_link(lpath):
                self.err((*p, "links", i), "link path includes link in config")
            if lk.get("hard") is not True:
                continue
            target = posixpath.normpath(lk.get("target") or "")
            if not target.startswith("/"):
                target = posixpath.normpath(posixpath.join(lpath, lk.get("target") or ""))
            if target in dirs:
                self.err((*p, "links", i), "hard link target is a directory")
            for owner in ("user", "group"):
                for key in ("id", "name"):
                    if (lk.get(owner) or {}).get(key) is not None:
                        self.warn((*p, "links", i, owner, key), "user/group ignored for hard link")
        disks = {d.get("device") or "": d for d in s.get("disks") or []}
        for i, fs in enumerate(s.get("filesystems") or []):
            disk = disks.get(fs.get("device") or "")
            if disk is None:
                continue
            if disk.get("partitions"):
                self.warn((*p, "filesystems", i, "device"), "filesystem overwrites partitioned device")
            elif fs.get("wipeFilesystem") is not True and disk.get("wipeTable") is True:
                self.warn(
                    (*p, "filesystems", i, "device"),
                    "device matches disk with wipeTable enabled; filesystem will be wiped",
                )

    def disk(self, d: dict[str, Any], p: PathT) -> None:
        if not d.get("device"):
            self.err((*p, "device"), "disk device is required")
        else:
            msg = check_path(d["device"])
            if msg:
                self.err((*p, "device"), msg)
        parts = d.get("partitions") or []
        numbers = [pt.get("number") for pt in parts if pt.get("number")]
        if len(numbers) != len(set(numbers)):
            self.err((*p, "partitions"), "partition numbers collide")
        labels = [pt.get("label") for pt in parts if pt.get("label") is not None]
        if len(labels) != len(set(labels)):
            self.err((*p, "partitions"), "cannot use the same partition label twice")
        fixed = [
            (pt["startMiB"], pt["startMiB"] + pt["sizeMiB"])
            for pt in parts
            if pt.get("startMiB") and pt.get("sizeMiB") and pt.get("shouldExist") is not False
        ]
        fixed.sort()
        if any(a[1] > b[0] for a, b in zip(fixed, fixed[1:], strict=False)):
            self.err((*p, "partitions"), "partitions overlap")
        if any(pt.get("shouldExist") is False for pt in parts) and any(
            not pt.get("number") and pt.get("shouldExist") is not False for pt in parts
        ):
            self.err(
                (*p, "partitions"),
                "shouldExist is false for a partition and other partition(s) has start or size 0",
            )

    def partition(self, pt: dict[str, Any], p: PathT) -> None:
        if pt.get("shouldExist") is False and (
            pt.get("label") is not None
            or pt.get("typeGuid")
            or pt.get("guid")
            or pt.get("startMiB") is not None
            or pt.get("sizeMiB") is not None
        ):
            self.err(p, "shouldExist specified false with other options also specified")
        if not pt.get("number") and pt.get("label") is None:
            self.err(p, "a partition number >= 1 or a label must be specified")
        label = pt.get("label")
        if label is not None:
            if len(label.encode()) > 36:
                self.err((*p, "label"), "partition labels may not exceed 36 characters")
            elif ":" in label:
                self.err((*p, "label"), "partition label will be truncated to text before the colon")
        for key in ("guid", "typeGuid"):
            g = pt.get(key)
            if g is not None and not _GUID.match(g):
                self.err((*p, key), 'doesn\'t match the form "01234567-89AB-CDEF-EDCB-A98765432101"')

    def filesystem(self, fs: dict[str, Any], p: PathT) -> None:
        if fs.get("path"):
            msg = check_path(fs["path"])
            if msg:
                self.err((*p, "path"), msg)
        msg = check_path(fs.get("device"))
        if msg:
            self.err((*p, "device"), msg)
        fmt = fs.get("format") or ""
        if not fmt:
            if (
                fs.get("path")
                or fs.get("label")
                or fs.get("uuid")
                or fs.get("wipeFilesystem") is True
                or fs.get("options")
                or fs.get("mountOptions")
            ):
                self.err(
                    (*p, "format"),
                    "format cannot be empty when path, label, uuid, wipeFilesystem, options, or "
                    "mountOptions is specified",
                )
        elif fmt not in FS_FORMATS or (fmt == "none" and self.minor < 3):
            self.err((*p, "format"), "invalid filesystem format")
        label = fs.get("label")
        if label:
            if not fmt:
                self.err((*p, "label"), "filesystem must specify format if label is specified")
            elif fmt in FS_LABEL_MAX and len(label.encode()) > FS_LABEL_MAX[fmt]:
                self.err(
                    (*p, "label"),
                    f"filesystem labels cannot be longer than {FS_LABEL_MAX[fmt]} characters "
                    f"when using {fmt}",
                )

    def luks(self, lk: dict[str, Any], p: PathT) -> None:
        if "/" in (lk.get("name") or ""):
            self.err((*p, "name"), "device names cannot contain slashes")
        if lk.get("label") is not None and len(lk["label"].encode()) > 47:
            self.err((*p, "label"), "luks device labels cannot be longer than 47 characters")
        if not lk.get("device"):
            self.err((*p, "device"), "disk device is required")
        else:
            msg = check_path(lk["device"])
            if msg:
                self.err((*p, "device"), msg)
        clevis = lk.get("clevis") or {}
        custom = clevis.get("custom") or {}
        if custom.get("pin") and (
            clevis.get("tang") or clevis.get("tpm2") is True or clevis.get("threshold")
        ):
            self.err((*p, "clevis"), "cannot use custom clevis config with tpm2, tang, or threshold")
        key_src = (lk.get("keyFile") or {}).get("source")
        if key_src and validate_url(key_src):
            self.err((*p, "keyFile"), "invalid key-file source")
        if (lk.get("cex") or {}).get("enabled") is True:
            if clevis:
                self.err((*p, "cex"), "cannot use cex with clevis")
            if lk.get("keyFile"):
                self.err((*p, "cex"), "cannot use key file with cex")

    def clevis_custom(self, c: dict[str, Any], p: PathT) -> None:
        if not c.get("pin") and not c.get("config") and c.get("needsNetwork") is not True:
            return
        pin = c.get("pin") or ""
        if not pin:
            self.err((*p, "pin"), "missing required custom clevis pin")
        elif pin not in ("tpm2", "tang", "sss"):
            self.err((*p, "pin"), "unsupported clevis pin")
        if not c.get("config"):
            self.err((*p, "config"), "missing required custom clevis config")

    def tang(self, t: dict[str, Any], p: PathT) -> None:
        msg = validate_http_url(t.get("url") or "")
        if msg:
            self.err((*p, "url"), msg)
        if not t.get("thumbprint"):
            self.err((*p, "thumbprint"), "thumbprint is required")
        adv = t.get("advertisement")
        if adv:
            try:
                json.loads(adv)
            except ValueError:
                self.err((*p, "advertisement"), "advertisement is not valid JSON")

    def raid(self, r: dict[str, Any], p: PathT) -> None:
        level = r.get("level")
        if level is None and self.minor >= 3:
            self.err((*p, "level"), "raid level is required")
        elif level not in RAID_LEVELS:
            self.err((*p, "level"), "unrecognized raid level")
        elif r.get("spares") and level in ("linear", "raid0", "0", "stripe"):
            self.err((*p, "level"), "spares unsupported for linear and raid0 arrays")
        devices = r.get("devices") or []
        if not devices:
            self.err((*p, "devices"), "raid devices required")
        for i, d in enumerate(devices):
            msg = check_path(d)
            if msg:
                self.err((*p, "devices", i), msg)

    def systemd(self, s: dict[str, Any], p: PathT) -> None:
        units = s.get("units") or []
        by_name = {u.get("name"): u for u in units}
        for i, u in enumerate(units):
            name = u.get("name") or ""
            if u.get("enabled") is not True or "@" not in name:
                continue
            prefix, _, rest = name.partition("@")
            ext = rest[rest.rfind(".") :] if "." in rest else ""
            if not rest[: -len(ext) or None]:
                continue
            template = by_name.get(f"{prefix}@{ext}")
            if template and template.get("contents"):
                sections, _ = parse_unit(template["contents"])
                if "Install" not in sections:
                    self.warn(
                        (*p, "units", i, "contents"),
                        f'template unit "{prefix}@{ext}" for "{name}" doesn\'t have Install section',
                    )

    def unit(self, u: dict[str, Any], p: PathT) -> None:
        name = u.get("name") or ""
        if not name.endswith(UNIT_EXTENSIONS):
            self.err((*p, "name"), "invalid systemd unit extension")
        contents = u.get("contents")
        if contents:
            sections, msg = parse_unit(contents)
            if msg:
                self.err((*p, "contents"), f"invalid unit content: {msg}")
            elif u.get("enabled") is True and "Install" not in sections:
                self.warn(
                    (*p, "contents"),
                    f'unit "{name}" is enabled, but has no install section so enable does nothing',
                )

    def dropin(self, d: dict[str, Any], p: PathT) -> None:
        if not (d.get("name") or "").endswith(".conf"):
            self.err((*p, "name"), "invalid systemd drop-in extension")
        if d.get("contents"):
            _, msg = parse_unit(d["contents"])
            if msg:
                self.err((*p, "contents"), f"invalid unit content: {msg}")


_CHECKS: dict[str, Callable[[_Validator, dict[str, Any], PathT], None]] = {
    "Config": _Validator.config,
    "Ignition": _Validator.ignition,
    "IgnitionConfig": _Validator.ignition_config,
    "TLS": _Validator.tls,
    "Proxy": _Validator.proxy,
    "Resource": _Validator.resource,
    "ConfigRef": _Validator.resource,
    "File": _Validator.file,
    "Directory": _Validator.directory,
    "Link": _Validator.link,
    "Storage": _Validator.storage,
    "Disk": _Validator.disk,
    "Partition": _Validator.partition,
    "Filesystem": _Validator.filesystem,
    "Luks": _Validator.luks,
    "ClevisCustom": _Validator.clevis_custom,
    "Tang": _Validator.tang,
    "Raid": _Validator.raid,
    "Systemd": _Validator.systemd,
    "Unit": _Validator.unit,
    "Dropin": _Validator.dropin,
}


def validate(config: dict[str, Any], *, spec_minor: int | None = None) -> list[Report]:
    """Ignition's validation of ``config``; reports carry JSON paths and no line/column."""
    if spec_minor is None:
        try:
            spec_minor = minor(str(config.get("ignition", {}).get("version", "3.5.0")))
        except (ValueError, IndexError, AttributeError):
            spec_minor = 5
    v = _Validator(spec_minor)
    v.dups(config, "Config", ())
    v.walk(config, "Config", ())
    return v.reports
