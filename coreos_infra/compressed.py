"""Checks that a compressed artifact (``.xz``, ``.gz``, ``.zst``) is complete and what it claims to be.

Every compressed file must be complete streams with nothing after them; when the metadata gives an
``uncompressed-sha256``, the decompressed bytes must hash to it. Only data that passed its signature
check is fed here (see :mod:`coreos_infra.cache`).
"""

from __future__ import annotations

import hashlib
import lzma
import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from coreos_infra import xz as xzformat
from coreos_infra.errors import VerificationError
from coreos_infra.fsutil import CHUNK

DEEP_CHECK_LIMIT = 64 << 20  # compressed files up to this size are always fully decompressed


def _read_at(f: IO[bytes], offset: int, size: int) -> bytes:
    f.seek(offset)
    return f.read(size)


def check_xz_framing(path: Path, *, name: str | None = None) -> None:
    """Walk the .xz file from its end: every byte must belong to a complete stream or stream padding."""
    name = name or str(path)
    with open(path, "rb") as f:
        end = os.fstat(f.fileno()).st_size
        streams = 0
        while end > 0:
            while end >= 4 and _read_at(f, end - 4, 4) == b"\0\0\0\0":
                end -= 4  # stream padding between/after streams
            if end == 0:
                raise VerificationError(
                    f"{name}: zero bytes before the first xz stream"
                    if streams
                    else f"{name}: not an xz file"
                )
            if end < 24:
                raise VerificationError(f"{name}: truncated xz file (no complete stream)")
            footer = _read_at(f, end - 12, 12)
            if footer[10:] != xzformat.FOOTER_MAGIC:
                raise VerificationError(
                    f"{name}: not a complete xz stream: truncated, or trailing data after the stream"
                )
            backward = (struct.unpack("<I", footer[4:8])[0] + 1) * 4
            if backward + 24 > end:
                raise VerificationError(f"{name}: truncated xz file (index larger than the file)")
            try:
                info = xzformat.parse_stream_tail(_read_at(f, end - 12 - backward, backward + 12))
            except (ValueError, IndexError) as e:
                raise VerificationError(f"{name}: corrupt xz stream: {e}") from None
            stream_size = (
                12 + sum((b.unpadded_size + 3) // 4 * 4 for b in info.blocks) + info.index_size + 12
            )
            start = end - stream_size
            if start < 0:
                raise VerificationError(f"{name}: truncated xz file (blocks missing before the index)")
            header = _read_at(f, start, 12)
            if header[:6] != xzformat.HEADER_MAGIC or header[6:8] != footer[8:10]:
                raise VerificationError(
                    f"{name}: not a single well-formed xz stream (garbage before or inside the stream)"
                )
            end = start
            streams += 1
        if streams == 0:
            raise VerificationError(f"{name}: not an xz file (empty)")


def _decoded(decoder: Any, kind: str, data: bytes) -> Iterator[bytes]:
    """Feed ``data`` to ``decoder``, yielding bounded pieces (a sparse disk image expands ~1000x)."""
    if kind == "xz":
        yield decoder.decompress(data, max_length=CHUNK)
        while not decoder.eof and not decoder.needs_input:
            yield decoder.decompress(b"", max_length=CHUNK)
    elif kind == "gz":
        yield decoder.decompress(data, CHUNK)
        while decoder.unconsumed_tail and not decoder.eof:
            yield decoder.decompress(decoder.unconsumed_tail, CHUNK)
    else:  # zstd: its decompressobj has no output limit, so it is fed small pieces (see the read size)
        yield decoder.decompress(data)


def _decompress_check(path: Path, kind: str, *, name: str, expected: str | None) -> None:
    """Decompress all of ``path``; fail on truncation, corruption, trailing data or a hash mismatch."""
    hasher = hashlib.sha256()

    def new_decoder() -> Any:
        if kind == "xz":
            return lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
        if kind == "gz":
            return zlib.decompressobj(wbits=31)
        import zstandard

        return zstandard.ZstdDecompressor().decompressobj()

    read_size = 2048 if kind == "zst" else CHUNK  # a 2 KiB zstd piece expands to at most ~64 MiB
    decoder = new_decoder()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(read_size):
                while chunk:
                    if decoder.eof:
                        if kind == "xz":
                            stripped = chunk.lstrip(b"\0")  # stream padding (its framing was checked)
                            if not stripped:
                                break
                            chunk = stripped
                        decoder = new_decoder()
                    for out in _decoded(decoder, kind, chunk):
                        hasher.update(out)
                    chunk = decoder.unused_data if decoder.eof else b""
        if not decoder.eof:
            raise VerificationError(f"{name}: truncated {kind} stream (ends before the end of the data)")
    except (lzma.LZMAError, zlib.error, EOFError) as e:
        raise VerificationError(
            f"{name}: corrupt {kind} data or trailing garbage after the stream: {e}"
        ) from None
    except Exception as e:
        if type(e).__module__.startswith("zstandard"):
            raise VerificationError(f"{name}: corrupt {kind} data or trailing garbage: {e}") from None
        raise
    if expected and hasher.hexdigest() != expected:
        raise VerificationError(
            f"{name}: uncompressed SHA-256 is {hasher.hexdigest()}, the metadata says {expected}"
        )


def compression_of(name: str) -> str | None:
    for suffix, kind in ((".xz", "xz"), (".gz", "gz"), (".zst", "zst")):
        if name.endswith(suffix):
            return kind
    return None


def check_compressed(path: Path, *, name: str, uncompressed_sha256: str | None = None,
                     deep: bool = True) -> None:  # fmt: skip
    """Check a compressed artifact is complete, with no trailing data; see the module docstring."""
    kind = compression_of(name)
    if kind is None:
        return
    if kind == "xz":
        check_xz_framing(path, name=name)
        if not (deep and uncompressed_sha256) and path.stat().st_size > DEEP_CHECK_LIMIT:
            return
    _decompress_check(path, kind, name=name, expected=uncompressed_sha256 if deep else None)
