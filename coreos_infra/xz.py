"""The .xz container format, written by hand where Python's ``lzma`` module cannot.

``lzma`` compresses and decompresses whole streams but cannot end a block in the middle of a stream
(liblzma's full flush) or write a stream out of blocks compressed separately. Both are needed:
coreos-installer flushes after every padded cpio entry, and raw disk images are spliced block by block.
This module writes xz framing (stream header, LZMA2 block headers, index, footer) around raw LZMA2
data and parses an existing stream's index. Spec: https://tukaani.org/xz/xz-file-format.txt
"""

from __future__ import annotations

import hashlib
import lzma
import struct
import zlib
from dataclasses import dataclass

HEADER_MAGIC = b"\xfd7zXZ\x00"
FOOTER_MAGIC = b"YZ"
CHECK_NONE, CHECK_CRC32, CHECK_CRC64, CHECK_SHA256 = 0, 1, 4, 10
CHECK_SIZES = {CHECK_NONE: 0, CHECK_CRC32: 4, CHECK_CRC64: 8, CHECK_SHA256: 32}


def _crc32(data: bytes) -> bytes:
    return struct.pack("<I", zlib.crc32(data))


def encode_varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def decode_varint(data: bytes, pos: int) -> tuple[int, int]:
    """Return (value, new position)."""
    value = shift = 0
    for i in range(9):
        byte = data[pos + i]
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos + i + 1
    raise ValueError("xz: variable-length integer too long")


def lzma2_dict_prop(dict_size: int) -> int:
    """The one-byte LZMA2 dictionary-size property (rounded up as liblzma does)."""
    for prop in range(40):
        size = (2 | (prop & 1)) << (prop // 2 + 11)
        if size >= dict_size:
            return prop
    return 40


PRESET_DICT_SIZES = {0: 1 << 18, 1: 1 << 20, 2: 1 << 21, 3: 1 << 22, 4: 1 << 22, 5: 1 << 23,
                     6: 1 << 23, 7: 1 << 24, 8: 1 << 25, 9: 1 << 26}  # fmt: skip


def stream_header(check: int = CHECK_CRC32) -> bytes:
    flags = bytes([0, check])
    return HEADER_MAGIC + flags + _crc32(flags)


def lzma2_block_header(dict_size: int) -> bytes:
    """A 12-byte block header: one LZMA2 filter, no compressed/uncompressed size fields."""
    body = bytes([0x00, 0x21, 0x01, lzma2_dict_prop(dict_size)])
    size = 1 + len(body)
    padded = (size + 3) // 4 * 4
    header = bytes([(padded + 4) // 4 - 1]) + body + b"\x00" * (padded - size)
    return header + _crc32(header)


def check_bytes(data: bytes, check: int) -> bytes:
    if check == CHECK_NONE:
        return b""
    if check == CHECK_CRC32:
        return _crc32(data)
    if check == CHECK_CRC64:
        return struct.pack("<Q", _crc64(data))
    return hashlib.sha256(data).digest()


def _crc64(data: bytes) -> int:
    crc = 0xFFFFFFFFFFFFFFFF
    for b in data:
        crc = _CRC64_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFFFFFFFFFF


def _make_crc64_table() -> list[int]:
    poly = 0xC96C5795D7870F42
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ poly if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC64_TABLE = _make_crc64_table()


@dataclass(frozen=True)
class Block:
    """One block as the index records it."""

    unpadded_size: int  # header + compressed data + check, without block padding
    uncompressed_size: int


def encode_block(data: bytes, *, preset: int = 9, check: int = CHECK_CRC32) -> tuple[bytes, Block]:
    """Compress ``data`` into one complete xz block (header, LZMA2 data, padding, check)."""
    dict_size = PRESET_DICT_SIZES[preset & 0x1F]
    raw = lzma.compress(data, format=lzma.FORMAT_RAW, filters=[{"id": lzma.FILTER_LZMA2, "preset": preset}])
    header = lzma2_block_header(dict_size)
    unpadded = len(header) + len(raw) + CHECK_SIZES[check]
    pad = b"\x00" * (-(len(header) + len(raw)) % 4)
    return header + raw + pad + check_bytes(data, check), Block(unpadded, len(data))


def index_and_footer(blocks: list[Block], check: int = CHECK_CRC32) -> bytes:
    """The index listing ``blocks`` followed by the stream footer."""
    index = bytearray(b"\x00") + encode_varint(len(blocks))
    for b in blocks:
        index += encode_varint(b.unpadded_size) + encode_varint(b.uncompressed_size)
    index += b"\x00" * (-len(index) % 4)
    index += _crc32(bytes(index))
    backward = struct.pack("<I", len(index) // 4 - 1) + bytes([0, check])
    return bytes(index) + _crc32(backward) + backward + FOOTER_MAGIC


def compress_pieces(pieces: list[bytes], *, preset: int = 9, check: int = CHECK_CRC32) -> bytes:
    """One xz stream with one block per piece (what a full flush after each piece gives)."""
    out = bytearray(stream_header(check))
    blocks = []
    for piece in pieces:
        data, block = encode_block(piece, preset=preset, check=check)
        out += data
        blocks.append(block)
    out += index_and_footer(blocks, check)
    return bytes(out)


@dataclass(frozen=True)
class StreamInfo:
    """What the footer and index of an xz stream say."""

    check: int
    blocks: list[Block]
    index_size: int  # bytes of the index, including its CRC32

    @property
    def block_offsets(self) -> list[int]:
        """Offset of each block from the start of the stream."""
        offsets = []
        pos = 12
        for b in self.blocks:
            offsets.append(pos)
            pos += (b.unpadded_size + 3) // 4 * 4
        return offsets


def parse_stream_tail(tail: bytes) -> StreamInfo:
    """Parse the index and footer at the end of ``tail`` (the last bytes of a single-stream .xz).

    ``tail`` must hold at least the footer and the whole index; pass more if unsure.
    """
    footer = tail[-12:]
    if len(footer) != 12 or footer[10:] != FOOTER_MAGIC:
        raise ValueError("xz: no stream footer (not an xz file, or truncated)")
    if _crc32(footer[4:10]) != footer[:4]:
        raise ValueError("xz: stream footer CRC mismatch")
    backward = (struct.unpack("<I", footer[4:8])[0] + 1) * 4
    check = footer[9] & 0x0F
    if backward + 12 > len(tail):
        raise ValueError(f"xz: index of {backward} bytes does not fit in the data given")
    index = tail[-12 - backward : -12]
    if index[0] != 0 or _crc32(index[:-4]) != index[-4:]:
        raise ValueError("xz: index is corrupt")
    count, pos = decode_varint(index, 1)
    blocks = []
    for _ in range(count):
        unpadded, pos = decode_varint(index, pos)
        uncompressed, pos = decode_varint(index, pos)
        blocks.append(Block(unpadded, uncompressed))
    return StreamInfo(check=check, blocks=blocks, index_size=backward)
