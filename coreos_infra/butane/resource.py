"""Butane resources: data URLs with automatic encoding, and ``local`` files under ``--files-dir``."""

from __future__ import annotations

import base64
import gzip
import os
import zlib
from pathlib import Path

_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.!~*'()")
_HEX = "0123456789ABCDEF"

ERR_NO_FILES_DIR = (
    "local file paths are relative to a files directory that must be specified with -d/--files-dir"
)
ERR_ESCAPE = "local file path traverses outside the files directory"


_ESCAPED = tuple(chr(b) if b in _SAFE else f"%{_HEX[b >> 4]}{_HEX[b & 15]}" for b in range(256))
_SAFE_BYTES = bytes(sorted(_SAFE))


def url_escape(data: bytes) -> str:
    """Percent-escape everything except ASCII letters, digits and ``-_.!~*'()`` (upper-case hex)."""
    return "".join(map(_ESCAPED.__getitem__, data))


def _escaped_len(data: bytes) -> int:
    unsafe = len(data.translate(None, _SAFE_BYTES))
    return len(data) + 2 * unsafe


def _go_like_gzip(data: bytes) -> bytes:
    """gzip at level 9, mtime 0, no name, OS byte 0xff, and a deflate stream shaped like Go's.

    Go's writer ends the stream with an empty final *stored* block (``...0000ffff``). zlib's sync flush
    writes the same empty stored block without the final bit, so the bit is set afterwards; the result is
    verified by decompressing it. The deflate bytes still differ from Go's, the length is close to Go's.
    """
    c = zlib.compressobj(9, zlib.DEFLATED, -15, 9)
    body = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    deflate = body + b"\x03\x00"  # fallback: add an empty final fixed block
    if body.endswith(b"\x00\x00\xff\xff") and len(body) >= 5:
        for byte_index in (len(body) - 5, len(body) - 6):
            if byte_index < 0:
                continue
            for bit in range(8):
                cand = bytearray(body)
                cand[byte_index] |= 1 << bit
                if cand[byte_index] == body[byte_index]:
                    continue
                d = zlib.decompressobj(-15)
                try:
                    out = d.decompress(bytes(cand))
                except zlib.error:
                    continue
                if d.eof and not d.unused_data and out == data:
                    deflate = bytes(cand)
                    break
            else:
                continue
            break
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    trailer = zlib.crc32(data).to_bytes(4, "little") + (len(data) & 0xFFFFFFFF).to_bytes(4, "little")
    result = header + deflate + trailer
    assert gzip.decompress(result) == data
    return result


def data_url(data: bytes, compression: str | None, *, allow_gzip: bool = True) -> tuple[str, str | None]:
    """The shortest data URL for ``data``: (source, compression to write).

    With no (or empty) user compression the candidates are URL-escaped text, base64 and gzip+base64, and the
    compression written is ``""`` or ``"gzip"``. With a user compression the bytes are taken as already
    compressed and the user's value is kept.
    """
    escaped_len = 1 + _escaped_len(data)
    b64_len = 8 + 4 * ((len(data) + 2) // 3)
    best_len = min(escaped_len, b64_len)
    use = "escaped" if escaped_len <= b64_len else "base64"
    result_compression = compression if compression else ""
    gz = b""
    if not compression and allow_gzip:
        gz = _go_like_gzip(data)
        if 8 + 4 * ((len(gz) + 2) // 3) + 4 < best_len:
            use = "gzip"
            result_compression = "gzip"
    if use == "escaped":
        return "data:," + url_escape(data), result_compression
    payload = gz if use == "gzip" else data
    return "data:;base64," + base64.b64encode(payload).decode(), result_compression


class LocalFileError(Exception):
    """A problem with a ``local`` path; the message is Butane's."""


def go_join(files_dir: str, local: str) -> str:
    """Go's ``filepath.Join``: concatenate then clean (a leading ``/`` in ``local`` stays relative)."""
    if not files_dir and not local:
        return ""
    joined = os.path.normpath(f"{files_dir}/{local}" if files_dir else local)
    if joined.startswith("//"):
        joined = "/" + joined.lstrip("/")
    return joined


def resolve_local(files_dir: Path | str | None, local: str) -> str:
    """Join ``local`` to ``files_dir``, refusing escapes; returns the joined path as Go prints it."""
    if files_dir is None:
        raise LocalFileError(ERR_NO_FILES_DIR)
    fd = str(files_dir)
    joined = go_join(fd, local)
    base = os.path.abspath(fd)
    full = os.path.abspath(joined)
    if full != base and not full.startswith(base.rstrip("/") + "/"):
        raise LocalFileError(ERR_ESCAPE)
    return joined


def _os_error_text(op: str, path: str, e: OSError) -> str:
    reason = {
        2: "no such file or directory",
        13: "permission denied",
        20: "not a directory",
        21: "is a directory",
        40: "too many levels of symbolic links",
    }.get(e.errno or 0, (e.strerror or str(e)).lower())
    return f"{op} {path}: {reason}"


def read_local(files_dir: Path | str | None, local: str) -> bytes:
    """Read a ``local`` file the way Butane does, with Go-style error messages."""
    joined = resolve_local(files_dir, local)
    try:
        with open(joined, "rb") as f:
            try:
                return f.read()
            except IsADirectoryError as e:
                raise LocalFileError(_os_error_text("read", joined, e)) from None
    except IsADirectoryError as e:
        raise LocalFileError(_os_error_text("read", joined, e)) from None
    except OSError as e:
        raise LocalFileError(_os_error_text("open", joined, e)) from None
