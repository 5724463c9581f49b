"""The Ignition 3.x config schema as data: the one table of every object's fields, for every spec version.

Each :class:`Field` says what both readers of a config need to know:

- for Butane and Ignition (Go's ``encoding/json``): the field order (the Go struct order, which the
  serializer follows to be byte-compatible), the spec version that introduced the field (``since``), and
  how an empty value is written (``always``, ``zero_omit``);
- for coreos-installer (Rust structs generated from Ignition's JSON schemas): the schema *kind* per spec
  version (:meth:`Field.kind`): ``R`` required (always written), ``N`` nullable (written as ``null`` when
  absent), ``O`` optional (omitted when absent), and whether array items may be ``null``.

The table is hand-written and checked, field by field and version by version, against Ignition's JSON
schemas (``tests/test_customize_schema.py``, ``tests/test_ignition_model.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

SUPPORTED_VERSIONS = ("3.0.0", "3.1.0", "3.2.0", "3.3.0", "3.4.0", "3.5.0", "3.6.0")
EXPERIMENTAL_VERSIONS = ("3.7.0-experimental",)

STR = "str"
INT = "int"
BOOL = "bool"
SCALARS = (STR, INT, BOOL)
LATEST_MINOR = 7  # a walk "for every version" (3.7.0-experimental included)

REQUIRED = "R"
NULLABLE = "N"
OPTIONAL = "O"


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
    required: bool = False  # required by the schema, though not an ``always`` Go field (an object)
    older: tuple[int, str] | None = None  # (minor, kind): the schema kind of the specs before 3.<minor>.0
    null_items_before: int = 0  # array items may be null in the specs before 3.<this>.0

    def kind(self, spec_minor: int) -> str:
        """The schema kind in spec 3.<spec_minor>: required, nullable or optional (see the module doc)."""
        if self.older is not None and spec_minor < self.older[0]:
            return self.older[1]
        if self.always or self.required:
            return REQUIRED
        if self.zero_omit or isinstance(self.type, ListOf) or self.type not in SCALARS:
            return OPTIONAL
        return NULLABLE

    def null_items(self, spec_minor: int) -> bool:
        return spec_minor < self.null_items_before


def _f(
    key: str,
    type_: str | ListOf,
    since: int = 0,
    *,
    older: tuple[int, str] | None = None,
    null_items_before: int = 0,
    always: bool = False,
    zero_omit: bool = False,
    required: bool = False,
) -> Field:
    return Field(key, type_, since, always, zero_omit, required, older, null_items_before)


_NODE = [
    _f("group", "NodeGroup"),
    _f("overwrite", BOOL),
    _f("path", STR, always=True),
    _f("user", "NodeUser"),
]

TYPES: dict[str, tuple[Field, ...]] = {
    "Config": (
        _f("ignition", "Ignition", required=True),
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
        _f("version", STR, always=True, older=(4, OPTIONAL)),
    ),
    "IgnitionConfig": (_f("merge", ListOf("ConfigRef")), _f("replace", "ConfigRef")),
    "Proxy": (_f("httpProxy", STR), _f("httpsProxy", STR), _f("noProxy", ListOf(STR), null_items_before=4)),
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
        _f("source", STR, older=(1, REQUIRED)),
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
    "Link": (*_NODE, _f("hard", BOOL), _f("target", STR, older=(3, REQUIRED))),
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
        _f("clevis", "Clevis", older=(3, NULLABLE)),
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
        _f("custom", "ClevisCustom", older=(3, NULLABLE)),
        _f("tang", ListOf("Tang")),
        _f("threshold", INT),
        _f("tpm2", BOOL),
    ),
    "ClevisCustom": (
        _f("config", STR, older=(3, REQUIRED)),
        _f("needsNetwork", BOOL),
        _f("pin", STR, older=(3, REQUIRED)),
    ),
    "Cex": (_f("enabled", BOOL),),
    "Tang": (_f("advertisement", STR, 4), _f("thumbprint", STR), _f("url", STR, zero_omit=True)),
    "Raid": (
        _f("devices", ListOf(STR), older=(3, REQUIRED)),
        _f("level", STR, older=(3, REQUIRED)),
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
