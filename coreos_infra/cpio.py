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
import stat
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from coreos_infra import xz
from coreos_infra.errors import CoreosInfraError

NEWC_MAGIC = b"070701"
NEWC_CRC_MAGIC = b"070702"
TRAILER = "TRAILER!!!"
HEADER_LEN = 110


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


def _decompress_one(data: memoryview, kind: str) -> tuple[bytes, int]:
    """Decompress the compressed archive at the start of ``data``; return (payload, bytes consumed)."""
    if kind == "gzip":
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        out = d.decompress(data)
        if not d.eof:
            raise CpioError("truncated gzip archive in initrd")
        return out, len(data) - len(d.unused_data)
    if kind == "xz":
        dx = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
        try:
            out = dx.decompress(data)
        except lzma.LZMAError as e:
            raise CpioError(f"corrupt xz archive in initrd: {e}") from e
        if not dx.eof:
            raise CpioError("truncated xz archive in initrd")
        return out, len(data) - len(dx.unused_data)
    import zstandard

    dz = zstandard.ZstdDecompressor().decompressobj()
    try:
        out = dz.decompress(data)
    except zstandard.ZstdError as e:
        raise CpioError(f"corrupt zstd archive in initrd: {e}") from e
    if not dz.eof:
        raise CpioError("truncated zstd archive in initrd")
    return out, len(data) - len(dz.unused_data)


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


def _parse_newc(
    data: memoryview, pos: int, want: Callable[[str, int], bool] | None = None
) -> tuple[list[Entry], int]:
    """Parse entries from ``pos`` up to and including the trailer; return (entries, end position)."""
    entries: list[Entry] = []
    while True:
        head = bytes(data[pos : pos + HEADER_LEN])
        if len(head) < HEADER_LEN:
            raise CpioError("truncated cpio archive (no TRAILER!!!)")
        if head[:6] not in (NEWC_MAGIC, NEWC_CRC_MAGIC):
            raise CpioError(f"not a newc cpio archive at offset {pos} (magic {head[:6]!r})")
        try:
            f = [int(head[6 + 8 * i : 14 + 8 * i], 16) for i in range(13)]
        except ValueError as e:
            raise CpioError(f"bad cpio header at offset {pos}") from e
        mode, uid, gid, nlink, mtime, size, rmaj, rmin, namesize = (
            f[1], f[2], f[3], f[4], f[5], f[6], f[9], f[10], f[11])  # fmt: skip
        name_start = pos + HEADER_LEN
        name = bytes(data[name_start : name_start + namesize]).rstrip(b"\x00").decode(errors="replace")
        data_start = name_start + namesize + (-(HEADER_LEN + namesize) % 4)
        if data_start + size > len(data):
            raise CpioError(f"truncated cpio member {name!r}")
        pos = data_start + size + (-size % 4)
        if name == TRAILER:
            return entries, pos
        # Bodies the caller does not want are not copied (an FCOS initramfs holds ~250 MB of them).
        body = bytes(data[data_start : data_start + size]) if want is None or want(name, mode) else b""
        entries.append(Entry(name, mode, body, uid, gid, mtime, rmaj, rmin, nlink))


def safe_member_name(name: str) -> str:
    """Normalize a member name (drop ``./`` and empty components); refuse absolute and ``..`` names."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if name.startswith("/") or any(p == ".." for p in parts):
        raise CpioError(f"refusing archive member that escapes the archive root: {name!r}")
    return "/".join(parts)


def read_archives(data: bytes, want: Callable[[str, int], bool] | None = None) -> list[Entry]:
    """Every entry of every archive in a concatenated initrd, in order.

    ``want(name, mode)`` False leaves that entry's ``data`` empty (it is not copied).
    """
    view = memoryview(data)
    pos = 0
    entries: list[Entry] = []
    while pos < len(view):
        if view[pos] == 0:
            pos += 1
            continue
        kind = _sniff(view[pos:])
        if kind == "newc":
            found, pos = _parse_newc(view, pos, want)
            entries += found
            continue
        payload, used = _decompress_one(view[pos:], kind)
        pos += used
        inner = memoryview(payload)
        ipos = 0
        while ipos < len(inner):
            if inner[ipos] == 0:
                rest = bytes(inner[ipos:])
                if rest.strip(b"\x00"):
                    ipos += len(rest) - len(rest.lstrip(b"\x00"))
                    continue
                break
            if _sniff(inner[ipos:]) != "newc":
                raise CpioError("found trailing garbage inside compressed archive")
            found, ipos = _parse_newc(inner, ipos, want)
            entries += found
    return entries


def read_initrd(data: bytes, pattern: str | Sequence[str] = "*") -> dict[str, bytes]:
    """Regular files of a concatenated initrd whose (normalized) name matches ``pattern`` (or any of them).

    Later copies of a path win, as in the kernel. Every regular file's name is checked, matching or not.
    """
    patterns = [pattern] if isinstance(pattern, str) else list(pattern)

    def want(name: str, mode: int) -> bool:
        if not stat.S_ISREG(mode):
            return False
        norm = safe_member_name(name)
        return any(fnmatch.fnmatchcase(norm, p) for p in patterns)

    files: dict[str, bytes] = {}
    for e in read_archives(data, want):
        if stat.S_ISREG(e.mode):
            name = safe_member_name(e.name)
            if any(fnmatch.fnmatchcase(name, p) for p in patterns):
                files[name] = e.data
    return files


def gzip_newc(entries: Iterable[Entry], *, level: int = 6) -> bytes:
    """A gzip-compressed newc archive (mtime 0), as used for the fixture initramfs."""
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=level, mtime=0) as g:
        g.write(write_newc(entries))
    return buf.getvalue()
