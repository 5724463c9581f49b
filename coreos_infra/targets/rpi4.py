"""The ``rpi4`` target: a Raspberry Pi 4 SD-card image.

The aarch64 FCOS metal ``raw.xz`` gets the site's Ignition config, kernel arguments and keyfiles in
its ``boot`` filesystem (as the ``metal`` target), and the pftf EDK2 UEFI firmware unpacked into its
EFI system partition with a ``config.txt`` (the "combined disk" layout of the FCOS Raspberry Pi 4
docs). Options beyond the common ones::

    firmware: {version: v1.50, url: <default: the pftf GitHub release>, sha256: <optional pin>}
    firmware_lock: <path>       # default: recipes/firmware.lock of the project
    config_txt: {key: value} | "<verbatim text>"   # default: upstream's config.txt
    ram_limit_3gb: false        # RamLimitTo3GB=0 in RPI_EFI.fd (true sets 1; unset keeps what ships)

The firmware zip is a declared input (:class:`PiFirmware`): the pipeline fetches and verifies it (from a
firmware mirror when the source names one) before the build and hands it over as ``base["firmware"]``.
A ``url`` other than the official release needs its ``sha256`` (or a ``firmware_lock`` of its own that
pins it on first use).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

from coreos_infra import firmware
from coreos_infra.boottest.paths import BootPath
from coreos_infra.build import BuildRequest, BuildResult
from coreos_infra.disk.fat import FatImage
from coreos_infra.disk.options import COMMON_KEYS, DiskOptions, base_disk, parse_bool
from coreos_infra.disk.rawimage import build_raw_image
from coreos_infra.fsutil import sha256_file
from coreos_infra.paths import project_root
from coreos_infra.targets.base import Arch, Base, BootProfile, InputSource, OptionSource, Output, Target

KEYS = (*COMMON_KEYS, "firmware", "firmware_lock", "config_txt", "ram_limit_3gb")
_CONFIG_KEY = re.compile(r"^[a-z0-9_]+$")


def parse_firmware(src: OptionSource) -> firmware.FirmwareSpec:
    fw = src.get("firmware") or {}
    if not isinstance(fw, Mapping):
        raise src.error("firmware", "must be a map with version, url and optional sha256")
    for key in fw:
        if key not in ("version", "url", "sha256"):
            raise src.error(f"firmware.{key}", "unknown key; expected version, url, sha256")
    values: dict[str, Any] = {}
    for key in ("version", "url", "sha256"):
        if key in fw and fw[key] is not None:
            if not isinstance(fw[key], str) or not fw[key]:
                raise src.error(f"firmware.{key}", "must be a non-empty string")
            values[key] = fw[key]
    if "version" in values and not values["version"].replace(".", "").replace("v", "").isdigit():
        raise src.error(
            "firmware.version", f"{values['version']!r} does not look like a release tag (v1.50)"
        )
    if "url" in values and not values["url"].startswith(("https://", "http://", "file://")):
        raise src.error("firmware.url", "must be an http(s):// or file:// URL")
    sha = values.get("sha256")
    if sha is not None and (len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha)):
        raise src.error("firmware.sha256", "must be 64 lowercase hex digits")
    if "url" in values and sha is None and src.get("firmware_lock") is None:
        raise src.error("firmware.sha256", "a firmware url needs its sha256 (nothing unverified is used)")
    return firmware.FirmwareSpec(**values)


def parse_config_txt(src: OptionSource) -> Mapping[str, Any] | str | None:
    value = src.get("config_txt")
    if value is None or isinstance(value, str):
        return value
    if not isinstance(value, Mapping):
        raise src.error("config_txt", "must be a map of config.txt keys, or the whole file as a string")
    for key, v in value.items():
        if not isinstance(key, str) or not _CONFIG_KEY.match(key):
            raise src.error(f"config_txt.{key}", "is not a valid config.txt key")
        items = v if isinstance(v, list) else [v]
        for item in items:
            if item is not None and not isinstance(item, (str, int, bool)) or "\n" in str(item):
                raise src.error(
                    f"config_txt.{key}", "values must be single-line strings, numbers or booleans"
                )
    if "armstub" in value and value["armstub"] != "RPI_EFI.fd":
        raise src.error("config_txt.armstub", "must stay RPI_EFI.fd, or the Pi does not start UEFI")
    return value


@dataclass(frozen=True)
class PiFirmware:
    """The pftf UEFI firmware zip, a declared input of the rpi4 build."""

    spec: firmware.FirmwareSpec
    lock: Path  # the lock file that pins the zip's SHA-256

    role: ClassVar[str] = "firmware"

    @property
    def version(self) -> str:
        return self.spec.version

    def fetch(self, source: InputSource) -> Path:
        """Download (or find in the cache) and verify the zip; a firmware mirror gets its own lock file."""
        spec, lock = self.spec, self.lock
        if source.firmware_url or source.fixture_firmware:
            base = source.firmware_url
            if source.fixture_firmware is not None:
                from coreos_infra.fixtures.firmware import ensure_firmware_dir

                base = ensure_firmware_dir(source.fixture_firmware, spec.version).resolve().as_uri()
                spec = replace(spec, sha256=None)  # a recipe pins the official zip, not the fixture one
            url = f"{str(base).rstrip('/')}/RPi4_UEFI_Firmware_{spec.version}.zip"
            spec, lock = replace(spec, url=url), source.cache_dir / "firmware-mirror.lock"
        zip_path, _ = firmware.fetch_firmware(spec, source.cache_dir, lock)
        firmware.read_firmware_zip(zip_path)  # refuse a bad archive before any image work
        return zip_path


@dataclass(frozen=True)
class Rpi4Options:
    KEYS: ClassVar[tuple[str, ...]] = KEYS

    disk: DiskOptions
    firmware: PiFirmware
    config_txt: Mapping[str, Any] | str | None = None
    ram_limit_3gb: bool | None = None

    @classmethod
    def parse(cls, src: OptionSource) -> Rpi4Options:
        src.check_keys(KEYS)
        disk = DiskOptions.parse_common(src)
        spec = parse_firmware(src)
        config_txt = parse_config_txt(src)
        ram = src.get("ram_limit_3gb")
        if ram is not None:
            ram = parse_bool(src, "ram_limit_3gb", False)
        lock_opt = src.get("firmware_lock")
        if lock_opt is not None and not isinstance(lock_opt, str):
            raise src.error("firmware_lock", "must be a path")
        lock = Path(lock_opt) if lock_opt else project_root() / "recipes" / "firmware.lock"
        return cls(disk, PiFirmware(spec, lock), config_txt, ram)


class Rpi4Target(Target, kind="rpi4"):
    title = "Raspberry Pi 4"
    options = Rpi4Options
    bases = (Base("metal", "raw.xz"), Base("metal", "4k.raw.xz"))
    arches = (Arch.AARCH64,)
    output = Output("metal", "raw.xz", ".raw.xz")
    boot = BootProfile(medium="disk", firmware=("uefi",), xz=True)
    boot_paths = (BootPath("rpi4", "uefi", "disk", "disk"),)  # AAVMF (QEMU has no Raspberry Pi 4 machine)

    @classmethod
    def inputs(cls, options: Rpi4Options) -> tuple[PiFirmware, ...]:
        return (options.firmware,)

    def build(self, req: BuildRequest) -> BuildResult:
        opts: Rpi4Options = self.options_of(req)
        self.check_arch(req)
        given = req.base.get(PiFirmware.role)
        zip_path = Path(given) if given else opts.firmware.fetch(InputSource(req.cache_dir))
        zip_sha = sha256_file(zip_path)
        spec = opts.firmware.spec

        def esp_hook(esp: FatImage) -> dict[str, Any]:
            inst = firmware.install_firmware(
                zip_path,
                zip_sha,
                spec.version,
                esp,
                config_txt=opts.config_txt,
                ram_limit_3gb=opts.ram_limit_3gb,
            )
            return {
                "esp_files": list(inst.files),
                "config_txt": inst.config_txt,
                "ram_limit_3gb": inst.ram_limit_3gb,
            }

        out = req.out_dir / self.output.artifact_name(req.name)
        facts = build_raw_image(base_disk(req), out, opts.disk.raw_image_options(req), esp_hook)
        fw_meta = {
            "name": "pftf/RPi4 UEFI",
            "version": spec.version,
            "url": spec.resolved_url,
            "sha256": zip_sha,
            "ram_limit_3gb": facts.pop("ram_limit_3gb"),
            "config_txt": facts.pop("config_txt"),
            "files": facts.pop("esp_files"),
        }
        meta: dict[str, Any] = {"image": facts, "firmware": fw_meta, "firmware_version": spec.version}
        if opts.disk.keyfiles_contain_secrets:
            meta["network_keyfiles_contain_secrets"] = True
        return BuildResult(artifacts=[out], meta=meta)


build = Rpi4Target().build
