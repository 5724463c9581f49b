"""Check a disk image with independent tools: ``sgdisk -v``, ``fsck.vfat -n``, ``e2fsck -fn``.

All read-only. ``sgdisk`` treats an image file as having 512-byte sectors, so for 4Kn images the
partition table is checked by our own strict reader (both headers, both entry arrays, CRC32s,
overlaps) instead, and the report says so. ``fsck.vfat`` cannot open a filesystem at an offset, so the
ESP is copied (sparse, in-kernel) to a temporary file first.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from coreos_infra.disk.ext4 import read_superblock_label
from coreos_infra.disk.gpt import TYPE_ESP, Gpt, GptError, verify_gpt
from coreos_infra.errors import CoreosInfraError
from coreos_infra.run import find_binary, run

SBIN = ("/sbin", "/usr/sbin")


class ImageCheckError(CoreosInfraError):
    """An independent checker found a problem in a built image."""


@dataclass
class CheckReport:
    passed: list[str] = field(default_factory=list)  # e.g. "sgdisk -v", "fsck.vfat -n EFI-SYSTEM"

    def as_meta(self) -> list[str]:
        return list(self.passed)


def copy_range(src: Path, start: int, length: int, dst: Path) -> None:
    """Copy ``length`` bytes at ``start`` of ``src`` into a new sparse file ``dst``."""
    with open(src, "rb") as fi, open(dst, "wb") as fo:
        fo.truncate(length)
        sfd, dfd = fi.fileno(), fo.fileno()
        pos = start
        end = start + length
        while pos < end:
            try:
                data = os.lseek(sfd, pos, os.SEEK_DATA)
            except OSError:
                break
            if data >= end:
                break
            hole = min(os.lseek(sfd, data, os.SEEK_HOLE), end)
            off = data
            while off < hole:
                n = os.copy_file_range(sfd, dfd, hole - off, off, off - start)
                if n <= 0:
                    raise OSError(f"copy_file_range stopped at {off}")
                off += n
            pos = hole


def check_gpt(image: Path, report: CheckReport) -> Gpt:
    try:
        gpt = verify_gpt(image)
    except GptError as e:
        raise ImageCheckError(f"partition table check failed: {e.message}") from None
    if gpt.sector_size == 512:
        sgdisk = find_binary("sgdisk", reason="verify partition tables", extra_paths=SBIN)
        res = run([sgdisk, "-v", str(image)], capture=True, check=False)
        out = res.stdout.decode(errors="replace")
        if res.returncode != 0 or "No problems found" not in out:
            raise ImageCheckError(f"sgdisk -v {image} reports problems:\n{out.strip()}")
        report.passed.append("sgdisk -v")
    else:
        report.passed.append(f"gpt (internal, {gpt.sector_size}-byte sectors: sgdisk assumes 512)")
    return gpt


def check_fat(image: Path, offset: int, size: int, label: str, report: CheckReport) -> None:
    fsck = find_binary("fsck.vfat", reason="check FAT filesystems", extra_paths=SBIN)
    with tempfile.TemporaryDirectory(prefix="coreos-infra-check-", dir=image.parent) as tmp:
        part = Path(tmp) / "esp.img"
        copy_range(image, offset, size, part)
        res = run([fsck, "-n", str(part)], capture=True, check=False)
    out = (res.stdout + res.stderr).decode(errors="replace")
    if res.returncode != 0:
        raise ImageCheckError(f"fsck.vfat -n found problems in {label} of {image}:\n{out.strip()}")
    report.passed.append(f"fsck.vfat -n {label}")


def check_ext4(image: Path, offset: int, label: str, report: CheckReport) -> None:
    e2fsck = find_binary("e2fsck", reason="check ext4 filesystems", extra_paths=SBIN)
    res = run([e2fsck, "-fn", f"{image}?offset={offset}"], capture=True, check=False)
    out = (res.stdout + res.stderr).decode(errors="replace")
    if res.returncode != 0:
        raise ImageCheckError(f"e2fsck -fn found problems in {label} of {image}:\n{out.strip()}")
    report.passed.append(f"e2fsck -fn {label}")


def check_image(image: Path, *, partitions: tuple[str, ...] | None = None) -> CheckReport:
    """Run every applicable checker on ``image``: the GPT, each FAT ESP and each ext2/3/4 partition.

    ``partitions`` limits the filesystem checks to partitions with these GPT names (e.g. when blocks
    outside them were never decoded into the working image).
    """
    report = CheckReport()
    gpt = check_gpt(image, report)
    for p in gpt.partitions:
        if partitions is not None and p.label not in partitions:
            continue
        if p.type_guid == TYPE_ESP:
            check_fat(image, p.offset, p.size, p.label or f"partition {p.number}", report)
        elif read_superblock_label(image, p.offset) is not None:
            check_ext4(image, p.offset, p.label or f"partition {p.number}", report)
    return report
