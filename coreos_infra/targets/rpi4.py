"""The ``rpi4`` target: a Raspberry Pi 4 SD-card image.

The aarch64 FCOS metal ``raw.xz`` gets the site's Ignition config, kernel arguments and keyfiles in
its ``boot`` filesystem (as the ``metal`` target), and the pftf EDK2 UEFI firmware unpacked into its
EFI system partition with a ``config.txt`` (the "combined disk" layout of the FCOS Raspberry Pi 4
docs). Options beyond the common ones::

    firmware: {version: v1.50, url: <default: the pftf GitHub release>, sha256: <optional pin>}
    firmware_lock: <path>       # default: recipes/firmware.lock of the project
    config_txt: {key: value} | "<verbatim text>"   # default: upstream's config.txt
    ram_limit_3gb: false        # RamLimitTo3GB=0 in RPI_EFI.fd (true sets 1; unset keeps what ships)
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from coreos_infra import firmware
from coreos_infra.build import BuildRequest, BuildResult
from coreos_infra.disk.fat import FatImage
from coreos_infra.disk.options import COMMON_KEYS, base_disk, check_keys, option_error, parse_raw_options
from coreos_infra.disk.rawimage import build_raw_image
from coreos_infra.errors import InputError, Location
from coreos_infra.paths import project_root

KEYS = (*COMMON_KEYS, "firmware", "firmware_lock", "config_txt", "ram_limit_3gb")


def _option_error(target: str, key: str, message: str) -> InputError:
    return InputError(message, Location(file=f"recipe {target}", path=f"options.{key}"))


def parse_firmware(options: Mapping[str, Any], target: str) -> firmware.FirmwareSpec:
    fw = options.get("firmware") or {}
    if not isinstance(fw, Mapping):
        raise _option_error(target, "firmware", "must be a map with version, url and optional sha256")
    for key in fw:
        if key not in ("version", "url", "sha256"):
            raise _option_error(target, f"firmware.{key}", "unknown key; expected version, url, sha256")
    values: dict[str, Any] = {}
    for key in ("version", "url", "sha256"):
        if key in fw and fw[key] is not None:
            if not isinstance(fw[key], str) or not fw[key]:
                raise _option_error(target, f"firmware.{key}", "must be a non-empty string")
            values[key] = fw[key]
    if "version" in values and not values["version"].replace(".", "").replace("v", "").isdigit():
        raise _option_error(
            target, "firmware.version", f"{values['version']!r} does not look like a release tag (v1.50)"
        )
    if "url" in values and not values["url"].startswith(("https://", "http://", "file://")):
        raise _option_error(target, "firmware.url", "must be an http(s):// or file:// URL")
    sha = values.get("sha256")
    if sha is not None and (len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha)):
        raise _option_error(target, "firmware.sha256", "must be 64 lowercase hex digits")
    return firmware.FirmwareSpec(**values)


def parse_config_txt(req: BuildRequest) -> Mapping[str, Any] | str | None:
    value = req.options.get("config_txt")
    if value is None or isinstance(value, str):
        return value
    if not isinstance(value, Mapping):
        raise option_error(
            req, "config_txt", "must be a map of config.txt keys, or the whole file as a string"
        )
    for key, v in value.items():
        if not isinstance(key, str) or not key or "=" in key or any(c.isspace() for c in key):
            raise option_error(req, f"config_txt.{key}", "is not a valid config.txt key")
        items = v if isinstance(v, list) else [v]
        for item in items:
            if item is not None and not isinstance(item, (str, int, bool)) or "\n" in str(item):
                raise option_error(
                    req, f"config_txt.{key}", "values must be single-line strings, numbers or booleans"
                )
    if "armstub" in value and value["armstub"] != "RPI_EFI.fd":
        raise option_error(req, "config_txt.armstub", "must stay RPI_EFI.fd, or the Pi does not start UEFI")
    return value


def resolve_firmware(
    target: str, options: Mapping[str, Any], cache_dir: Path
) -> tuple[firmware.FirmwareSpec, Path, str]:
    """The firmware an rpi4 recipe's ``options`` ask for: (spec, verified cached zip, its sha256).

    The pipeline calls this before rendering, so that the build ID covers the firmware's sha256 (the same
    version from another URL is another build)."""
    spec = parse_firmware(options, target)
    lock_opt = options.get("firmware_lock")
    if lock_opt is not None and not isinstance(lock_opt, str):
        raise _option_error(target, "firmware_lock", "must be a path")
    lock = Path(lock_opt) if lock_opt else project_root() / "recipes" / "firmware.lock"
    zip_path, zip_sha = firmware.fetch_firmware(spec, cache_dir, lock)
    return spec, zip_path, zip_sha


def build(req: BuildRequest) -> BuildResult:
    check_keys(req, KEYS)
    if req.arch != "aarch64":
        raise option_error(req, "arch", f"the Raspberry Pi 4 is aarch64, not {req.arch}")
    opts = parse_raw_options(req)
    config_txt = parse_config_txt(req)
    ram = req.options.get("ram_limit_3gb")
    if ram is not None and not isinstance(ram, bool):
        raise option_error(req, "ram_limit_3gb", f"must be true or false, not {ram!r}")
    # verified against the lock and validated as a firmware archive before any image work
    spec, zip_path, zip_sha = resolve_firmware(req.target, req.options, req.cache_dir)

    def esp_hook(esp: FatImage) -> dict[str, Any]:
        inst = firmware.install_firmware(zip_path, zip_sha, spec.version, esp, config_txt=config_txt,
                                         ram_limit_3gb=ram)  # fmt: skip
        return {
            "esp_files": list(inst.files),
            "config_txt": inst.config_txt,
            "ram_limit_3gb": inst.ram_limit_3gb,
        }

    out = req.out_dir / f"{req.name}.raw.xz"
    facts = build_raw_image(base_disk(req), out, opts, esp_hook)
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
    if any(kf.has_secrets for kf in opts.boot.network_keyfiles):
        meta["network_keyfiles_contain_secrets"] = True
    return BuildResult(artifacts=[out], meta=meta)
