"""The Butane ``variant: fcos`` schema, version by version: which YAML keys exist and their types.

Types are ``"str"``, ``"int"``, ``"bool"``, :class:`ListOf` or the name of a struct in :data:`STRUCTS`.
A field carries the fcos minor version (1.<since>.0) that introduced it; keys of later versions are
"unused keys" (warnings) in earlier ones.
"""

from __future__ import annotations

from dataclasses import dataclass

from coreos_infra.ignition.types import BOOL, INT, STR, ListOf

# fcos version → Ignition spec version emitted
FCOS_VERSIONS = {
    "1.0.0": "3.0.0",
    "1.1.0": "3.1.0",
    "1.2.0": "3.2.0",
    "1.3.0": "3.2.0",
    "1.4.0": "3.3.0",
    "1.5.0": "3.4.0",
    "1.6.0": "3.5.0",
    "1.7.0": "3.6.0",
}


@dataclass(frozen=True)
class BField:
    key: str
    type: str | ListOf
    since: int = 0
    until: int = 99  # last minor version having the field (exclusive upper bound + 1)


def _b(key: str, type_: str | ListOf, since: int = 0, until: int = 99) -> BField:
    return BField(key, type_, since, until)


_NODE = (_b("path", STR), _b("overwrite", BOOL), _b("user", "NodeUser"), _b("group", "NodeGroup"))

STRUCTS: dict[str, tuple[BField, ...]] = {
    "Config": (
        _b("variant", STR),
        _b("version", STR),
        _b("ignition", "Ignition"),
        _b("kernel_arguments", "KernelArguments", 4),
        _b("storage", "Storage"),
        _b("systemd", "Systemd"),
        _b("passwd", "Passwd"),
        _b("boot_device", "BootDevice", 3),
        _b("grub", "Grub", 5),
    ),
    "Ignition": (
        _b("config", "IgnitionConfig"),
        _b("timeouts", "Timeouts"),
        _b("security", "Security"),
        _b("proxy", "Proxy", 1),
    ),
    "IgnitionConfig": (_b("merge", ListOf("ConfigResource")), _b("replace", "ConfigResource")),
    "Timeouts": (_b("http_response_headers", INT), _b("http_total", INT)),
    "Security": (_b("tls", "TLS"),),
    "TLS": (_b("certificate_authorities", ListOf("ConfigResource")),),
    "Proxy": (_b("http_proxy", STR), _b("https_proxy", STR), _b("no_proxy", ListOf(STR))),
    # files' contents/append: in 1.0 {source, inline, compression, verification}
    "Resource": (
        _b("source", STR),
        _b("inline", STR),
        _b("local", STR, 1),
        _b("compression", STR),
        _b("http_headers", ListOf("HTTPHeader"), 1),
        _b("verification", "Verification"),
    ),
    # merge/replace/CAs: in 1.0 {source, verification}
    "ConfigResource": (
        _b("source", STR),
        _b("inline", STR, 1),
        _b("local", STR, 1),
        _b("compression", STR, 1),
        _b("http_headers", ListOf("HTTPHeader"), 1),
        _b("verification", "Verification"),
    ),
    "HTTPHeader": (_b("name", STR), _b("value", STR)),
    "Verification": (_b("hash", STR),),
    "Storage": (
        _b("disks", ListOf("Disk")),
        _b("raid", ListOf("Raid")),
        _b("filesystems", ListOf("Filesystem")),
        _b("files", ListOf("File")),
        _b("directories", ListOf("Directory")),
        _b("links", ListOf("Link")),
        _b("luks", ListOf("Luks"), 2),
        _b("trees", ListOf("Tree"), 1),
    ),
    "Disk": (_b("device", STR), _b("wipe_table", BOOL), _b("partitions", ListOf("Partition"))),
    "Partition": (
        _b("label", STR),
        _b("number", INT),
        _b("size_mib", INT),
        _b("start_mib", INT),
        _b("type_guid", STR),
        _b("guid", STR),
        _b("wipe_partition_entry", BOOL),
        _b("should_exist", BOOL),
        _b("resize", BOOL, 2),
    ),
    "Raid": (
        _b("name", STR),
        _b("level", STR),
        _b("devices", ListOf(STR)),
        _b("spares", INT),
        _b("options", ListOf(STR)),
    ),
    "Filesystem": (
        _b("device", STR),
        _b("format", STR),
        _b("path", STR),
        _b("wipe_filesystem", BOOL),
        _b("label", STR),
        _b("uuid", STR),
        _b("options", ListOf(STR)),
        _b("mount_options", ListOf(STR), 1),
        _b("with_mount_unit", BOOL, 1),
    ),
    "File": (*_NODE, _b("contents", "Resource"), _b("append", ListOf("Resource")), _b("mode", INT)),
    "Directory": (*_NODE, _b("mode", INT)),
    "Link": (*_NODE, _b("target", STR), _b("hard", BOOL)),
    "NodeUser": (_b("id", INT), _b("name", STR)),
    "NodeGroup": (_b("id", INT), _b("name", STR)),
    "Luks": (
        _b("name", STR),
        _b("label", STR),
        _b("uuid", STR),
        _b("device", STR),
        _b("key_file", "ConfigResource"),
        _b("options", ListOf(STR)),
        _b("wipe_volume", BOOL),
        _b("clevis", "Clevis"),
        _b("discard", BOOL, 5),
        _b("open_options", ListOf(STR), 5),
        _b("cex", "Cex", 6),
    ),
    "Clevis": (
        _b("tang", ListOf("Tang")),
        _b("tpm2", BOOL),
        _b("threshold", INT),
        _b("custom", "ClevisCustom"),
    ),
    "ClevisCustom": (_b("pin", STR), _b("config", STR), _b("needs_network", BOOL)),
    "Tang": (_b("url", STR), _b("thumbprint", STR), _b("advertisement", STR, 5)),
    "Cex": (_b("enabled", BOOL),),
    "Tree": (
        _b("local", STR),
        _b("path", STR),
        _b("user", "NodeUser", 7),
        _b("group", "NodeGroup", 7),
        _b("file_mode", INT, 7),
        _b("dir_mode", INT, 7),
    ),
    "Systemd": (_b("units", ListOf("Unit")),),
    "Unit": (
        _b("name", STR),
        _b("enabled", BOOL),
        _b("mask", BOOL),
        _b("contents", STR),
        _b("contents_local", STR, 5),
        _b("dropins", ListOf("Dropin")),
    ),
    "Dropin": (_b("name", STR), _b("contents", STR), _b("contents_local", STR, 5)),
    "Passwd": (_b("users", ListOf("User")), _b("groups", ListOf("Group"))),
    "User": (
        _b("name", STR),
        _b("password_hash", STR),
        _b("ssh_authorized_keys", ListOf(STR)),
        _b("ssh_authorized_keys_local", ListOf(STR), 5),
        _b("uid", INT),
        _b("gecos", STR),
        _b("home_dir", STR),
        _b("no_create_home", BOOL),
        _b("primary_group", STR),
        _b("groups", ListOf(STR)),
        _b("no_user_group", BOOL),
        _b("no_log_init", BOOL),
        _b("shell", STR),
        _b("should_exist", BOOL, 2),
        _b("system", BOOL),
    ),
    "Group": (
        _b("name", STR),
        _b("gid", INT),
        _b("password_hash", STR),
        _b("should_exist", BOOL, 2),
        _b("system", BOOL),
    ),
    "KernelArguments": (_b("should_exist", ListOf(STR)), _b("should_not_exist", ListOf(STR))),
    "BootDevice": (_b("layout", STR), _b("luks", "BootDeviceLuks"), _b("mirror", "BootDeviceMirror")),
    "BootDeviceLuks": (
        _b("tang", ListOf("Tang")),
        _b("threshold", INT),
        _b("tpm2", BOOL),
        _b("discard", BOOL, 5),
        _b("device", STR, 6),
        _b("cex", "Cex", 6),
    ),
    "BootDeviceMirror": (_b("devices", ListOf(STR)),),
    "Grub": (_b("users", ListOf("GrubUser")),),
    "GrubUser": (_b("name", STR), _b("password_hash", STR)),
}


def fields(struct: str, fcos_minor: int) -> dict[str, BField]:
    """The fields of ``struct`` in fcos 1.<fcos_minor>.0."""
    return {f.key: f for f in STRUCTS[struct] if f.since <= fcos_minor < f.until}
