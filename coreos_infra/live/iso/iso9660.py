"""A minimal ISO 9660 reader: the primary directory tree only, as coreos-installer reads it.

Only what locating embed areas needs: volume descriptors, directory records, file extents. No Rock
Ridge, no Joliet. Names are the primary (8.3, upper-case) names after normalization, so lookups use
keys such as ``COREOS/IGNINFO.JSO`` and ``IMAGES/IGNITION.IMG``. Files are contiguous: a file's
absolute byte offset is its extent LBA × 2048.

The reader works on an open binary file and reads only descriptors and directories, so opening a
4 GiB ISO costs the same as opening a 1 MiB one.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from coreos_infra.errors import CoreosInfraError

SECTOR = 2048
DESCRIPTORS_START = 16 * SECTOR
MAX_DESCRIPTORS = 64  # a real ISO has a handful; bound the scan on garbage input


class IsoError(CoreosInfraError):
    """The file is not a readable ISO 9660 image, or a path is missing from it."""


class NotFound(IsoError):
    """A path does not exist in the primary tree."""


@dataclass(frozen=True)
class Record:
    """One directory record of the primary tree."""

    name: str
    lba: int
    size: int
    is_dir: bool

    @property
    def offset(self) -> int:
        """Absolute byte offset of the extent in the image."""
        return self.lba * SECTOR


def normalize_name(raw: bytes) -> str:
    """The primary name of a directory record as coreos-installer compares it."""
    raw = raw.split(b"\x00", 1)[0]
    name = raw.decode("latin-1")
    if name.endswith(";1"):
        name = name[:-2]
    if name.endswith("."):
        name = name[:-1]
    return name.replace(";", ".").replace("/", ".")


def _read_at(f: BinaryIO, offset: int, length: int) -> bytes:
    f.seek(offset)
    data = f.read(length)
    if len(data) != length:
        raise IsoError("ISO image is incomplete")
    return data


def _parse_record(buf: bytes, pos: int) -> tuple[Record, bytes]:
    length = buf[pos]
    if pos + length > len(buf) or length < 34:
        raise IsoError(f"malformed ISO 9660 directory record at byte {pos}")
    lba = struct.unpack_from("<I", buf, pos + 2)[0]
    size = struct.unpack_from("<I", buf, pos + 10)[0]
    flags = buf[pos + 25]
    name_len = buf[pos + 32]
    raw_name = buf[pos + 33 : pos + 33 + name_len]
    return Record(normalize_name(raw_name), lba, size, bool(flags & 0x02)), raw_name


class IsoFs:
    """The primary tree of an ISO 9660 image opened from ``f`` (kept open by the caller)."""

    def __init__(self, f: BinaryIO) -> None:
        self._f = f
        file_size = os.fstat(f.fileno()).st_size if _has_fileno(f) else _seek_size(f)
        primary: bytes | None = None
        for i in range(MAX_DESCRIPTORS):
            try:
                desc = _read_at(f, DESCRIPTORS_START + i * SECTOR, SECTOR)
            except IsoError:
                raise IsoError("not an ISO 9660 image: no volume descriptors") from None
            if desc[1:6] != b"CD001" or desc[6] != 1:
                raise IsoError("not an ISO 9660 image: bad volume descriptor signature")
            kind = desc[0]
            if kind == 1 and primary is None:
                primary = desc
            elif kind == 255:
                break
        else:
            raise IsoError("not an ISO 9660 image: no volume descriptor set terminator")
        if primary is None:
            raise IsoError("not an ISO 9660 image: no primary volume descriptor")
        self.system_id = primary[8:40].decode("latin-1").rstrip(" ")
        self.volume_id = primary[40:72].decode("latin-1").rstrip(" ")
        self.volume_space_size = struct.unpack_from("<I", primary, 80)[0]
        if self.volume_space_size * SECTOR > file_size:
            raise IsoError("ISO image is incomplete")
        root, _ = _parse_record(primary, 156)
        self.root = Record(".", root.lba, root.size, True)

    def list_dir(self, directory: Record) -> list[Record]:
        """The entries of ``directory`` in on-disk order, without ``.`` and ``..``."""
        if not directory.is_dir:
            raise IsoError(f"{directory.name} is not a directory")
        buf = _read_at(self._f, directory.offset, directory.size)
        entries = []
        pos = 0
        while pos < len(buf):
            if buf[pos] == 0:
                pos = (pos // SECTOR + 1) * SECTOR
                continue
            rec, raw_name = _parse_record(buf, pos)
            pos += buf[pos]
            if raw_name in (b"\x00", b"\x01"):
                continue
            entries.append(rec)
        return entries

    def lookup(self, path: str) -> Record:
        """The record at ``path`` (components separated by ``/``, compared case-sensitively)."""
        current = self.root
        for part in [p for p in path.split("/") if p]:
            if not current.is_dir:
                raise NotFound(f"{path}: {current.name} is not a directory")
            for rec in self.list_dir(current):
                if rec.name == part:
                    current = rec
                    break
            else:
                raise NotFound(f"{path}: not found in ISO image")
        return current

    def find(self, path: str) -> Record | None:
        """Like :meth:`lookup` but ``None`` when absent."""
        try:
            return self.lookup(path)
        except NotFound:
            return None

    def walk(self, directory: Record | None = None, prefix: str = "") -> Iterator[tuple[str, Record]]:
        """Every (path, record) below ``directory``, depth first, entries sorted by name."""
        directory = directory or self.root
        for rec in sorted(self.list_dir(directory), key=lambda r: r.name):
            path = f"{prefix}{rec.name}"
            yield path, rec
            if rec.is_dir:
                yield from self.walk(rec, path + "/")

    def read(self, rec: Record) -> bytes:
        """The content of a (small) file."""
        if rec.is_dir:
            raise IsoError(f"{rec.name} is a directory")
        return _read_at(self._f, rec.offset, rec.size)


def _has_fileno(f: BinaryIO) -> bool:
    try:
        f.fileno()
    except (OSError, AttributeError, ValueError):
        return False
    return True


def _seek_size(f: BinaryIO) -> int:
    f.seek(0, os.SEEK_END)
    return f.tell()
