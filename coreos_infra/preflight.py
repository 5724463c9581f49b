"""Checks of a VM's boot media before QEMU starts: a mistake found here costs milliseconds, not a boot.

- every file the VM names exists (kernel, initrds, CD, disks, the TFTP directory and its boot file);
- the architecture of the artifact matches the machine: a direct-boot kernel image (x86 bzImage ``HdrS``,
  arm64 ``Image`` magic, or an EFI PE image's machine type), and the removable-media EFI loader of a raw
  disk's EFI system partition (``EFI/BOOT/BOOTX64.EFI`` vs ``BOOTAA64.EFI``);
- the logical sector size of a raw GPT disk matches the VM's (a 4Kn image has its GPT header at byte
  4096, a 512-byte one at byte 512): booting a 4Kn image as a 512-byte disk finds no partitions at all.

Failures raise :class:`PreflightError` (a :class:`coreos_infra.qemu.BootError` without a serial log) with
``reason`` one of ``missing file``, ``wrong architecture``, ``sector size mismatch``.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

from coreos_infra.disk.gpt import SIGNATURE, TYPE_ESP, GptError, read_gpt
from coreos_infra.errors import CoreosInfraError

if TYPE_CHECKING:
    from coreos_infra.qemu import VmConfig

PE_MACHINES = {0x8664: "x86_64", 0xAA64: "aarch64", 0x014C: "i386", 0x01C4: "arm"}
EFI_LOADERS = {"x86_64": "BOOTX64.EFI", "aarch64": "BOOTAA64.EFI"}


class PreflightError(CoreosInfraError):
    """A VM's boot media cannot work on its machine; ``reason`` says which check failed."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"preflight: {reason}: {message}")
        self.reason = reason
        self.log = ""


def _head(path: Path, size: int = 65536) -> bytes:
    with open(path, "rb") as f:
        data = f.read(size)
    if data[:2] == b"\x1f\x8b":  # a gzip-compressed kernel (arm64 vmlinuz.gz): look inside
        try:
            return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data, size)
        except (zlib.error, gzip.BadGzipFile):
            return data
    return data


def image_arch(path: Path) -> str | None:
    """The architecture of a kernel or EFI image (``x86_64``, ``aarch64``, ...), None if unknown."""
    data = _head(path)
    if len(data) >= 0x206 and data[0x202:0x206] == b"HdrS":
        return "x86_64"  # bzImage (with or without an EFI stub)
    if len(data) >= 0x3C and data[0x38:0x3C] == b"ARM\x64":
        return "aarch64"
    if data[:2] == b"MZ" and len(data) >= 0x40:
        pe = struct.unpack_from("<I", data, 0x3C)[0]
        if len(data) >= pe + 6 and data[pe : pe + 4] == b"PE\0\0":
            return PE_MACHINES.get(struct.unpack_from("<H", data, pe + 4)[0], "unknown")
    return None


def _require(path: Path, what: str) -> None:
    if not path.exists():
        raise PreflightError("missing file", f"{what} {path} does not exist")


def disk_sector_size(path: Path) -> int | None:
    """512 or 4096 if ``path`` has a GPT header at that LBA 1, else None (no GPT, or not raw)."""
    with open(path, "rb") as f:
        for size in (512, 4096):
            f.seek(size)
            if f.read(8) == SIGNATURE:
                return size
    return None


def esp_loaders(path: Path) -> set[str] | None:
    """The ``EFI/BOOT/BOOT*.EFI`` names on a raw GPT disk's EFI system partition (None: no ESP found)."""
    from coreos_infra.disk.fat import FatError, FatImage

    try:
        esps = read_gpt(path).by_type(TYPE_ESP)
    except GptError:
        return None
    if not esps:
        return None
    try:
        files = FatImage(path, esps[0].offset).list_files()
    except FatError:
        return None
    return {f.rsplit("/", 1)[-1].upper() for f in files if f.upper().startswith("/EFI/BOOT/BOOT")}


def _check_disk(vm: VmConfig, disk: Path) -> None:
    arch = vm.machine.arch
    if vm.disk_format != "raw":
        return
    found = disk_sector_size(disk)
    if found is not None and found != vm.disk_sector_size:
        raise PreflightError(
            "sector size mismatch",
            f"{disk} is a GPT disk with {found}-byte sectors but the VM gives it {vm.disk_sector_size}-byte "
            f"sectors (disk_sector_size={found})",
        )
    firmware_uefi = vm.kernel is None and (vm.machine.firmware == "uefi" or arch == "aarch64")
    if found is None or not firmware_uefi:
        return
    loaders = esp_loaders(disk)
    if loaders and EFI_LOADERS[arch] not in loaders:
        others = [a for a, name in EFI_LOADERS.items() if name in loaders]
        raise PreflightError(
            "wrong architecture",
            f"{disk}: the EFI system partition has {', '.join(sorted(loaders))}"
            + (f" (an {others[0]} image)" if others else "")
            + f", no {EFI_LOADERS[arch]} for the {arch} machine",
        )


def check_vm(vm: VmConfig) -> None:
    """Raise :class:`PreflightError` if ``vm``'s media are missing or cannot boot on its machine."""
    arch = vm.machine.arch
    if vm.kernel is not None:
        _require(vm.kernel, "kernel")
        found = image_arch(vm.kernel)
        if found is not None and found != arch:
            raise PreflightError(
                "wrong architecture", f"kernel {vm.kernel} is an {found} image, the machine is {arch}"
            )
    for initrd in vm.initrds:
        _require(initrd, "initrd")
    if vm.cdrom is not None:
        _require(vm.cdrom, "CD-ROM image")
    for disk in vm.disks:
        _require(disk, "disk image")
        _check_disk(vm, disk)
    for disk in vm.usb_disks:
        _require(disk, "USB disk image")
    if vm.tftp_dir is not None:
        _require(vm.tftp_dir, "TFTP directory")
        if vm.bootfile and "://" not in vm.bootfile:
            _require(vm.tftp_dir / vm.bootfile.lstrip("/"), "TFTP boot file")
