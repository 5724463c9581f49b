"""``boot_device``: LUKS root (TPM2, Tang, CEX) and mirrored boot disks for every layout."""

from __future__ import annotations

from typing import Any

from coreos_infra.ignition.report import PathT

BIOS_TYPE = "21686148-6449-6E6F-744E-656564454649"
PREP_TYPE = "9E1A2D38-C612-4316-AA26-8B49521E5A8B"
RESERVED_TYPE = "8DA63339-0007-60C0-C436-083AC8230908"
ESP_TYPE = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"


def _mirror(devices: list[Any], layout: str, storage: dict[str, Any], filesystems: list[dict[str, Any]],
            origins: dict[PathT, PathT]) -> None:  # fmt: skip
    """The partitions of each mirrored disk, the RAID1 boot and root arrays, ESPs and the boot filesystem."""
    mirror_path: PathT = ("boot_device", "mirror")
    efi = layout in ("x86_64", "aarch64")
    disks: list[dict[str, Any]] = []
    for n, device in enumerate(devices, start=1):
        parts: list[dict[str, Any]] = []
        if layout == "x86_64":
            parts.append({"label": f"bios-{n}", "sizeMiB": 1, "typeGuid": BIOS_TYPE})
        elif layout == "ppc64le":
            parts.append({"label": f"prep-{n}", "sizeMiB": 4, "typeGuid": PREP_TYPE})
        elif layout == "aarch64":
            parts.append({"label": f"reserved-{n}", "sizeMiB": 1, "typeGuid": RESERVED_TYPE})
        if efi:
            parts.append({"label": f"esp-{n}", "sizeMiB": 127, "typeGuid": ESP_TYPE})
        else:
            parts.append({"label": f"reserved-{n}", "sizeMiB": 1, "typeGuid": RESERVED_TYPE})
        parts.append({"label": f"boot-{n}", "sizeMiB": 384})
        parts.append({"label": f"root-{n}"})
        origins[("storage", "disks", len(disks))] = (*mirror_path, "devices", n - 1)
        disks.append({"device": device, "partitions": parts, "wipeTable": True})
        if efi:
            origins[("storage", "filesystems", len(filesystems))] = (*mirror_path, "devices", n - 1)
            filesystems.append(
                {
                    "device": f"/dev/disk/by-partlabel/esp-{n}",
                    "format": "vfat",
                    "label": f"esp-{n}",
                    "wipeFilesystem": True,
                }
            )
    storage["disks"] = disks
    storage["raid"] = [
        {
            "devices": [f"/dev/disk/by-partlabel/boot-{n}" for n in range(1, len(devices) + 1)],
            "level": "raid1",
            "name": "md-boot",
            "options": ["--metadata=1.0"],
        },
        {
            "devices": [f"/dev/disk/by-partlabel/root-{n}" for n in range(1, len(devices) + 1)],
            "level": "raid1",
            "name": "md-root",
        },
    ]
    origins[("storage", "raid", 0)] = mirror_path
    origins[("storage", "raid", 1)] = mirror_path
    origins[("storage", "filesystems", len(filesystems))] = mirror_path
    filesystems.append(
        {"device": "/dev/md/md-boot", "format": "ext4", "label": "boot", "wipeFilesystem": True}
    )


def _luks_root(luks: dict[str, Any], layout: str, want_mirror: bool, cex: bool) -> dict[str, Any]:
    """The LUKS volume of the root filesystem (Clevis with Tang/TPM2, or a CEX key)."""
    if layout == "s390x-eckd":
        device = f"{luks.get('device') or ''}2"
    elif layout == "s390x-zfcp":
        device = f"{luks.get('device') or ''}4"
    elif want_mirror:
        device = "/dev/md/md-root"
    else:
        device = "/dev/disk/by-partlabel/root"
    entry: dict[str, Any] = {"device": device}
    if "discard" in luks:
        entry["discard"] = luks["discard"]
    entry.update({"label": "luks-root", "name": "root", "wipeVolume": True})
    if cex:
        entry["cex"] = {"enabled": True}
    else:
        clevis: dict[str, Any] = {}
        if luks.get("tang"):
            clevis["tang"] = [
                {k: t[k] for k in ("advertisement", "thumbprint", "url") if k in t} for t in luks["tang"]
            ]
        if "threshold" in luks:
            clevis["threshold"] = luks["threshold"]
        if "tpm2" in luks:
            clevis["tpm2"] = luks["tpm2"]
        entry["clevis"] = clevis
    return entry


def boot_device_config(cfg: dict[str, Any]) -> tuple[dict[str, Any], dict[PathT, PathT]]:
    """The generated parent config and the origins of its list entries."""
    bd = cfg.get("boot_device") or {}
    luks = bd.get("luks") or {}
    cex = (luks.get("cex") or {}).get("enabled") is True
    want_luks = luks.get("tpm2") is True or bool(luks.get("tang")) or cex
    devices = (bd.get("mirror") or {}).get("devices") or []
    want_mirror = bool(devices)
    if not want_luks and not want_mirror:
        return {}, {}
    layout = bd.get("layout") or "x86_64"
    storage: dict[str, Any] = {}
    origins: dict[PathT, PathT] = {}
    filesystems: list[dict[str, Any]] = []
    luks_path: PathT = ("boot_device", "luks")
    if want_mirror:
        _mirror(devices, layout, storage, filesystems, origins)
    if want_luks:
        entry = _luks_root(luks, layout, want_mirror, cex)
        storage["luks"] = [entry]
        origins[("storage", "luks", 0)] = luks_path
    origins[("storage", "filesystems", len(filesystems))] = ("boot_device",)
    filesystems.append(
        {
            "device": "/dev/mapper/root" if want_luks else "/dev/md/md-root",
            "format": "xfs",
            "label": "root",
            "wipeFilesystem": True,
        }
    )
    storage["filesystems"] = filesystems
    return {"storage": storage}, origins
