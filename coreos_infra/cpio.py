"""SVR4 "newc" cpio archives: the initrd format for Ignition embedding and for the fixture initramfs.

Two writers:
- :func:`write_newc` writes arbitrary entries (files, directories, symlinks, device nodes, any
  mode/uid/gid) without root; the fixture OS initramfs is built with it.
- :func:`initrd_to_bytes` writes an archive exactly as coreos-installer's ``Initrd::to_bytes`` does
  (sorted paths, parent directory entries, mode 0600/0755, inode = entry index, xz with CRC32 and a
  full flush after every padded entry).

One reader, :func:`read_initrd`, accepts any concatenation of archives, each uncompressed, gzip, xz
or zstd, with NUL padding between them, and refuses names that escape the archive root.
"""

from __future__ import annotations

import fnmatch
import gzip
import io
import lzma
import re
import stat
import struct
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from coreos_infra import xz
from coreos_infra.errors import CoreosInfraError

NEWC_MAGIC = b"070701"
NEWC_CRC_MAGIC = b"070702"
TRAILER = "TRAILER!!!"
HEADER_LEN = 110
_FIELDS = struct.Struct(">13I")


class Readable(Protocol):
    """What the reader needs of its input: an open binary file, or anything with ``read``."""

    def read(self, size: int = ..., /) -> bytes: ...


class CpioError(CoreosInfraError):
    """A malformed or unsafe archive."""


@dataclass(frozen=True)
class Entry:
    """One archive member. ``data`` is the file content or the symlink target."""

    name: str
    mode: int
    data: bytes = b""
    uid: int = 0
    gid: int = 0
    mtime: int = 0
    rdevmajor: int = 0
    rdevminor: int = 0
    nlink: int = 1

    @classmethod
    def file(cls, name: str, data: bytes, mode: int = 0o644, *, uid: int = 0, gid: int = 0) -> Entry:
        return cls(name, stat.S_IFREG | mode, data, uid=uid, gid=gid)

    @classmethod
    def directory(cls, name: str, mode: int = 0o755, *, uid: int = 0, gid: int = 0) -> Entry:
        return cls(name, stat.S_IFDIR | mode, uid=uid, gid=gid, nlink=2)

    @classmethod
    def symlink(cls, name: str, target: str) -> Entry:
        return cls(name, stat.S_IFLNK | 0o777, target.encode())

    @classmethod
    def chardev(cls, name: str, major: int, minor: int, mode: int = 0o600) -> Entry:
        return cls(name, stat.S_IFCHR | mode, rdevmajor=major, rdevminor=minor)


def _pad4(n: int) -> bytes:
    return b"\x00" * (-n % 4)


def _header(ino: int, e: Entry) -> bytes:
    name = e.name.encode() + b"\x00"
    fields = (ino, e.mode, e.uid, e.gid, e.nlink, e.mtime, len(e.data), 0, 0, e.rdevmajor, e.rdevminor,
              len(name), 0)  # fmt: skip
    head = NEWC_MAGIC + b"".join(b"%08x" % f for f in fields) + name
    return head + _pad4(len(head))


def _trailer() -> bytes:
    return _header(0, Entry(TRAILER, 0))


def write_newc(entries: Iterable[Entry]) -> bytes:
    """An uncompressed newc archive of ``entries`` in the order given, with a trailer, no block padding."""
    out = bytearray()
    for ino, e in enumerate(entries):
        out += _header(ino, e) + e.data + _pad4(len(e.data))
    out += _trailer()
    return bytes(out)


def _installer_pieces(files: Mapping[str, bytes]) -> list[bytes]:
    """The cpio bytes, split where coreos-installer's xz writer does a full flush."""
    pieces: list[bytes] = []
    current = bytearray()
    cwd: list[str] = []
    ino = 0
    for path in sorted(files):
        if path.startswith("/") or any(part in ("", ".", "..") for part in path.split("/")):
            raise CpioError(f"initrd member path must be relative and normalized: {path!r}")
        parents = path.split("/")[:-1]
        common = 0
        while common < min(len(cwd), len(parents)) and cwd[common] == parents[common]:
            common += 1
        cwd = cwd[:common]
        for part in parents[common:]:
            cwd.append(part)
            current += _header(ino, Entry("/".join(cwd), stat.S_IFDIR | 0o755))
            ino += 1
        data = files[path]
        current += _header(ino, Entry(path, stat.S_IFREG | 0o600, data)) + data + _pad4(len(data))
        ino += 1
        if len(data) % 4:
            pieces.append(bytes(current))
            current = bytearray()
    current += _trailer()
    pieces.append(bytes(current))
    return pieces


def initrd_to_bytes(files: Mapping[str, bytes]) -> bytes:
    """An xz-compressed (CRC32) initrd holding ``files`` (relative path -> content), as coreos-installer
    writes it for embed areas, ``pxe ignition wrap`` and ``pxe customize``."""
    return xz.compress_pieces(_installer_pieces(files), preset=9, check=xz.CHECK_CRC32)


def initrd_to_bytes_one_block(files: Mapping[str, bytes]) -> bytes:
    """The same archive as one xz block (preset 9, CRC32), as ``coreos-installer pxe ignition wrap`` and
    ``pxe network wrap`` write it: a standalone initrd needs no flush points."""
    return lzma.compress(initrd_cpio(files), format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32, preset=9)


def initrd_cpio(files: Mapping[str, bytes]) -> bytes:
    """The uncompressed cpio part of :func:`initrd_to_bytes`."""
    return b"".join(_installer_pieces(files))


# ---------------------------------------------------------------- reading


READ_SIZE = 1 << 20  # bytes read from the file at a time: the input is never held whole in memory
DECODE_SIZE = 128 << 10  # compressed bytes given to a decoder at a time (bounds what one call returns)


class _Raw:
    """The input file, read in pieces, with push-back (a decoder returns what follows its archive)."""

    def __init__(self, f: Readable) -> None:
        self.f = f
        self.buf = memoryview(b"")
        self.pos = 0  # offset in the file of the next byte returned

    def piece(self, limit: int = READ_SIZE) -> bytes | memoryview:
        """The next bytes (at most ``limit``), b"" at the end of the file."""
        if not self.buf:
            self.buf = memoryview(self.f.read(READ_SIZE))
        data, self.buf = self.buf[:limit], self.buf[limit:]
        self.pos += len(data)
        return data

    def unread(self, data: bytes) -> None:
        self.buf = memoryview(bytes(data) + bytes(self.buf)) if self.buf else memoryview(data)
        self.pos -= len(data)


class _Decoded:
    """The decompressed bytes of the one compressed archive starting at ``raw``'s position."""

    def __init__(self, raw: _Raw, kind: str) -> None:
        self.raw, self.kind = raw, kind
        self.decoder = _decoder(kind)
        self.eof = False

    def piece(self) -> bytes:
        while not self.eof:
            data = self.raw.piece(DECODE_SIZE)
            if not data:
                raise CpioError(f"truncated {self.kind} archive in initrd")
            try:
                out = self.decoder.decompress(data)
            except (zlib.error, lzma.LZMAError) as e:
                raise CpioError(f"corrupt {self.kind} archive in initrd: {e}") from e
            except Exception as e:
                if type(e).__module__.startswith("zstandard"):
                    raise CpioError(f"corrupt {self.kind} archive in initrd: {e}") from e
                raise
            if self.decoder.eof:
                self.eof = True
                self.raw.unread(bytes(self.decoder.unused_data))
            if out:
                return bytes(out)
        return b""


def _decoder(kind: str) -> Any:
    if kind == "gzip":
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if kind == "xz":
        return lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
    import zstandard

    return zstandard.ZstdDecompressor().decompressobj(write_size=READ_SIZE)


class _Reader:
    """Exact reads and skips over the pieces of a :class:`_Raw` or :class:`_Decoded` source."""

    def __init__(self, source: _Raw | _Decoded) -> None:
        self.source = source
        self.buf = bytearray()
        self.at = 0  # read position in buf
        self.pos = 0  # bytes consumed from this source so far (for messages)

    def _fill(self, n: int) -> bool:
        """Make ``n`` bytes available; False at the end of the source."""
        while len(self.buf) - self.at < n:
            piece = self.source.piece()
            if not piece:
                return False
            if self.at:
                del self.buf[: self.at]
                self.at = 0
            self.buf += piece
        return True

    def peek(self, n: int) -> bytes:
        self._fill(n)
        return bytes(self.buf[self.at : self.at + n])

    def read(self, n: int) -> bytes | None:
        if not self._fill(n):
            return None
        data = bytes(self.buf[self.at : self.at + n])
        self.at += n
        self.pos += n
        return data

    def skip(self, n: int) -> bool:
        """Drop ``n`` bytes without keeping them (an FCOS initramfs holds ~250 MB of unwanted bodies).

        Pieces wholly inside the skipped bytes are dropped as they come, never copied into the buffer."""
        have = len(self.buf) - self.at
        if n <= have:
            self.at += n
            self.pos += n
            return True
        self.pos += have
        n -= have
        while True:
            piece = self.source.piece()
            if not piece:
                self.buf, self.at = bytearray(), 0
                return False
            if len(piece) > n:
                self.buf, self.at = bytearray(piece[n:]), 0
                self.pos += n
                return True
            n -= len(piece)
            self.pos += len(piece)

    def skip_zeros(self) -> None:
        while self._fill(1):
            rest = self.buf[self.at :]
            nonzero = len(rest) - len(rest.lstrip(b"\x00"))
            self.at += nonzero
            self.pos += nonzero
            if nonzero < len(rest):
                return

    def push_back_rest(self) -> None:
        """Return the buffered, unread bytes to a :class:`_Raw` source (its next archive starts there)."""
        assert isinstance(self.source, _Raw)
        self.source.unread(bytes(self.buf[self.at :]))
        self.buf, self.at = bytearray(), 0


def _sniff(data: memoryview) -> str:
    head = bytes(data[:6])
    if head[:2] == b"\x1f\x8b":
        return "gzip"
    if head == xz.HEADER_MAGIC:
        return "xz"
    if head[:4] == b"\x28\xb5\x2f\xfd" or (
        len(head) >= 4 and head[1:4] == b"\x2a\x4d\x18" and head[0] & 0xF0 == 0x50
    ):
        return "zstd"
    return "newc"


def _parse_newc(r: _Reader, want: Callable[[str, int], bool] | None = None) -> list[Entry]:
    """Parse entries from ``r`` up to and including the trailer."""
    entries: list[Entry] = []
    while True:
        pos = r.pos
        head = r.read(HEADER_LEN)
        if head is None:
            raise CpioError("truncated cpio archive (no TRAILER!!!)")
        if head[:6] not in (NEWC_MAGIC, NEWC_CRC_MAGIC):
            raise CpioError(f"not a newc cpio archive at offset {pos} (magic {head[:6]!r})")
        try:  # 13 big-endian hex fields (either case); fromhex skips blanks, so the length is checked
            f = _FIELDS.unpack(bytes.fromhex(head[6:].decode("ascii")))
        except (ValueError, struct.error) as e:
            raise CpioError(f"bad cpio header at offset {pos}") from e
        mode, uid, gid, nlink, mtime, size, rmaj, rmin, namesize = (
            f[1], f[2], f[3], f[4], f[5], f[6], f[9], f[10], f[11])  # fmt: skip
        raw_name = r.read(namesize + (-(HEADER_LEN + namesize) % 4))
        if raw_name is None:
            raise CpioError("truncated cpio archive (no TRAILER!!!)")
        name = raw_name[:namesize].rstrip(b"\x00").decode(errors="replace")
        padded = size + (-size % 4)
        if name == TRAILER:
            if not r.skip(padded):
                raise CpioError(f"truncated cpio member {name!r}")
            return entries
        if want is None or want(name, mode):
            body = r.read(padded)
            if body is None:
                raise CpioError(f"truncated cpio member {name!r}")
            body = body[:size]
        else:  # not copied
            body = b""
            if not r.skip(padded):
                raise CpioError(f"truncated cpio member {name!r}")
        entries.append(Entry(name, mode, body, uid, gid, mtime, rmaj, rmin, nlink))


def safe_member_name(name: str) -> str:
    """Normalize a member name (drop ``./`` and empty components); refuse absolute and ``..`` names."""
    if "//" not in name and "/." not in name and not name.startswith((".", "/")) and not name.endswith("/"):
        return name  # no empty, "." or ".." component: already normal (most names of an initramfs)
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if name.startswith("/") or any(p == ".." for p in parts):
        raise CpioError(f"refusing archive member that escapes the archive root: {name!r}")
    return "/".join(parts)


def read_archives(data: bytes | Readable, want: Callable[[str, int], bool] | None = None) -> list[Entry]:
    """Every entry of every archive in a concatenated initrd (bytes or a file), in order.

    ``want(name, mode)`` False leaves that entry's ``data`` empty (it is not copied). A file is read in
    pieces and compressed archives are decompressed as a stream: memory stays small whatever the size.
    """
    raw = _Raw(io.BytesIO(data) if isinstance(data, bytes | bytearray | memoryview) else data)
    entries: list[Entry] = []
    while True:
        top = _Reader(raw)
        top.skip_zeros()
        head = top.peek(6)
        if not head:
            return entries
        kind = _sniff(memoryview(head))
        if kind == "newc":
            top.pos = raw.pos - (len(top.buf) - top.at)
            entries += _parse_newc(top, want)
            top.push_back_rest()
            continue
        top.push_back_rest()
        inner = _Reader(_Decoded(raw, kind))
        while True:
            inner.skip_zeros()
            head = inner.peek(6)
            if not head:
                break
            if _sniff(memoryview(head)) != "newc":
                raise CpioError("found trailing garbage inside compressed archive")
            entries += _parse_newc(inner, want)
        # the decoder returned what follows its archive to ``raw``


def read_initrd(data: bytes | Readable, pattern: str | Sequence[str] = "*") -> dict[str, bytes]:
    """Regular files of a concatenated initrd (bytes or a file) whose (normalized) name matches ``pattern``
    (or any of them).

    Later copies of a path win, as in the kernel. Every regular file's name is checked, matching or not.
    """
    patterns = [pattern] if isinstance(pattern, str) else list(pattern)
    matches = re.compile("|".join(fnmatch.translate(p) for p in patterns)).match
    wanted: dict[str, str] = {}  # member name -> normalized name, for the regular files that match

    def want(name: str, mode: int) -> bool:
        if not stat.S_ISREG(mode):
            return False
        norm = safe_member_name(name)
        if matches(norm):
            wanted[name] = norm
            return True
        return False

    files: dict[str, bytes] = {}
    for e in read_archives(data, want):
        if e.name in wanted and stat.S_ISREG(e.mode):
            files[wanted[e.name]] = e.data
    return files


def gzip_newc(entries: Iterable[Entry], *, level: int = 6) -> bytes:
    """A gzip-compressed newc archive (mtime 0), as used for the fixture initramfs."""
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=level, mtime=0) as g:
        g.write(write_newc(entries))
    return buf.getvalue()
