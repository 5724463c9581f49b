"""The Ignition embed area of a live ISO: where it is and how its bytes encode the initrd members.

Located through ``coreos/igninfo.json`` (``{"file", "offset"?, "length"?}``), else the whole of
``images/ignition.img``. The legacy ``coreiso+`` header of 2020–2021 images is parsed for information
only: coreos-installer ignores it and so do we. An all-zero area is an empty initrd; otherwise it holds
an xz (CRC32) newc archive written by :func:`coreos_infra.cpio.initrd_to_bytes`, zero-filled.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import BinaryIO

from coreos_infra import cpio
from coreos_infra.errors import CoreosInfraError
from coreos_infra.live import xzencoder
from coreos_infra.live.iso.iso9660 import IsoFs

IGNINFO_JSON = "COREOS/IGNINFO.JSO"
DEFAULT_AREA_FILE = "IMAGES/IGNITION.IMG"
LEGACY_HEADER_OFFSET = 32744
LEGACY_MAGIC = b"coreiso+"
UNRECOGNIZED = "Unrecognized CoreOS ISO image."


class EmbedError(CoreosInfraError):
    """The Ignition embed area is missing or cannot hold the data."""


@dataclass(frozen=True)
class Area:
    offset: int  # absolute byte offset in the ISO
    length: int

    def to_json(self) -> str:
        """Like ``coreos-installer dev show iso --ignition``."""
        return json.dumps({"offset": self.offset, "length": self.length}, indent=2) + "\n"


def find_ignition_area(fs: IsoFs) -> Area:
    rec = fs.find(IGNINFO_JSON)
    if rec is not None:
        try:
            info = json.loads(fs.read(rec))
            file_ = info["file"]
            offset = info.get("offset") or 0
            length = info.get("length")
            if not isinstance(file_, str) or not isinstance(offset, int):
                raise TypeError("bad field types")
            if length is not None and not isinstance(length, int):
                raise TypeError("length must be an integer")
        except (ValueError, KeyError, TypeError) as e:
            raise EmbedError(f"parsing igninfo.json: {e}") from None
    else:
        file_, offset, length = DEFAULT_AREA_FILE, 0, None
    target = fs.find(file_.upper())
    if target is None or target.is_dir:
        raise EmbedError(UNRECOGNIZED)
    if length is None:
        length = target.size - offset
    if offset < 0 or length <= 0 or offset + length > target.size:
        raise EmbedError(f"Ignition embed area ({offset}+{length}) is outside {file_} ({target.size} bytes)")
    return Area(target.offset + offset, length)


def legacy_ignition_header(f: BinaryIO) -> Area | None:
    """The ``coreiso+`` header of 2020-09…2021-12 images, if present (informational only)."""
    f.seek(LEGACY_HEADER_OFFSET)
    header = f.read(24)
    if len(header) != 24 or header[:8] != LEGACY_MAGIC:
        return None
    offset, length = struct.unpack_from("<QQ", header, 8)
    return Area(offset, length)


def decode_area(data: bytes) -> dict[str, bytes]:
    """The initrd members stored in an area's bytes (all regular files)."""
    if not data.strip(b"\x00"):
        return {}
    try:
        return cpio.read_initrd(data)
    except cpio.CpioError as e:
        raise EmbedError(f"reading embedded initrd: {e}") from None


def encode_area(files: Mapping[str, bytes], length: int) -> bytes:
    """The area bytes holding ``files`` (zeros when empty); refuses data that does not fit."""
    data = xzencoder.encode_initrd(files) if files else b""
    if len(data) > length:
        raise EmbedError(f"Compressed initramfs is too large: {len(data)} > {length}")
    return data + b"\x00" * (length - len(data))
