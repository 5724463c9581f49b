"""The Ignition 3.x config schema as data: field order, field types, the spec version of each field.

Field order is the order Go's ``encoding/json`` writes (the Go struct field order), which the serializer
follows to be byte-compatible with Butane and Ignition.
"""

from __future__ import annotations

from dataclasses import dataclass

SUPPORTED_VERSIONS = ("3.0.0", "3.1.0", "3.2.0", "3.3.0", "3.4.0", "3.5.0", "3.6.0")
EXPERIMENTAL_VERSIONS = ("3.7.0-experimental",)

STR = "str"
INT = "int"
BOOL = "bool"


@dataclass(frozen=True)
class ListOf:
    item: str


@dataclass(frozen=True)
class Field:
    key: str
    type: str | ListOf
    since: int = 0  # minor spec version (3.<since>.0) that introduced the field
    always: bool = False  # a non-pointer Go field without omitempty: written even when empty
    zero_omit: bool = False  # a non-pointer Go field with omitempty: omitted when ""/0/false


def _f(key: str, type_: str | ListOf, since: int = 0, **kw: bool) -> Field:
    return Field(key, type_, since, **kw)


_NODE = [
    _f("group", "NodeGroup"),
    _f("overwrite", BOOL),
    _f("path", STR, always=True),
    _f("user", "NodeUser"),
]

TYPES: dict[str, tuple[Field, ...]] = {
    "Config": (
        _f("ignition", "Ignition"),
        _f("kernelArguments", "KernelArguments", 3),
        _f("passwd", "Passwd"),
        _f("storage", "Storage"),
        _f("systemd", "Systemd"),
    ),
    "Ignition": (
        _f("config", "IgnitionConfig"),
        _f("proxy", "Proxy", 1),
        _f("security", "Security"),
        _f("timeouts", "Timeouts"),
        _f("version", STR, always=True),
    ),
    "IgnitionConfig": (_f("merge", ListOf("ConfigRef")), _f("replace", "ConfigRef")),
    "Proxy": (_f("httpProxy", STR), _f("httpsProxy", STR), _f("noProxy", ListOf(STR))),
    "Security": (_f("tls", "TLS"),),
    "TLS": (_f("certificateAuthorities", ListOf("ConfigRef")),),
    "Timeouts": (_f("httpResponseHeaders", INT), _f("httpTotal", INT)),
    "Resource": (
        _f("compression", STR),
        _f("httpHeaders", ListOf("HTTPHeader"), 1),
        _f("source", STR),
        _f("verification", "Verification"),
    ),
    # ignition.config.merge/replace and CAs: {source, verification} in 3.0, a full Resource since 3.1
    "ConfigRef": (
        _f("compression", STR, 1),
        _f("httpHeaders", ListOf("HTTPHeader"), 1),
        _f("source", STR),
        _f("verification", "Verification"),
    ),
    "HTTPHeader": (_f("name", STR, always=True), _f("value", STR)),
    "Verification": (_f("hash", STR),),
    "Storage": (
        _f("directories", ListOf("Directory")),
        _f("disks", ListOf("Disk")),
        _f("files", ListOf("File")),
        _f("filesystems", ListOf("Filesystem")),
        _f("links", ListOf("Link")),
        _f("luks", ListOf("Luks"), 2),
        _f("raid", ListOf("Raid")),
    ),
    "File": (*_NODE, _f("append", ListOf("Resource")), _f("contents", "Resource"), _f("mode", INT)),
    "Directory": (*_NODE, _f("mode", INT)),
    "Link": (*_NODE, _f("hard", BOOL), _f("target", STR)),
    "NodeUser": (_f("id", INT), _f("name", STR)),
    "NodeGroup": (_f("id", INT), _f("name", STR)),
    "Disk": (
        _f("device", STR, always=True),
        _f("partitions", ListOf("Partition")),
        _f("wipeTable", BOOL),
    ),
    "Partition": (
        _f("guid", STR),
        _f("label", STR),
        _f("number", INT, zero_omit=True),
        _f("resize", BOOL, 2),
        _f("shouldExist", BOOL),
        _f("sizeMiB", INT),
        _f("startMiB", INT),
        _f("typeGuid", STR),
        _f("wipePartitionEntry", BOOL),
    ),
    "Filesystem": (
        _f("device", STR, always=True),
        _f("format", STR),
        _f("label", STR),
        _f("mountOptions", ListOf(STR), 1),
        _f("options", ListOf(STR)),
        _f("path", STR),
        _f("uuid", STR),
        _f("wipeFilesystem", BOOL),
    ),
    "Luks": (
        _f("cex", "Cex", 5),
        _f("clevis", "Clevis"),
        _f("device", STR),
        _f("discard", BOOL, 4),
        _f("keyFile", "Resource"),
        _f("label", STR),
        _f("name", STR, always=True),
        _f("openOptions", ListOf(STR), 4),
        _f("options", ListOf(STR)),
        _f("uuid", STR),
        _f("wipeVolume", BOOL),
    ),
    "Clevis": (
        _f("custom", "ClevisCustom"),
        _f("tang", ListOf("Tang")),
        _f("threshold", INT),
        _f("tpm2", BOOL),
    ),
    "ClevisCustom": (_f("config", STR), _f("needsNetwork", BOOL), _f("pin", STR)),
    "Cex": (_f("enabled", BOOL),),
    "Tang": (_f("advertisement", STR, 4), _f("thumbprint", STR), _f("url", STR, zero_omit=True)),
    "Raid": (
        _f("devices", ListOf(STR)),
        _f("level", STR),
        _f("name", STR, always=True),
        _f("options", ListOf(STR)),
        _f("spares", INT),
    ),
    "Systemd": (_f("units", ListOf("Unit")),),
    "Unit": (
        _f("contents", STR),
        _f("dropins", ListOf("Dropin")),
        _f("enabled", BOOL),
        _f("mask", BOOL),
        _f("name", STR, always=True),
    ),
    "Dropin": (_f("contents", STR), _f("name", STR, always=True)),
    "Passwd": (_f("groups", ListOf("PasswdGroup")), _f("users", ListOf("PasswdUser"))),
    "PasswdUser": (
        _f("gecos", STR),
        _f("groups", ListOf(STR)),
        _f("homeDir", STR),
        _f("name", STR, always=True),
        _f("noCreateHome", BOOL),
        _f("noLogInit", BOOL),
        _f("noUserGroup", BOOL),
        _f("passwordHash", STR),
        _f("primaryGroup", STR),
        _f("sshAuthorizedKeys", ListOf(STR)),
        _f("shell", STR),
        _f("shouldExist", BOOL, 2),
        _f("system", BOOL),
        _f("uid", INT),
    ),
    "PasswdGroup": (
        _f("gid", INT),
        _f("name", STR, always=True),
        _f("passwordHash", STR),
        _f("shouldExist", BOOL, 2),
        _f("system", BOOL),
    ),
    "KernelArguments": (_f("shouldExist", ListOf(STR)), _f("shouldNotExist", ListOf(STR))),
}

FIELDS: dict[str, dict[str, Field]] = {name: {f.key: f for f in fields} for name, fields in TYPES.items()}


def minor(version: str) -> int:
    """``"3.4.0"`` → 4 (``3.7.0-experimental`` → 7)."""
    return int(version.split(".")[1])


def fields_for(type_name: str, spec_minor: int) -> tuple[Field, ...]:
    return tuple(f for f in TYPES[type_name] if f.since <= spec_minor)


def child_path_type(path: tuple[str | int, ...]) -> str | ListOf | None:
    """The schema type at a JSON path (``("storage", "files", 0)`` → ``"File"``), None if unknown."""
    t: str | ListOf = "Config"
    for p in path:
        if isinstance(t, ListOf):
            if not isinstance(p, int):
                return None
            t = t.item
            continue
        if t not in FIELDS or not isinstance(p, str) or p not in FIELDS[t]:
            return None
        t = FIELDS[t][p].type
    return t
