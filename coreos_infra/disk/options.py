"""Validate the recipe options of the raw-image targets (``metal``, ``rpi4``); errors name the key.

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
from pathlib import Path
from typing import Any

from coreos_infra.build import BuildRequest
from coreos_infra.disk.bls import BlsError, Console
from coreos_infra.disk.bootfs import BootCustomization, BootFsError, NetworkKeyfile, validate_kargs
from coreos_infra.disk.rawimage import RawImageOptions
from coreos_infra.errors import InputError, Location

COMMON_KEYS = ("kernel_args", "console", "network_keyfiles", "xz_preset", "splice", "threads")


def option_error(req: BuildRequest, key: str, message: str) -> InputError:
    return InputError(message, Location(file=f"recipe {req.target}", path=f"options.{key}"))


def check_keys(req: BuildRequest, allowed: tuple[str, ...]) -> None:
    for key in req.options:
        if key not in allowed:
            raise option_error(
                req, key, f"unknown option for a {req.kind} target; known: {', '.join(allowed)}"
            )


def _str_list(req: BuildRequest, key: str, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str) or not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise option_error(req, key, "must be a list of strings")
    return tuple(value)


def _bool(req: BuildRequest, key: str, default: bool) -> bool:
    value = req.options.get(key, default)
    if not isinstance(value, bool):
        raise option_error(req, key, f"must be true or false, not {value!r}")
    return value


def _int(req: BuildRequest, key: str, default: int, lo: int, hi: int) -> int:
    value = req.options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise option_error(req, key, f"must be an integer from {lo} to {hi}, not {value!r}")
    return value


def parse_kernel_args(req: BuildRequest) -> tuple[tuple[str, ...], tuple[str, ...]]:
    ka = req.options.get("kernel_args") or {}
    if not isinstance(ka, Mapping):
        raise option_error(req, "kernel_args", "must be a map with 'append' and/or 'delete' lists")
    for k in ka:
        if k not in ("append", "delete"):
            raise option_error(req, f"kernel_args.{k}", "unknown key; expected 'append' or 'delete'")
    append = _str_list(req, "kernel_args.append", ka.get("append"))
    delete = _str_list(req, "kernel_args.delete", ka.get("delete"))
    try:
        validate_kargs(append, delete)
    except BootFsError as e:
        raise option_error(req, "kernel_args", e.message) from None
    return append, delete


def parse_consoles(req: BuildRequest) -> tuple[Console, ...]:
    specs = _str_list(req, "console", req.options.get("console"))
    out = []
    for i, spec in enumerate(specs):
        try:
            out.append(Console.parse(spec))
        except BlsError as e:
            raise option_error(req, f"console[{i}]", e.message) from None
    return tuple(out)


def parse_keyfiles(req: BuildRequest) -> tuple[NetworkKeyfile, ...]:
    value = req.options.get("network_keyfiles")
    if value is None:
        return ()
    files: list[tuple[str, NetworkKeyfile]] = []
    if isinstance(value, Mapping):
        for name, contents in value.items():
            key = f"network_keyfiles.{name}"
            if not isinstance(contents, str):
                raise option_error(req, key, "must be the keyfile's text")
            files.append((key, NetworkKeyfile(str(name), contents.encode())))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            key = f"network_keyfiles[{i}]"
            if not isinstance(item, str) or not os.path.isabs(item):
                raise option_error(req, key, "must be an absolute path to a .nmconnection file")
            try:
                data = Path(item).read_bytes()
            except OSError as e:
                raise option_error(req, key, f"cannot read {item}: {e.strerror}") from None
            files.append((key, NetworkKeyfile(Path(item).name, data)))
    else:
        raise option_error(
            req, "network_keyfiles", "must be a map of file name to contents, or a list of paths"
        )
    seen = set()
    for key, kf in files:
        try:
            kf.validate()
        except BootFsError as e:
            raise option_error(req, key, e.message) from None
        if kf.name in seen:
            raise option_error(req, key, f"keyfile {kf.name} given twice")
        seen.add(kf.name)
    return tuple(kf for _, kf in files)


def parse_raw_options(req: BuildRequest) -> RawImageOptions:
    append, delete = parse_kernel_args(req)
    keyfiles = parse_keyfiles(req)
    boot = BootCustomization(
        ignition=req.ignition,
        append_kargs=append,
        delete_kargs=delete,
        consoles=parse_consoles(req),
        network_keyfiles=keyfiles,
    )
    secrets = req.contains_secrets or any(kf.has_secrets for kf in keyfiles)
    return RawImageOptions(
        boot=boot,
        xz_preset=_int(req, "xz_preset", 9, 0, 9),
        splice=_bool(req, "splice", True),
        threads=_int(req, "threads", 0, 0, 1024),
        source_date_epoch=source_date_epoch(req.base_release),
        output_mode=0o600 if secrets else 0o644,  # the image embeds the config and the keyfiles
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
