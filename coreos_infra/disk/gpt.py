"""Read a GUID partition table from a raw disk image (512-byte or 4096-byte logical sectors).

The sector size is detected the way coreos-installer does it: ``EFI PART`` at byte 512 means a
512-byte image, at byte 4096 a 4Kn image. Both headers (primary and backup) and both copies of the
partition entry array are checked against their CRC32s; a table whose primary copy is damaged is an
error (we never edit an image whose partition table we cannot trust).
Spec: UEFI 2.10 section 5.3.
"""

from __future__ import annotations

import struct
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from coreos_infra.errors import CoreosInfraError

SIGNATURE = b"EFI PART"
SECTOR_SIZES = (512, 4096)

# Partition type GUIDs used by FCOS metal images (coreos-installer-formats.md section 6.5).
TYPE_ESP = uuid.UUID("c12a7328-f81f-11d2-ba4b-00a0c93ec93b")
TYPE_BIOS_BOOT = uuid.UUID("21686148-6449-6e6f-744e-656564454649")
TYPE_LINUX_FS = uuid.UUID("0fc63daf-8483-4772-8e79-3d69d8477de4")
TYPE_XBOOTLDR = uuid.UUID("bc13c2ff-59e6-4262-a352-b275fd6f7172")
TYPE_ROOT_X86_64 = uuid.UUID("4f68bce3-e8cd-4db1-96e7-fbcaf984b709")
TYPE_ROOT_AARCH64 = uuid.UUID("b921b045-1df0-41c3-af44-4c6f280d3fae")


class GptError(CoreosInfraError):
    """The image has no GPT, or a damaged one."""


@dataclass(frozen=True)
class Partition:
    number: int  # 1-based index in the entry array
    type_guid: uuid.UUID
    guid: uuid.UUID
    first_lba: int
    last_lba: int
    attributes: int
    label: str  # the GPT partition name
    sector_size: int

    @property
    def offset(self) -> int:
        """Byte offset of the partition in the image."""
        return self.first_lba * self.sector_size

    @property
    def size(self) -> int:
        return (self.last_lba - self.first_lba + 1) * self.sector_size

    @property
    def end(self) -> int:
        """Byte offset just past the partition."""
        return self.offset + self.size


@dataclass(frozen=True)
class GptHeader:
    current_lba: int
    backup_lba: int
    first_usable: int
    last_usable: int
    disk_guid: uuid.UUID
    entries_lba: int
    entry_count: int
    entry_size: int
    entries_crc: int


@dataclass(frozen=True)
class Gpt:
    sector_size: int
    disk_guid: uuid.UUID
    partitions: tuple[Partition, ...]
    primary: GptHeader
    backup: GptHeader | None  # None if the image is truncated before the backup header
    image_size: int
    problems: tuple[str, ...] = ()  # non-fatal findings (backup damaged or missing)

    def by_label(self, label: str) -> Partition:
        """The one partition whose GPT name is ``label``."""
        found = [p for p in self.partitions if p.label == label]
        if len(found) != 1:
            names = ", ".join(repr(p.label) for p in self.partitions) or "none"
            what = "no" if not found else f"{len(found)}"
            raise GptError(f"{what} partition labelled {label!r} (partitions: {names})")
        return found[0]

    def by_type(self, type_guid: uuid.UUID) -> list[Partition]:
        return [p for p in self.partitions if p.type_guid == type_guid]

    def containing(self, offset: int) -> Partition | None:
        for p in self.partitions:
            if p.offset <= offset < p.end:
                return p
        return None

    def table_ranges(self) -> list[tuple[int, int]]:
        """Byte ranges (start, end) holding the protective MBR and both GPT copies."""
        ss = self.sector_size
        entries_bytes = self.primary.entry_count * self.primary.entry_size
        ranges = [
            (0, ss * 2),
            (self.primary.entries_lba * ss, self.primary.entries_lba * ss + entries_bytes),
        ]
        if self.backup is not None:
            ranges.append((self.backup.current_lba * ss, (self.backup.current_lba + 1) * ss))
            start = self.backup.entries_lba * ss
            ranges.append((start, start + entries_bytes))
        return ranges


def detect_sector_size(f: BinaryIO) -> int | None:
    """512 or 4096 if a GPT header signature is found at LBA 1, else None."""
    for ss in SECTOR_SIZES:
        f.seek(ss)
        if f.read(8) == SIGNATURE:
            return ss
    return None


def _parse_header(raw: bytes, where: str) -> GptHeader:
    if raw[:8] != SIGNATURE:
        raise GptError(f"{where}: no 'EFI PART' signature")
    (revision, header_size, header_crc) = struct.unpack_from("<IIi", raw, 8)
    header_crc &= 0xFFFFFFFF
    if header_size < 92 or header_size > len(raw):
        raise GptError(f"{where}: implausible header size {header_size}")
    check = bytearray(raw[:header_size])
    check[16:20] = b"\0\0\0\0"
    if zlib.crc32(check) != header_crc:
        raise GptError(f"{where}: header CRC32 mismatch")
    current, backup, first_usable, last_usable = struct.unpack_from("<QQQQ", raw, 24)
    disk_guid = uuid.UUID(bytes_le=raw[56:72])
    entries_lba, count, entry_size, entries_crc = struct.unpack_from("<QIII", raw, 72)
    if entry_size < 128 or entry_size % 8 or count > 1024:
        raise GptError(f"{where}: implausible partition entry array ({count} entries of {entry_size} bytes)")
    return GptHeader(current, backup, first_usable, last_usable, disk_guid, entries_lba, count, entry_size,
                     entries_crc)  # fmt: skip


def _read_at(f: BinaryIO, offset: int, size: int) -> bytes:
    f.seek(offset)
    return f.read(size)


def _parse_entries(raw: bytes, header: GptHeader, sector_size: int) -> tuple[Partition, ...]:
    parts = []
    for i in range(header.entry_count):
        e = raw[i * header.entry_size : (i + 1) * header.entry_size]
        type_guid = uuid.UUID(bytes_le=e[0:16])
        if type_guid.int == 0:
            continue
        first, last, attrs = struct.unpack_from("<QQQ", e, 32)
        name = e[56:128].decode("utf-16-le", errors="replace").split("\0", 1)[0]
        parts.append(Partition(i + 1, type_guid, uuid.UUID(bytes_le=e[16:32]), first, last, attrs, name,
                               sector_size))  # fmt: skip
    return tuple(parts)


def read_gpt(image: Path | BinaryIO, *, image_size: int | None = None) -> Gpt:
    """Parse and verify the GPT of ``image`` (a path or an open binary file).

    Raises :class:`GptError` if there is no GPT or the primary copy is damaged; problems with the backup
    copy are returned in ``Gpt.problems`` (``verify_gpt`` turns them into errors).
    """
    if isinstance(image, (str, Path)):
        with open(image, "rb") as fh:
            try:
                return read_gpt(fh, image_size=image_size)
            except GptError as e:
                raise GptError(f"{image}: {e.message}") from None
    f = image
    if image_size is None:
        f.seek(0, 2)
        image_size = f.tell()
    ss = detect_sector_size(f)
    if ss is None:
        raise GptError("no GPT found (no 'EFI PART' signature at byte 512 or 4096)")
    mbr = _read_at(f, 0, 512)
    problems = []
    if mbr[510:512] != b"\x55\xaa" or 0xEE not in (mbr[446 + 4], mbr[462 + 4], mbr[478 + 4], mbr[494 + 4]):
        problems.append("no protective MBR")
    primary = _parse_header(_read_at(f, ss, ss), "primary GPT header")
    if primary.current_lba != 1:
        raise GptError(f"primary GPT header says it is at LBA {primary.current_lba}, not 1")
    total_lbas = image_size // ss
    entries_bytes = primary.entry_count * primary.entry_size
    raw_entries = _read_at(f, primary.entries_lba * ss, entries_bytes)
    if len(raw_entries) != entries_bytes or zlib.crc32(raw_entries) != primary.entries_crc:
        raise GptError("primary GPT partition entry array CRC32 mismatch")
    parts = _parse_entries(raw_entries, primary, ss)
    _check_layout(parts, primary)
    guids = [p.guid for p in parts]
    if len(set(guids)) != len(guids):
        problems.append("two partitions share one unique partition GUID")
    backup: GptHeader | None = None
    if primary.backup_lba >= total_lbas:
        problems.append(
            f"backup GPT header LBA {primary.backup_lba} is beyond the end of the image "
            f"({total_lbas} sectors)"
        )
    else:
        try:
            backup = _parse_header(_read_at(f, primary.backup_lba * ss, ss), "backup GPT header")
            if backup.current_lba != primary.backup_lba or backup.backup_lba != 1:
                problems.append("backup GPT header LBAs do not match the primary header")
            backup_entries = _read_at(f, backup.entries_lba * ss, entries_bytes)
            if zlib.crc32(backup_entries) != backup.entries_crc or backup_entries != raw_entries:
                problems.append("backup GPT partition entry array differs from the primary one")
        except GptError as e:
            problems.append(e.message)
        if primary.backup_lba != total_lbas - 1:
            problems.append(
                f"backup GPT header is at LBA {primary.backup_lba}, not at the last LBA {total_lbas - 1}"
            )
    return Gpt(ss, primary.disk_guid, parts, primary, backup, image_size, tuple(problems))


def _check_layout(parts: tuple[Partition, ...], header: GptHeader) -> None:
    ordered = sorted(parts, key=lambda p: p.first_lba)
    for p in ordered:
        if p.last_lba < p.first_lba:
            raise GptError(f"partition {p.number} ({p.label!r}) ends before it starts")
        if p.first_lba < header.first_usable or p.last_lba > header.last_usable:
            raise GptError(f"partition {p.number} ({p.label!r}) lies outside the usable area")
    for a, b in zip(ordered, ordered[1:], strict=False):
        if b.first_lba <= a.last_lba:
            raise GptError(f"partitions {a.number} ({a.label!r}) and {b.number} ({b.label!r}) overlap")


def verify_gpt(image: Path) -> Gpt:
    """Like :func:`read_gpt` but every problem, backup copy included, is an error."""
    gpt = read_gpt(image)
    if gpt.problems:
        raise GptError(f"{image}: " + "; ".join(gpt.problems))
    return gpt
