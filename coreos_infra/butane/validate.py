"""Butane's own checks of the source config (before translation).

A depth-first walk in Butane's struct field order; each node's own checks run before its children's.
Reports carry YAML paths; positions are added by the caller.
"""

from __future__ import annotations

import json
import re
from typing import Any

import coreos_infra.ignition as ign
from coreos_infra.ignition.jsonfmt import go_syntax_error, offset_to_line_col
from coreos_infra.ignition.report import ERROR, WARNING, PathT, Report

ERR_TOO_MANY_SOURCES = "only one of the following can be set: inline, local, source"
ERR_UNIT_BOTH = "only one of the following can be set: contents, contents_local"
WARN_DECIMAL_MODE = (
    "unreasonable mode would be reasonable if specified in octal; remember to add a leading zero"
)
WARN_REUSE_BY_LABEL = (
    "partitions cannot be reused by label; number must be specified except on boot disk "
    "(/dev/disk/by-id/coreos-boot-disk) or when wipe_table is true"
)
BOOT_DISK = "/dev/disk/by-id/coreos-boot-disk"
_MOUNT_PATH = re.compile(r"^/(etc|var)(/|$)")

LAYOUTS_BASE = ("aarch64", "ppc64le", "x86_64")
LAYOUTS_S390X = ("s390x-eckd", "s390x-virt", "s390x-zfcp")

# Butane's struct field order (Go field names, mostly alphabetical); the fcos additions come last
CONFIG_ORDER = ("ignition", "kernel_arguments", "passwd", "storage", "systemd", "boot_device", "grub")


def _typical(mode: int, is_dir: bool) -> bool:
    if mode == 0:
        return True
    if mode < 0 or mode > 0o7777:
        return False
    special = mode >> 9
    triplets = [mode & 7, (mode >> 3) & 7, (mode >> 6) & 7]  # other, group, owner
    prev = 0
    r_without_x = False
    for t in triplets:
        if t & prev != prev:
            return False
        if t & 1 and r_without_x:
            return False
        if t & 6 and not t & 4 or t & 1 and not t & 4:
            return False
        if t & 4 and not t & 1:
            r_without_x = True
        prev = t
    if not any(t & 4 for t in triplets):
        return False
    anyone_x = any(t & 1 for t in triplets)
    anyone_w = any(t & 2 for t in triplets)
    if is_dir:
        if not anyone_x or special & 4:
            return False
        if special & 3 and not anyone_w:
            return False
    else:
        if special & 6 and (not anyone_x or triplets[0] & 2):
            return False
        if special & 1:
            return False
    return True


def decimal_mode_warning(mode: int, is_dir: bool) -> bool:
    """True when ``mode`` looks like octal digits written without the leading zero."""
    text = str(mode)
    if len(text) > 4 or any(c not in "01234567" for c in text):
        return False
    return not _typical(mode, is_dir) and _typical(int(text, 8), is_dir)


class SourceValidator:
    def __init__(self, fcos_minor: int, target: str) -> None:
        self.minor = fcos_minor
        self.target = target
        self.reports: list[Report] = []

    def err(self, path: PathT, msg: str) -> None:
        self.reports.append(Report(ERROR, msg, path))

    def warn(self, path: PathT, msg: str) -> None:
        self.reports.append(Report(WARNING, msg, path))

    def run(self, cfg: dict[str, Any]) -> list[Report]:
        self.config(cfg)
        for key in CONFIG_ORDER:
            if key in cfg:
                self.walk(cfg[key], (key,))
        return self.reports

    # generic depth-first walk; dispatch on the path shape
    def walk(self, value: Any, path: PathT) -> None:
        self.check(value, path)
        if isinstance(value, dict):
            is_node = (
                len(path) >= 2
                and isinstance(path[-1], int)
                and path[-2] in ("files", "directories", "links")
            )
            node_keys = ("group", "overwrite", "path", "user")
            for key in sorted(value, key=lambda k: (not (is_node and k in node_keys), k)):
                self.walk(value[key], (*path, key))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                self.walk(item, (*path, i))

    def check(self, value: Any, path: PathT) -> None:
        if not isinstance(value, dict):
            return
        names = tuple(p for p in path if isinstance(p, str))
        last = names[-1] if names else ""
        is_item = bool(path) and isinstance(path[-1], int)
        if last in ("contents", "append", "key_file", "merge", "replace", "certificate_authorities"):
            if last in ("contents", "key_file", "replace") and is_item:
                return
            if last in ("append", "merge", "certificate_authorities") and not is_item:
                return
            self.resource(value, path)
        elif names[-2:] in (("systemd", "units"), ("units", "dropins")) and is_item:
            if "contents" in value and "contents_local" in value:
                self.err((*path, "contents_local"), ERR_UNIT_BOTH)
        elif names[-2:] in (("storage", "files"), ("storage", "directories")) and is_item:
            mode = value.get("mode")
            if isinstance(mode, int) and decimal_mode_warning(mode, names[-1] == "directories"):
                self.warn((*path, "mode"), WARN_DECIMAL_MODE)
        elif names[-2:] == ("storage", "filesystems") and is_item:
            self.filesystem(value, path)
        elif names[-2:] == ("storage", "trees") and is_item:
            if not value.get("local"):
                self.err(path, "local is required")
        elif names == ("boot_device",):
            self.boot_device(value, path)
        elif names == ("boot_device", "mirror"):
            self.mirror_devices(value, path)
        elif names[-2:] == ("grub", "users") and is_item:
            if not value.get("name"):
                self.err((*path, "name"), 'field "name" is required')
            if not value.get("password_hash"):
                self.err((*path, "password_hash"), 'field "password_hash" is required')

    def resource(self, res: dict[str, Any], path: PathT) -> None:
        field = None
        count = 0
        for key in ("local", "inline", "source"):
            if key in res:
                count += 1
                field = key
        if count > 1 and field is not None:
            self.err((*path, field), ERR_TOO_MANY_SOURCES)
        if self.minor >= 1 and path[:2] == ("ignition", "config") and "inline" in res:
            self.inline_config(res["inline"], path)

    def inline_config(self, inline: str | bytes, path: PathT) -> None:
        raw = inline if isinstance(inline, bytes) else inline.encode("utf-8", "surrogateescape")
        text = raw.decode("utf-8", "replace")
        if not raw:
            self.err((*path, "inline"), "not a config (empty)")
            return
        syntax = go_syntax_error(text)
        if syntax is not None:
            msg, offset = syntax
            line, col = offset_to_line_col(raw, offset)
            self.reports.append(Report(ERROR, msg, None, line, col))
            self.err((*path, "inline"), "config is not valid")
            return
        obj = json.loads(text)
        version = ign.spec_version(obj) if isinstance(obj, dict) else ""
        if version != self.target:
            self.warn(
                (*path, "version"),
                "skipping validation for the merge/replace ignition config due to an unkown version",
            )
            return
        reports = ign.validate(obj)
        self.reports.extend(reports)
        if any(r.is_error for r in reports):
            self.err((*path, "inline"), "config is not valid")

    def filesystem(self, fs: dict[str, Any], path: PathT) -> None:
        if fs.get("with_mount_unit") is not True:
            return
        no_path = "path is required if with_mount_unit is true and format is not swap"
        if self.minor < 4:
            if not fs.get("path"):
                self.err((*path, "path"), no_path)
            if not fs.get("format"):
                self.err((*path, "format"), "format is required if with_mount_unit is true")
        elif not fs.get("format"):
            self.err((*path, "format"), "format is required if with_mount_unit is true")
        elif fs.get("format") != "swap" and not fs.get("path"):
            self.err((*path, "path"), no_path)

    def config(self, cfg: dict[str, Any]) -> None:
        if self.minor < 6:
            return
        storage = cfg.get("storage") or {}
        for i, fs in enumerate(storage.get("filesystems") or []):
            if fs.get("with_mount_unit") is True and fs.get("path") is not None:
                if not _MOUNT_PATH.match(fs["path"]):
                    self.err(
                        ("storage", "filesystems", i, "path"),
                        "path must be under /etc or /var if with_mount_unit is true",
                    )
        mirror_devices = set(((cfg.get("boot_device") or {}).get("mirror") or {}).get("devices") or [])
        for i, disk in enumerate(storage.get("disks") or []):
            dev = disk.get("device")
            if dev == BOOT_DISK or disk.get("wipe_table") is True or dev in mirror_devices:
                continue
            for j, part in enumerate(disk.get("partitions") or []):
                if not part.get("number") and part.get("label"):
                    self.warn(("storage", "disks", i, "partitions", j, "number"), WARN_REUSE_BY_LABEL)

    def boot_device(self, bd: dict[str, Any], path: PathT) -> None:
        layouts = LAYOUTS_BASE + (LAYOUTS_S390X if self.minor >= 6 else ())
        layout = bd.get("layout")
        luks = bd.get("luks") or {}
        mirror = bd.get("mirror") or {}
        devices = mirror.get("devices") or []
        if layout is not None and layout not in layouts:
            self.err((*path, "layout"), "layout must be one of: " + ", ".join(sorted(layouts)))
        if self.minor >= 6:
            device = luks.get("device")
            if layout in ("s390x-eckd", "s390x-zfcp"):
                if not device:
                    self.err((*path, "layout"), "device is required for layouts: s390x-eckd, s390x-zfcp")
                elif (layout == "s390x-eckd" and not re.match(r"^/dev/dasd[a-z]$", device)) or (
                    layout == "s390x-zfcp" and not re.match(r"^/dev/sd[a-z]$", device)
                ):
                    self.err(
                        (*path, "layout"),
                        "device name must start with /dev/dasd on s390x-eckd layout or /dev/sd on "
                        "s390x-zfcp layout",
                    )
            if layout in LAYOUTS_S390X and devices:
                self.err(
                    (*path, "layout"),
                    "mirroring not supported on layouts: s390x-eckd, s390x-zfcp, s390x-virt",
                )
            if (luks.get("cex") or {}).get("enabled") is True:
                if layout is None:
                    self.err(
                        (*path, "luks", "cex"), "when using cex the targeted architecture must match s390x"
                    )
                elif layout not in LAYOUTS_S390X:
                    self.err((*path, "layout"), "when using cex the targeted architecture must match s390x")
                if luks.get("tang") or luks.get("tpm2") is True:
                    self.err((*path, "luks"), "cannot use cex with clevis")
            if (
                self.minor >= 7
                and luks.get("device")
                and not (
                    luks.get("tang")
                    or luks.get("tpm2") is True
                    or (luks.get("cex") or {}).get("enabled") is True
                )
            ):
                self.err((*path, "luks"), "no method specified for luks")
        self.mirror_devices(mirror, (*path, "mirror"))
        if devices and layout is None:
            msg = "boot_device.layout should be specified when boot_device.mirror is specified"
            if self.minor >= 7:
                self.err((*path, "mirror"), msg)
            else:
                self.warn((*path, "mirror"), msg)

    def mirror_devices(self, mirror: dict[str, Any], path: PathT) -> None:
        if len(mirror.get("devices") or []) == 1:
            self.err((*path, "devices"), "mirroring requires at least two devices")


def validate_source(cfg: dict[str, Any], fcos_minor: int, target: str) -> list[Report]:
    return SourceValidator(fcos_minor, target).run(cfg)
