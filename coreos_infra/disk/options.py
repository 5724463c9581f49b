"""The recipe options of the disk-image targets (``metal``, ``rpi4``, ``qemu``); errors name the key.

Options (all optional)::

    kernel_args: {append: [..], delete: [..]}   # edited in the last BLS entry, like coreos-installer
    console: [ttyS0,115200n8, tty0]              # coreos-installer --console grammar
    network_keyfiles: {eth0.nmconnection: "<keyfile text>"} | [/abs/path/eth0.nmconnection, ...]
    xz_preset: 0-9                               # for re-encoded blocks (default 9, as FCOS)
    splice: true                                 # false: full decompress/recompress round trip
    threads: 0                                   # 0 = all cores
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from coreos_infra.build import BuildRequest
from coreos_infra.disk.bls import BlsError, Console
from coreos_infra.disk.bootfs import BootCustomization, BootFsError, NetworkKeyfile, validate_kargs
from coreos_infra.disk.rawimage import RawImageOptions
from coreos_infra.errors import InputError, Location
from coreos_infra.targets.base import OptionSource

COMMON_KEYS = ("kernel_args", "console", "network_keyfiles", "xz_preset", "splice", "threads")


def _str_list(src: OptionSource, key: str, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str) or not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise src.error(key, "must be a list of strings")
    return tuple(value)


def parse_bool(src: OptionSource, key: str, default: bool) -> bool:
    value = src.get(key, default)
    if not isinstance(value, bool):
        raise src.error(key, f"must be true or false, not {value!r}")
    return value


def _int(src: OptionSource, key: str, default: int, lo: int, hi: int) -> int:
    value = src.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise src.error(key, f"must be an integer from {lo} to {hi}, not {value!r}")
    return value


def parse_kernel_args(src: OptionSource) -> tuple[tuple[str, ...], tuple[str, ...]]:
    ka = src.get("kernel_args") or {}
    if not isinstance(ka, Mapping):
        raise src.error("kernel_args", "must be a map with 'append' and/or 'delete' lists")
    for k in ka:
        if k not in ("append", "delete"):
            raise src.error(f"kernel_args.{k}", "unknown key; expected 'append' or 'delete'")
    append = _str_list(src, "kernel_args.append", ka.get("append"))
    delete = _str_list(src, "kernel_args.delete", ka.get("delete"))
    try:
        validate_kargs(append, delete)
    except BootFsError as e:
        raise src.error("kernel_args", e.message) from None
    return append, delete


def parse_consoles(src: OptionSource) -> tuple[Console, ...]:
    specs = _str_list(src, "console", src.get("console"))
    out = []
    for i, spec in enumerate(specs):
        try:
            out.append(Console.parse(spec))
        except BlsError as e:
            raise src.error(f"console[{i}]", e.message) from None
    return tuple(out)


def parse_keyfiles(src: OptionSource) -> tuple[NetworkKeyfile, ...]:
    value = src.get("network_keyfiles")
    if value is None:
        return ()
    files: list[tuple[str, NetworkKeyfile]] = []
    if isinstance(value, Mapping):
        for name, contents in value.items():
            key = f"network_keyfiles.{name}"
            if not isinstance(contents, str):
                raise src.error(key, "must be the keyfile's text")
            files.append((key, NetworkKeyfile(str(name), contents.encode())))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            key = f"network_keyfiles[{i}]"
            if not isinstance(item, str) or not os.path.isabs(item):
                raise src.error(key, "must be an absolute path to a .nmconnection file")
            try:
                data = Path(item).read_bytes()
            except OSError as e:
                raise src.error(key, f"cannot read {item}: {e.strerror}") from None
            files.append((key, NetworkKeyfile(Path(item).name, data)))
    else:
        raise src.error("network_keyfiles", "must be a map of file name to contents, or a list of paths")
    seen = set()
    for key, kf in files:
        try:
            kf.validate()
        except BootFsError as e:
            raise src.error(key, e.message) from None
        if kf.name in seen:
            raise src.error(key, f"keyfile {kf.name} given twice")
        seen.add(kf.name)
    return tuple(kf for _, kf in files)


@dataclass(frozen=True)
class DiskOptions:
    """The options of every disk-image target (``metal``, ``rpi4``, ``qemu``)."""

    KEYS: ClassVar[tuple[str, ...]] = COMMON_KEYS

    append_kargs: tuple[str, ...] = ()
    delete_kargs: tuple[str, ...] = ()
    consoles: tuple[Console, ...] = ()
    network_keyfiles: tuple[NetworkKeyfile, ...] = ()
    xz_preset: int = 9
    splice: bool = True
    threads: int = 0

    @classmethod
    def parse(cls, src: OptionSource) -> DiskOptions:
        src.check_keys(cls.KEYS)
        return cls.parse_common(src)

    @classmethod
    def parse_common(cls, src: OptionSource) -> DiskOptions:
        """The common keys only (a target with more keys checks its key set itself)."""
        append, delete = parse_kernel_args(src)
        return cls(
            append_kargs=append,
            delete_kargs=delete,
            consoles=parse_consoles(src),
            network_keyfiles=parse_keyfiles(src),
            xz_preset=_int(src, "xz_preset", 9, 0, 9),
            splice=parse_bool(src, "splice", True),
            threads=_int(src, "threads", 0, 0, 1024),
        )

    @property
    def keyfiles_contain_secrets(self) -> bool:
        return any(kf.has_secrets for kf in self.network_keyfiles)

    def boot_customization(self, ignition: bytes) -> BootCustomization:
        return BootCustomization(
            ignition=ignition,
            append_kargs=self.append_kargs,
            delete_kargs=self.delete_kargs,
            consoles=self.consoles,
            network_keyfiles=self.network_keyfiles,
        )

    def raw_image_options(self, req: BuildRequest) -> RawImageOptions:
        return RawImageOptions(
            boot=self.boot_customization(req.ignition),
            xz_preset=self.xz_preset,
            splice=self.splice,
            threads=self.threads,
            source_date_epoch=source_date_epoch(req.base_release),
            # the image embeds the config and the keyfiles
            output_mode=0o600 if req.contains_secrets or self.keyfiles_contain_secrets else 0o644,
        )


def source_date_epoch(base_release: str) -> int | None:
    """Timestamps for the files a build writes: ``$SOURCE_DATE_EPOCH``, else the base release's build date
    (FCOS versions are ``<fedora>.<YYYYMMDD>.<stream>.<n>``), so the same inputs give the same bytes."""
    sde = os.environ.get("SOURCE_DATE_EPOCH")
    if sde and sde.isdigit():
        return int(sde)
    parts = base_release.split(".")
    if len(parts) >= 2 and len(parts[1]) == 8 and parts[1].isdigit():
        try:
            day = datetime.datetime.strptime(parts[1], "%Y%m%d").replace(tzinfo=datetime.UTC)
        except ValueError:
            return None
        return int(day.timestamp())
    return None


def base_disk(req: BuildRequest) -> Path:
    disk = req.base.get("disk")
    if disk is None:
        raise InputError(f"the {req.kind} target needs the base 'disk' artifact (metal raw.xz)",
                         Location(file=f"recipe {req.target}", path="base"))  # fmt: skip
    return Path(disk)
