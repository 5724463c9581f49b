"""``customize`` semantics shared by ``iso customize`` and ``pxe customize`` (coreos-installer compatible).

Pure functions of their inputs: they take the options as a frozen :class:`CustomizeOptions` (file contents
already read) and the OS :class:`Features`, and return the files to embed. Nothing here touches an image.

Public API::

    opts = CustomizeOptions.from_paths(dest_device="/dev/vda", dest_ignition=["dest.ign"], ...)
    features = Features.parse(features_json_bytes, "features.json")   # or Features() when absent
    result = customize(opts, features, flavor="pxe")   # -> CustomizeResult
    result.initrd            # {"config.ign": ..., "etc/coreos-firstboot-network/x.nmconnection": ...}
    result.live_config       # bytes of config.ign, or None (no live config => none embedded)
    result.installer_configs # {"/etc/coreos/installer.d/0000-customize.yaml": ...}
    result.dest_config       # bytes of /etc/coreos/dest.ign, or None
    result.messages          # lines coreos-installer prints to stderr ("Boot media will ...")
    result.warnings          # "Warning parsing <path>: unused key: $.a"

    build_live_config(opts, features) -> bytes | None
    installer_config_files(opts, features) -> dict[str, bytes]

Construction order and byte layout follow coreos-installer 0.26 (see ``coreos-installer-formats.md`` §4.3).
"""

from __future__ import annotations

import base64
import json
import re
import struct
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from coreos_infra.console import Console
from coreos_infra.console import grub_console_commands as grub_console_commands  # re-exported
from coreos_infra.errors import CustomizeError
from coreos_infra.ignition.installer import (
    GENERATED_VERSION,
    IgnitionConfigError,
    ParsedConfig,
    normalize,
    parse_config,
    serialize,
)

NETWORK_DIR = "etc/coreos-firstboot-network"
IGNITION_MEMBER = "config.ign"
INSTALLER_DIR = "/etc/coreos/installer.d"
DEST_IGNITION_PATH = "/etc/coreos/dest.ign"
DOCS_URL = "https://coreos.github.io/coreos-installer/customizing-install/"

Flavor = Literal["iso", "pxe"]


# ------------------------------------------------------------------ inputs


@dataclass(frozen=True)
class InputFile:
    """A file given on the command line: the path as written (for messages and basenames) and its bytes."""

    path: str
    data: bytes

    @classmethod
    def read(cls, path: str | Path) -> InputFile:
        try:
            return cls(str(path), Path(path).read_bytes())
        except OSError as e:
            raise CustomizeError(f"reading {path}\n\nCaused by:\n    {e.strerror}") from None

    @property
    def name(self) -> str:
        name = Path(self.path).name
        if not name:
            raise CustomizeError(f"missing filename in {self.path}")
        return name


def _files(paths: Iterable[str | Path | InputFile]) -> tuple[InputFile, ...]:
    return tuple(p if isinstance(p, InputFile) else InputFile.read(p) for p in paths)


@dataclass(frozen=True)
class CustomizeOptions:
    """The options common to ``iso customize`` and ``pxe customize``, in coreos-installer's terms."""

    dest_ignition: tuple[InputFile, ...] = ()
    dest_device: str | None = None
    dest_console: tuple[str, ...] = ()
    dest_karg_append: tuple[str, ...] = ()
    dest_karg_delete: tuple[str, ...] = ()
    network_keyfile: tuple[InputFile, ...] = ()
    network_nmstate: tuple[InputFile, ...] = ()
    ignition_ca: tuple[InputFile, ...] = ()
    pre_install: tuple[InputFile, ...] = ()
    post_install: tuple[InputFile, ...] = ()
    installer_config: tuple[InputFile, ...] = ()
    live_ignition: tuple[InputFile, ...] = ()

    @classmethod
    def from_paths(
        cls,
        *,
        dest_ignition: Sequence[str | Path | InputFile] = (),
        dest_device: str | None = None,
        dest_console: Sequence[str] = (),
        dest_karg_append: Sequence[str] = (),
        dest_karg_delete: Sequence[str] = (),
        network_keyfile: Sequence[str | Path | InputFile] = (),
        network_nmstate: Sequence[str | Path | InputFile] = (),
        ignition_ca: Sequence[str | Path | InputFile] = (),
        pre_install: Sequence[str | Path | InputFile] = (),
        post_install: Sequence[str | Path | InputFile] = (),
        installer_config: Sequence[str | Path | InputFile] = (),
        live_ignition: Sequence[str | Path | InputFile] = (),
    ) -> CustomizeOptions:
        """Options from file paths (read now) or already-read :class:`InputFile` objects."""
        return cls(
            dest_ignition=_files(dest_ignition),
            dest_device=dest_device,
            dest_console=tuple(dest_console),
            dest_karg_append=tuple(dest_karg_append),
            dest_karg_delete=tuple(dest_karg_delete),
            network_keyfile=_files(network_keyfile),
            network_nmstate=_files(network_nmstate),
            ignition_ca=_files(ignition_ca),
            pre_install=_files(pre_install),
            post_install=_files(post_install),
            installer_config=_files(installer_config),
            live_ignition=_files(live_ignition),
        )

    def is_empty(self) -> bool:
        return not any(getattr(self, f) for f in self.__dataclass_fields__)


# ------------------------------------------------------------------ OS features


@dataclass(frozen=True)
class Features:
    """OS feature flags from ``coreos/features.json`` (ISO) or ``etc/coreos/features.json`` (initramfs).

    A missing file means every flag is false.
    """

    installer_config: bool = False
    installer_config_directives: Mapping[str, bool] = field(default_factory=dict)
    live_initrd_network: bool = False

    @classmethod
    def parse(cls, data: bytes, source: str = "features.json") -> Features:
        try:
            raw = json.loads(data)
        except ValueError as e:
            raise CustomizeError(f"parsing OS features ({source})\n\nCaused by:\n    {e}") from None
        if not isinstance(raw, dict):
            raise CustomizeError(f"parsing OS features ({source}): expected a JSON object")

        def flag(key: str) -> bool:
            v = raw.get(key, False)
            if not isinstance(v, bool):
                raise CustomizeError(f"parsing OS features ({source}): {key} must be a boolean")
            return v

        directives = raw.get("installer-config-directives", {})
        if not isinstance(directives, dict) or not all(isinstance(v, bool) for v in directives.values()):
            raise CustomizeError(
                f"parsing OS features ({source}): installer-config-directives must map names to booleans"
            )
        return cls(flag("installer-config"), dict(directives), flag("live-initrd-network"))


def _unsupported(what: str) -> CustomizeError:
    return CustomizeError(f"This OS image does not support customizing {what}.")


# ------------------------------------------------------------------ resources


GZIP_HEADER = bytes.fromhex("1f8b08000000000002ff")  # mtime 0, XFL 2 (best), OS 255, as flate2 writes


def gzip_best(data: bytes) -> bytes:
    """A gzip member like flate2's ``GzEncoder`` at level 9 (deflate bytes may differ from miniz_oxide)."""
    c = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS, 9)
    body = c.compress(data) + c.flush()
    return GZIP_HEADER + body + struct.pack("<II", zlib.crc32(data), len(data) & 0xFFFFFFFF)


def make_resource(data: bytes) -> dict[str, Any]:
    """An Ignition resource holding ``data`` as a gzip-compressed base64 data URL."""
    return {
        "compression": "gzip",
        "source": "data:;base64," + base64.b64encode(gzip_best(data)).decode(),
    }


# ------------------------------------------------------------------ consoles


# ------------------------------------------------------------------ installer config (§4.7)

# key -> kind: s string, l list of strings, b flag, c list of consoles, r fetch-retries, h ignition hash
INSTALL_KEYS: dict[str, str] = {
    "stream": "s", "image-url": "s", "image-file": "s", "ignition-file": "s", "ignition-url": "s",
    "ignition-hash": "h", "architecture": "s", "platform": "s", "console": "c", "append-karg": "l",
    "delete-karg": "l", "copy-network": "b", "network-dir": "s", "save-partlabel": "l",
    "save-partindex": "l", "offline": "b", "insecure": "b", "insecure-ignition": "b",
    "stream-base-url": "s", "preserve-on-error": "b", "fetch-retries": "r", "secure-ipl": "b",
    "dest-device": "s",
}  # fmt: skip
_BOOLS = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_HASH = re.compile(r"(sha256-[0-9a-fA-F]{64}|sha512-[0-9a-fA-F]{128})")


def parse_install_config(data: bytes, source: str) -> dict[str, Any]:
    """Parse an installer config file; raise ``parsing installer config <source>`` on any error."""
    import yaml  # only for --installer-config: a plain --dest-* customization does not pay for it

    def fail(why: str) -> CustomizeError:
        return CustomizeError(f"parsing installer config {source}\n\nCaused by:\n    {why}")

    try:
        raw = yaml.load(data, Loader=yaml.BaseLoader)  # noqa: S506 - BaseLoader builds only str/list/dict
    except yaml.YAMLError as e:
        raise fail(str(e)) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise fail("invalid type: expected a mapping of installer options")
    out: dict[str, Any] = {}
    for key, value in raw.items():
        kind = INSTALL_KEYS.get(key)
        if kind is None:
            expected = ", ".join(f"`{k}`" for k in INSTALL_KEYS)
            raise fail(f"unknown field `{key}`, expected one of {expected}")
        if kind in "lc":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise fail(f"{key}: invalid type, expected a sequence of strings")
            if kind == "c":
                try:
                    value = [str(Console.parse(v)) for v in value]
                except CustomizeError as e:
                    raise fail(f"{key}: {e}") from None
        elif not isinstance(value, str):
            raise fail(f"{key}: invalid type, expected a scalar")
        elif kind == "b":
            if value not in _BOOLS:
                raise fail(f"{key}: invalid value {value!r}, expected a boolean")
            value = _BOOLS[value]
        elif kind == "h" and not _HASH.fullmatch(value):
            raise fail(f"{key}: invalid Ignition hash {value!r}, expected sha256-<hex> or sha512-<hex>")
        elif kind == "r" and value != "infinite" and not value.isdigit():
            raise fail(f"{key}: invalid value {value!r}, expected a number or 'infinite'")
        out[key] = value
    return out


_YAML_INDICATORS = set("-?:,[]{}#&*!|>'\"%@`")
_YAML_NUMBER = re.compile(
    r"[-+]?(0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?0o[0-7_]+|[-+]?0b[01_]+"
    r"|[-+]?(\.[0-9]+|[0-9][0-9_]*(\.[0-9_]*)?)([eE][-+]?[0-9]+)?"
    r"|[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN)"
)


def _yaml_scalar(s: str) -> str:
    """A string as serde_yaml 0.9 writes it: plain when unambiguous, else single- or double-quoted."""
    ambiguous = (
        s in ("", "~", "null", "Null", "NULL") or s in _BOOLS or _YAML_NUMBER.fullmatch(s) is not None
    )
    printable = all(c in "\t" or (" " <= c and c != "\x7f") for c in s) and "\n" not in s
    plain_ok = (
        not ambiguous
        and printable
        and s[0] not in _YAML_INDICATORS
        and s[0] != " "
        and s[-1] != " "
        and ": " not in s
        and " #" not in s
        and not s.endswith(":")
        and "\t" not in s
    )
    if plain_ok:
        return s
    if printable:
        return "'" + s.replace("'", "''") + "'"
    return json.dumps(s, ensure_ascii=False)


def serialize_install_config(conf: Mapping[str, Any]) -> bytes:
    """Serialize an installer config like serde_yaml 0.9: fields in declaration order, only set ones."""
    lines: list[str] = []
    for key in INSTALL_KEYS:
        if key not in conf or conf[key] is None:
            continue
        value = conf[key]
        if isinstance(value, list):
            if not value:
                continue
            lines.append(f"{key}:")
            lines += [f"- {_yaml_scalar(str(v))}" for v in value]
        elif isinstance(value, bool):
            if INSTALL_KEYS[key] == "b" and not value:
                continue
            lines.append(f"{key}: {'true' if value else 'false'}")
        else:
            lines.append(f"{key}: {_yaml_scalar(str(value))}")
    return ("\n".join(lines) + "\n").encode() if lines else b"{}\n"


# ------------------------------------------------------------------ construction (§4.3)


def hook_unit(flavor: Flavor | str, kind: str, name: str) -> str:
    """The systemd unit that runs a pre-/post-install hook script."""
    if kind == "pre":
        deps, target = (
            "After=coreos-installer-pre.target\nBefore=coreos-installer.service",
            "coreos-installer.service",
        )
    else:
        deps, target = (
            "After=coreos-installer.service\nBefore=coreos-installer.target",
            "coreos-installer.target",
        )
    del flavor  # upstream writes the literal text "{iso|pxe}"
    return (
        "# Generated by coreos-installer {iso|pxe} customize\n\n[Unit]\n"
        f"Description={kind.capitalize()}-Install Script ({name})\nDocumentation={DOCS_URL}\n{deps}\n\n"
        f"[Service]\nType=oneshot\nExecStart=/usr/local/bin/{kind}-install-{name}\nRemainAfterExit=true\n"
        "StandardOutput=kmsg+console\nStandardError=kmsg+console\n\n"
        f"[Install]\nRequiredBy={target}"
    )


class _LiveConfig:
    """The generated (3.3.0) config, built lazily in insertion order."""

    def __init__(self) -> None:
        self.value: dict[str, Any] = {"ignition": {"version": GENERATED_VERSION}}

    def _files(self) -> list[dict[str, Any]]:
        files: list[dict[str, Any]] = self.value.setdefault("storage", {}).setdefault("files", [])
        return files

    def add_file(self, path: str, data: bytes, mode: int) -> None:
        storage = self.value.get("storage", {})
        taken = [n.get("path") for kind in ("files", "directories", "links") for n in storage.get(kind, [])]
        if path in taken:
            raise CustomizeError(f"config already specifies path {path}")
        self._files().append({"path": path, "contents": make_resource(data), "mode": mode})

    def add_unit(self, name: str, contents: str) -> None:
        units: list[dict[str, Any]] = self.value.setdefault("systemd", {}).setdefault("units", [])
        if any(u["name"] == name for u in units):
            raise CustomizeError(f"config already specifies unit {name}")
        units.append({"name": name, "contents": contents, "enabled": True})

    def add_ca(self, data: bytes) -> None:
        tls = self.value["ignition"].setdefault("security", {}).setdefault("tls", {})
        tls.setdefault("certificateAuthorities", []).append(make_resource(data))

    def merge(self, child: bytes) -> None:
        config = self.value["ignition"].setdefault("config", {})
        config.setdefault("merge", []).append(make_resource(child))

    def to_bytes(self) -> bytes:
        return serialize(normalize(self.value, GENERATED_VERSION).value)


@dataclass(frozen=True)
class CustomizeResult:
    """What a customization embeds: initrd members plus the pieces, for inspection and tests."""

    initrd: dict[str, bytes]
    live_config: bytes | None
    dest_config: bytes | None
    installer_configs: dict[str, bytes]
    runs_installer: bool
    messages: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


def _parse_user_config(f: InputFile, warnings: list[str]) -> ParsedConfig:
    try:
        parsed = parse_config(f.data)
    except IgnitionConfigError as e:
        raise CustomizeError(f"parsing Ignition config {f.path}\n\nCaused by:\n    {e}") from None
    warnings += [f"Warning parsing {f.path}: {w}" for w in parsed.warnings]
    return parsed


@dataclass
class _Customization:
    """One customization in progress: filled in coreos-installer's order, which fixes the output bytes."""

    features: Features
    flavor: Flavor
    warnings: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    live: _LiveConfig | None = None
    installer: dict[str, Any] | None = None
    user_dest: list[ParsedConfig] = field(default_factory=list)
    dest_ca: list[bytes] = field(default_factory=list)
    copy_network: bool = False
    serial: int = 0  # the next installer config file number
    initrd: dict[str, bytes] = field(default_factory=dict)
    installer_files: dict[str, bytes] = field(default_factory=dict)

    def live_config(self) -> _LiveConfig:
        if self.live is None:
            self.live = _LiveConfig()
        return self.live

    def installer_config(self) -> dict[str, Any]:
        if self.installer is None:
            self.installer = {}
        return self.installer

    def add_installer_config(self, name: str, data: bytes) -> None:
        if not self.features.installer_config:
            raise _unsupported("installer configuration")
        path = f"{INSTALLER_DIR}/{self.serial:04d}-{name}"
        self.live_config().add_file(path, data, 0o600)
        self.installer_files[path] = data
        self.serial += 1

    def add_keyfile(self, name: str, data: bytes, shown: str) -> None:
        path = f"{NETWORK_DIR}/{name}"
        if path in self.initrd:
            raise CustomizeError(f"config already specifies keyfile {shown}")
        self.initrd[path] = data

    def destination(self, opts: CustomizeOptions) -> None:
        """The installed system: its Ignition configs, disk, consoles and kernel arguments."""
        for f in opts.dest_ignition:
            self.user_dest.append(_parse_user_config(f, self.warnings))
        if opts.dest_device is not None:
            self.installer_config()["dest-device"] = opts.dest_device
        for spec in opts.dest_console:
            if not self.features.installer_config_directives.get("console", False):
                raise _unsupported("the destination console")
            self.installer_config().setdefault("console", []).append(str(Console.parse(spec)))
        for arg in opts.dest_karg_append:
            self.installer_config().setdefault("append-karg", []).append(arg)
        for arg in opts.dest_karg_delete:
            self.installer_config().setdefault("delete-karg", []).append(arg)

    def network(self, opts: CustomizeOptions) -> None:
        """NetworkManager keyfiles for the live system (copied to the installed one)."""
        for f in opts.network_keyfile:
            if not self.features.live_initrd_network:
                raise _unsupported("network settings")
            self.add_keyfile(f.name, f.data, f.name)
            self.copy_network = True
        for f in opts.network_nmstate:
            if not self.features.live_initrd_network:
                raise _unsupported("network settings")
            for name, data in nmstate_keyfiles(f).items():
                self.add_keyfile(name, data, f"{NETWORK_DIR}/{name}")
            self.copy_network = True

    def live_system(self, opts: CustomizeOptions) -> None:
        """The live system: CAs, install hooks, installer configs and the user's live Ignition configs."""
        for f in opts.ignition_ca:
            self.live_config().add_ca(f.data)
            self.dest_ca.append(f.data)
        for kind, scripts in (("pre", opts.pre_install), ("post", opts.post_install)):
            for f in scripts:
                live = self.live_config()
                live.add_file(f"/usr/local/bin/{kind}-install-{f.name}", f.data, 0o700)
                live.add_unit(f"{kind}-install-{f.name}.service", hook_unit(self.flavor, kind, f.name))
        for f in opts.installer_config:
            parse_install_config(f.data, f.path)
            self.add_installer_config(f.name, f.data)
        for f in opts.live_ignition:
            child = _parse_user_config(f, self.warnings)
            self.live_config().merge(child.to_bytes(newline=False))

    def finish_destination(self) -> bytes | None:
        """``/etc/coreos/dest.ign``: the one user config as is, or the CAs and configs merged."""
        if not self.user_dest:
            return None
        if not self.dest_ca and len(self.user_dest) == 1:
            dest_bytes = self.user_dest[0].to_bytes()
        else:
            dest = _LiveConfig()
            for ca in self.dest_ca:
                dest.add_ca(ca)
            for cfg in self.user_dest:
                dest.merge(cfg.to_bytes(newline=False))
            dest_bytes = dest.to_bytes()
        self.live_config().add_file(DEST_IGNITION_PATH, dest_bytes, 0o600)
        self.installer_config()["ignition-file"] = DEST_IGNITION_PATH
        return dest_bytes

    def finish_installer(self) -> bool:
        """Whether the live system runs the installer; its ``customize.yaml`` config when it does."""
        runs_installer = self.serial > 0 or self.installer is not None
        if runs_installer:
            device = self.installer.get("dest-device") if self.installer is not None else None
            if device is not None:
                self.messages.append(
                    f"Boot media will automatically install to {device} without confirmation."
                )
            else:
                self.messages.append("Boot media will automatically run installer.")
            if self.copy_network:
                self.installer_config()["copy-network"] = True
        if self.installer is not None:
            self.add_installer_config("customize.yaml", serialize_install_config(self.installer))
        return runs_installer


def customize(opts: CustomizeOptions, features: Features, *, flavor: Flavor = "iso") -> CustomizeResult:
    """Build the live initrd members for ``opts`` exactly as coreos-installer's customize does."""
    c = _Customization(features, flavor)
    c.destination(opts)
    c.network(opts)
    c.live_system(opts)
    dest_bytes = c.finish_destination()
    runs_installer = c.finish_installer()
    live_bytes: bytes | None = None
    if c.live is not None:
        live_bytes = c.live.to_bytes()
        c.initrd[IGNITION_MEMBER] = live_bytes
    return CustomizeResult(
        initrd=c.initrd,
        live_config=live_bytes,
        dest_config=dest_bytes,
        installer_configs=c.installer_files,
        runs_installer=runs_installer,
        messages=tuple(c.messages),
        warnings=tuple(c.warnings),
    )


def build_live_config(opts: CustomizeOptions, features: Features, *, flavor: Flavor = "iso") -> bytes | None:
    """The live Ignition config (``config.ign`` of the initrd), or None when nothing needs one."""
    return customize(opts, features, flavor=flavor).live_config


def installer_config_files(opts: CustomizeOptions, features: Features) -> dict[str, bytes]:
    """The installer config files the live system gets in ``/etc/coreos/installer.d`` (path -> bytes)."""
    return customize(opts, features).installer_configs


def nmstate_keyfiles(f: InputFile) -> dict[str, bytes]:
    """NetworkManager keyfiles generated from an nmstate YAML/JSON file by ``nmstatectl gc``."""
    import yaml

    from coreos_infra.run import find_binary, run

    nmstatectl = find_binary(
        "nmstatectl", reason="convert --network-nmstate files to NetworkManager keyfiles"
    )
    try:
        yaml.safe_load(f.data)
    except yaml.YAMLError as e:
        raise CustomizeError(f"parsing nmstate {f.path}\n\nCaused by:\n    {e}") from None
    out = run([nmstatectl, "gc", "-"], input=f.data, capture=True).stdout
    generated = yaml.safe_load(out) or {}
    conns = generated.get("NetworkManager") or []
    return {str(name): str(content).encode() for name, content in conns}
