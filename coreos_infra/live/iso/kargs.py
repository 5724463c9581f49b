"""Kernel-argument embed areas of a live ISO and the karg editor.

Areas come from ``coreos/kargs.json`` (preferred) or, for 2021 images without it, from the legacy
``coreKarg`` header in the system area. Each area holds ``<kargs><end><pad>...`` filling ``size`` bytes;
every area carries the same text. See ``coreos-installer-formats.md`` §3.
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import BinaryIO

from coreos_infra.errors import CoreosInfraError
from coreos_infra.live.iso.iso9660 import IsoError, IsoFs

KARGS_JSON = "COREOS/KARGS.JSO"
LEGACY_CMDLINE = "_CMDLINE"
LEGACY_HEADER_OFFSET = 32672
LEGACY_HEADER_LEN = 72
LEGACY_MAGIC = b"coreKarg"
MAX_AREA = 2048


class KargsError(CoreosInfraError):
    """A kargs area problem (missing, inconsistent, too small)."""


NO_KARG_AREAS = "No karg embed areas found; old or corrupted CoreOS ISO image."
NO_KARG_AREAS_CORRUPT = "No karg embed areas found; corrupted CoreOS ISO image."


@dataclass(frozen=True)
class KargsArea:
    offset: int  # absolute byte offset in the ISO
    pad: str = "#"
    end: str = "\n"
    # where the offset came from, for messages/`dev show`-style output
    explicit_pad_end: bool = False


@dataclass(frozen=True)
class KargsLayout:
    size: int
    default: str
    areas: tuple[KargsArea, ...]
    source: str  # "kargs.json" or "legacy header"

    def decode(self, raw: bytes, area: KargsArea) -> str:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise KargsError(f"invalid UTF-8 in karg area at offset {area.offset}") from None
        return text.rstrip(area.pad).rstrip(area.end).strip()

    def encode(self, kargs: str, area: KargsArea) -> bytes:
        kargs = kargs.strip()
        if len(kargs.encode()) >= self.size:
            raise KargsError(f"kargs too large for area: {len(kargs.encode()) + 1} vs {self.size}")
        data = (kargs + area.end).encode()
        return data + area.pad.encode() * (self.size - len(data))

    def read_current(self, f: BinaryIO) -> str:
        values = []
        for area in self.areas:
            f.seek(area.offset)
            values.append((area.offset, self.decode(f.read(self.size), area)))
        first = values[0][1]
        for offset, value in values[1:]:
            if value != first:
                raise KargsError(
                    f"kargs don't match at all offsets! "
                    f"(expected '{first}', but offset {offset} has: '{value}')"
                )
        return first

    def writes(self, kargs: str) -> dict[int, bytes]:
        return {area.offset: self.encode(kargs, area) for area in self.areas}

    def to_json(self) -> str:
        """Like ``coreos-installer dev show iso --kargs``."""
        areas = []
        for a in self.areas:
            entry: dict[str, object] = {"offset": a.offset, "length": self.size}
            if a.explicit_pad_end:
                entry["pad"], entry["end"] = a.pad, a.end
            areas.append(entry)
        return json.dumps({"length": self.size, "default": self.default, "kargs": areas}, indent=2) + "\n"


def _from_json(fs: IsoFs, data: bytes) -> KargsLayout:
    try:
        info = json.loads(data)
        size = info["size"]
        default = info["default"]
        files = info["files"]
        if not isinstance(size, int) or not isinstance(default, str) or not isinstance(files, list):
            raise TypeError("bad field types")
    except (ValueError, KeyError, TypeError) as e:
        raise KargsError(f"parsing kargs.json: {e}") from None
    if size > MAX_AREA:
        raise KargsError(f"karg embed area size larger than {MAX_AREA} (found {size})")
    if len(default) > size:
        raise KargsError(f"default kargs size {len(default)} larger than embed areas ({size})")
    areas = []
    for entry in files:
        try:
            path, offset = entry["path"], entry["offset"]
        except (KeyError, TypeError) as e:
            raise KargsError(f"parsing kargs.json: {e}") from None
        rec = fs.find(str(path).upper())
        if rec is None or rec.is_dir:
            raise KargsError(f"kargs.json refers to {path}, which is not a file in the ISO")
        if offset + size > rec.size:
            raise KargsError(f"karg embed area for {path} extends beyond the end of the file")
        pad, end = entry.get("pad"), entry.get("end")
        areas.append(
            KargsArea(
                rec.offset + offset,
                pad if pad is not None else "#",
                end if end is not None else "\n",
                explicit_pad_end=pad is not None or end is not None,
            )
        )
    if not areas:
        raise KargsError(NO_KARG_AREAS_CORRUPT)
    return KargsLayout(size, default, tuple(sorted(areas, key=lambda a: a.offset)), "kargs.json")


def _from_header(f: BinaryIO) -> KargsLayout | None:
    f.seek(LEGACY_HEADER_OFFSET)
    header = f.read(LEGACY_HEADER_LEN)
    if len(header) != LEGACY_HEADER_LEN or header[:8] != LEGACY_MAGIC:
        return None
    size, default_offset, *offsets = struct.unpack_from("<8Q", header, 8)
    if size > MAX_AREA:
        raise KargsError(f"karg embed area length larger than {MAX_AREA} (found {size})")
    areas = []
    for off in offsets:
        if off == 0:
            break
        areas.append(KargsArea(off))
    if not areas:
        raise KargsError(NO_KARG_AREAS_CORRUPT)
    tmp = KargsLayout(size, "", tuple(sorted(areas, key=lambda a: a.offset)), "legacy header")
    f.seek(default_offset)
    default = tmp.decode(f.read(size), KargsArea(default_offset))
    return KargsLayout(size, default, tmp.areas, "legacy header")


def find_kargs(fs: IsoFs, f: BinaryIO) -> KargsLayout | None:
    """The karg areas of the ISO, or None when it has none."""
    rec = fs.find(KARGS_JSON)
    if rec is not None:
        try:
            return _from_json(fs, fs.read(rec))
        except IsoError as e:
            raise KargsError(f"reading kargs.json: {e}") from None
    return _from_header(f)


_REPLACE = re.compile(r"([^=]+)=([^=]+)=([^=]+)")


def edit_kargs(
    current: str, *, append: Sequence[str] = (), delete: Sequence[str] = (), replace: Sequence[str] = ()
) -> str:
    """coreos-installer's karg editor: deletes, then appends, then ``KEY=OLD=NEW`` replaces."""
    s = f" {current} "
    for d in delete:
        s = s.replace(f" {d} ", " ")
    for a in append:
        s += a.strip() + " "
    for r in replace:
        m = _REPLACE.fullmatch(r)
        if not m:
            raise KargsError("Wrong input, format should be: KEY=OLD=NEW")
        key, old, new = m.groups()
        s = s.replace(f" {key}={old} ", f" {key}={new} ")
    return s.strip()
