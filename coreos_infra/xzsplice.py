"""Rewrite a multi-block .xz disk image by re-encoding only the blocks whose bytes changed.

FCOS ships raw disk images as multi-block xz (``xz -9 -T<n>``: 192 MiB blocks, sizes in the block
headers). xz blocks are independent, so after editing the first few hundred MiB of a disk image we:

1. decode only the blocks covering the byte ranges we may touch into a sparse working file
   (:func:`decode_blocks`; every other region stays a hole),
2. edit the working file (GPT, ESP, boot partition),
3. re-encode the blocks whose content changed, copy every other block's compressed bytes verbatim,
   and write a fresh stream header, index and footer (:func:`splice`).

Single-block (or multi-stream) inputs cannot be spliced; :func:`decompress_to_sparse` and
:func:`compress_file` give the full round trip, using all cores through ``xz -T``.

Memory stays bounded by (threads x one block's encoder/decoder state + a few MiB of buffers),
whatever the image size: nothing holds a whole block or image in memory.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import lzma
import os
import struct
import tempfile
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from coreos_infra import xz
from coreos_infra.errors import CoreosInfraError
from coreos_infra.run import find_binary, run, spawn

CHUNK = 1 << 20
SPARSE_GRAIN = 4096
_ZERO_CHUNK = bytes(CHUNK)
_ZERO_GRAIN = bytes(SPARSE_GRAIN)

Progress = Callable[[int], object]


class XzError(CoreosInfraError):
    """An .xz input that is corrupt or cannot be handled."""


@dataclass(frozen=True)
class XzLayout:
    """Where each block of a single-stream .xz file is, compressed and uncompressed."""

    path: Path
    check: int
    blocks: tuple[xz.Block, ...]
    offsets: tuple[int, ...]  # file offset of each block
    raw_offsets: tuple[int, ...]  # uncompressed offset of each block
    uncompressed_size: int
    file_size: int

    def padded_size(self, i: int) -> int:
        return (self.blocks[i].unpadded_size + 3) // 4 * 4

    def raw_range(self, i: int) -> tuple[int, int]:
        return self.raw_offsets[i], self.raw_offsets[i] + self.blocks[i].uncompressed_size

    def blocks_covering(self, ranges: Iterable[tuple[int, int]]) -> list[int]:
        """Indices of the blocks overlapping any of the byte ranges (start, end)."""
        hit = set()
        for start, end in ranges:
            for i in range(len(self.blocks)):
                b_start, b_end = self.raw_range(i)
                if start < b_end and b_start < end:
                    hit.add(i)
        return sorted(hit)


def read_layout(path: Path) -> XzLayout | None:
    """The block layout of ``path``, or None if it is not exactly one xz stream (e.g. concatenated streams
    or stream padding), in which case only a full round trip is possible.

    Raises XzError if the file is not xz or its index is corrupt.
    """
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:6] != xz.HEADER_MAGIC:
            raise XzError(f"{path}: not an xz file")
        if zlib.crc32(head[6:8]) != struct.unpack("<I", head[8:12])[0]:
            raise XzError(f"{path}: xz stream header CRC mismatch")
        f.seek(max(0, size - (1 << 20)))
        tail = f.read()
    if tail.endswith(b"\0\0\0\0"):
        return None  # stream padding: valid xz, but not one plain stream
    try:
        info = xz.parse_stream_tail(tail)
    except (ValueError, IndexError) as e:
        raise XzError(f"{path}: {e}") from None
    if info.check != head[7] & 0x0F:
        return None  # the footer belongs to another stream than the header
    offsets = info.block_offsets
    end = offsets[-1] + (info.blocks[-1].unpadded_size + 3) // 4 * 4 if offsets else 12
    if end + info.index_size + 12 != size:
        return None
    raw_offsets = []
    pos = 0
    for b in info.blocks:
        raw_offsets.append(pos)
        pos += b.uncompressed_size
    return XzLayout(path, info.check, tuple(info.blocks), tuple(offsets), tuple(raw_offsets), pos, size)


# --- sparse output --------------------------------------------------------------------------------


class SparseWriter:
    """pwrite()s data at increasing offsets of ``fd``, skipping all-zero 4 KiB grains (holes stay holes).

    The file must already have its final size (``ftruncate``), so skipped grains read back as zeros.
    """

    def __init__(self, fd: int, offset: int) -> None:
        self.fd = fd
        self.pos = offset

    def write(self, data: bytes) -> None:
        n = len(data)
        if n == CHUNK and data == _ZERO_CHUNK:
            self.pos += n
            return
        run_start = -1
        for i in range(0, n, SPARSE_GRAIN):
            zero = data[i : i + SPARSE_GRAIN] == _ZERO_GRAIN[: min(SPARSE_GRAIN, n - i)]
            if zero and run_start >= 0:
                self._pwrite(data[run_start:i], self.pos + run_start)
                run_start = -1
            elif not zero and run_start < 0:
                run_start = i
        if run_start >= 0:
            self._pwrite(data[run_start:], self.pos + run_start)
        self.pos += n

    def _pwrite(self, data: bytes, offset: int) -> None:
        view = memoryview(data)
        while view:
            written = os.pwrite(self.fd, view, offset)
            view = view[written:]
            offset += written


# --- decoding -------------------------------------------------------------------------------------


def _single_block_stream_parts(layout: XzLayout, i: int) -> tuple[bytes, bytes]:
    """Header and index+footer that turn block ``i`` alone into a valid xz stream."""
    header = xz.stream_header(layout.check)
    return header, xz.index_and_footer([layout.blocks[i]], layout.check)


def iter_block(layout: XzLayout, i: int, f: BinaryIO | None = None) -> Iterator[bytes]:
    """Decode block ``i`` of ``layout`` in chunks (integrity check verified by liblzma)."""
    own = f is None
    fh = open(layout.path, "rb") if f is None else f
    try:
        header, trailer = _single_block_stream_parts(layout, i)
        dec = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
        produced = 0
        out = dec.decompress(header, max_length=CHUNK)
        fh.seek(layout.offsets[i])
        remaining = layout.padded_size(i)
        pending = b""
        while True:
            if out:
                produced += len(out)
                yield out
            if dec.eof:
                break
            if dec.needs_input:
                if remaining > 0:
                    data = fh.read(min(CHUNK, remaining))
                    if not data:
                        raise XzError(f"{layout.path}: truncated in block {i}")
                    remaining -= len(data)
                elif trailer:
                    data, trailer = trailer, b""
                else:
                    raise XzError(f"{layout.path}: block {i} ends early")
                out = dec.decompress(pending + data, max_length=CHUNK)
                pending = b""
            else:
                out = dec.decompress(b"", max_length=CHUNK)
        if produced != layout.blocks[i].uncompressed_size:
            raise XzError(f"{layout.path}: block {i} decoded to {produced} bytes, index says "
                          f"{layout.blocks[i].uncompressed_size}")  # fmt: skip
    except lzma.LZMAError as e:
        raise XzError(f"{layout.path}: block {i} is corrupt: {e}") from None
    finally:
        if own:
            fh.close()


def _decode_block_to(layout: XzLayout, i: int, fd: int, progress: Progress | None) -> str:
    """Decode block ``i`` into ``fd`` at its uncompressed offset (sparse); return the content's sha256."""
    h = hashlib.sha256()
    w = SparseWriter(fd, layout.raw_offsets[i])
    for chunk in iter_block(layout, i):
        h.update(chunk)
        w.write(chunk)
        if progress:
            progress(len(chunk))
    return h.hexdigest()


def decode_blocks(layout: XzLayout, indices: Iterable[int], fd: int, *, threads: int = 0,
                  progress: Progress | None = None) -> dict[int, str]:  # fmt: skip
    """Decode the given blocks into ``fd`` (already truncated to the full size); return {block: sha256}."""
    todo = sorted(set(indices))
    workers = max(1, min(threads or (os.cpu_count() or 1), len(todo) or 1))
    if workers == 1:
        return {i: _decode_block_to(layout, i, fd, progress) for i in todo}
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        futures = {i: pool.submit(_decode_block_to, layout, i, fd, progress) for i in todo}
        return {i: fut.result() for i, fut in futures.items()}


def hash_range(fd: int, start: int, end: int) -> str:
    h = hashlib.sha256()
    pos = start
    while pos < end:
        data = os.pread(fd, min(CHUNK, end - pos), pos)
        if not data:
            raise XzError("working image is shorter than expected")
        h.update(data)
        pos += len(data)
    return h.hexdigest()


def decompress_to_sparse(src: Path, dst: Path, *, threads: int = 0, progress: Progress | None = None) -> int:
    """Decompress any .xz ``src`` into a new sparse file ``dst``; return the uncompressed size.

    Multi-block single-stream inputs are decoded block-parallel in-process; anything else streams
    through ``xz -dc`` (multi-stream, padding, exotic filters).
    """
    layout = None
    try:
        layout = read_layout(src)
    except XzError:
        layout = None
    with open(dst, "wb") as out:
        fd = out.fileno()
        if layout is not None and len(layout.blocks) > 1:
            os.ftruncate(fd, layout.uncompressed_size)
            decode_blocks(layout, range(len(layout.blocks)), fd, threads=threads, progress=progress)
            return layout.uncompressed_size
        xz_bin = find_binary("xz", reason="decompress .xz images")
        total = 0
        with spawn([xz_bin, "-dc", f"-T{threads}", str(src)], stderr=None) as proc:
            assert proc.stdout is not None
            # The final size is unknown while streaming: grow the file as we go, holes via seek.
            w = SparseWriter(fd, 0)
            while True:
                chunk = proc.stdout.read(CHUNK)
                if not chunk:
                    break
                total += len(chunk)
                os.ftruncate(fd, total)
                w.write(chunk)
                if progress:
                    progress(len(chunk))
            rc = proc.wait()
        if rc != 0:
            raise XzError(f"{src}: xz -d failed with exit code {rc} (corrupt or truncated image?)")
        return total


# --- encoding -------------------------------------------------------------------------------------


def _with_sizes_in_header(header: bytes, compressed: int, uncompressed: int) -> bytes:
    """Rebuild a block header so it records the compressed and uncompressed sizes (like ``xz -T``
    writes them), which lets multi-threaded decoders split the work."""
    flags = header[1]
    pos = 2
    if flags & 0x40:
        _, pos = xz.decode_varint(header, pos)
    if flags & 0x80:
        _, pos = xz.decode_varint(header, pos)
    start = pos
    for _ in range((flags & 0x03) + 1):
        _, pos = xz.decode_varint(header, pos)
        props, pos = xz.decode_varint(header, pos)
        pos += props
    filters = header[start:pos]
    body = (
        bytes([(flags & 0x03) | 0xC0])
        + xz.encode_varint(compressed)
        + xz.encode_varint(uncompressed)
        + filters
    )
    size = 1 + len(body)
    padded = (size + 3) // 4 * 4
    if padded + 4 > 1024:
        return header
    new = bytes([(padded + 4) // 4 - 1]) + body + b"\0" * (padded - size)
    return new + struct.pack("<I", zlib.crc32(new))


def encode_range(fd: int, start: int, end: int, out: BinaryIO, *, check: int, preset: int,
                 progress: Progress | None = None) -> tuple[xz.Block, str]:  # fmt: skip
    """Compress bytes [start, end) of ``fd`` into ONE complete xz block written to ``out``.

    liblzma writes a one-block stream to a temporary file (it computes the check in C); the block
    is cut out of it and its header extended with the sizes. Returns the index record and the sha256
    of the uncompressed bytes.
    """
    comp = lzma.LZMACompressor(format=lzma.FORMAT_XZ, check=check, preset=preset)
    h = hashlib.sha256()
    with tempfile.TemporaryFile(prefix="coreos-infra-xzblock-") as tmp:
        pos = start
        while pos < end:
            data = os.pread(fd, min(CHUNK, end - pos), pos)
            if not data:
                raise XzError("working image is shorter than expected")
            h.update(data)
            tmp.write(comp.compress(data))
            pos += len(data)
            if progress:
                progress(len(data))
        tmp.write(comp.flush())
        size = tmp.tell()
        tmp.seek(max(0, size - 4096))
        info = xz.parse_stream_tail(tmp.read())
        if len(info.blocks) != 1 or info.blocks[0].uncompressed_size != end - start:
            raise XzError("liblzma did not produce exactly one block")
        block = info.blocks[0]
        tmp.seek(12)
        header_size = (tmp.read(1)[0] + 1) * 4
        tmp.seek(12)
        header = tmp.read(header_size)
        check_size = xz.CHECK_SIZES.get(check, 0)
        compressed = block.unpadded_size - header_size - check_size
        new_header = _with_sizes_in_header(header, compressed, block.uncompressed_size)
        out.write(new_header)
        # compressed data, then the padding (re-computed for the new header size), then the check
        remaining = compressed
        while remaining:
            data = tmp.read(min(CHUNK, remaining))
            out.write(data)
            remaining -= len(data)
        tmp.seek(12 + (block.unpadded_size - check_size + 3) // 4 * 4)
        check_bytes = tmp.read(check_size)
        out.write(b"\0" * (-(len(new_header) + compressed) % 4))
        out.write(check_bytes)
        return xz.Block(len(new_header) + compressed + check_size, block.uncompressed_size), h.hexdigest()


@dataclass(frozen=True)
class SpliceResult:
    reencoded: tuple[int, ...]
    copied: tuple[int, ...]
    size: int  # bytes written
    sha256: str  # of the compressed output
    uncompressed_sha256: str
    uncompressed_size: int


class _HashingWriter:
    def __init__(self, f: BinaryIO) -> None:
        self.f = f
        self.h = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.f.write(data)
        self.h.update(data)
        self.size += len(data)
        return len(data)


def _assemble(
    layout: XzLayout,
    pieces: dict[int, list[tuple[int, int]]],
    encoded: dict[tuple[int, int], tuple[Path, xz.Block]],
    out: BinaryIO,
) -> _HashingWriter:
    """The new stream: re-encoded pieces where blocks changed, the input's blocks verbatim elsewhere."""
    w = _HashingWriter(out)
    w.write(xz.stream_header(layout.check))
    records = []
    with open(layout.path, "rb") as src:
        for i in range(len(layout.blocks)):
            if i in pieces:
                for j in range(len(pieces[i])):
                    path, block = encoded[(i, j)]
                    with open(path, "rb") as bf:
                        while data := bf.read(CHUNK):
                            w.write(data)
                    records.append(block)
            else:
                src.seek(layout.offsets[i])
                remaining = layout.padded_size(i)
                while remaining:
                    data = src.read(min(CHUNK, remaining))
                    if not data:
                        raise XzError(f"{layout.path}: truncated in block {i}")
                    w.write(data)
                    remaining -= len(data)
                records.append(layout.blocks[i])
    w.write(xz.index_and_footer(records, layout.check))
    return w


def splice(layout: XzLayout, fd: int, changed: Iterable[int], out: BinaryIO, *, preset: int = 9,
           threads: int = 0, decoded: Iterable[int] = (), tmp_dir: Path | None = None,
           progress: Progress | None = None) -> SpliceResult:  # fmt: skip
    """Write a new .xz of the working image ``fd`` to ``out``: blocks in ``changed`` are re-encoded from
    ``fd``; all others are copied from ``layout.path`` verbatim.

    ``decoded`` names the blocks whose current content is in ``fd`` (the changed ones always are);
    every other block is decoded once more from the input to compute the uncompressed sha256 (which
    also re-verifies every copied block's integrity check), in parallel with the encoders.
    """
    changed = sorted(set(changed))
    workers = max(1, threads or (os.cpu_count() or 1))
    in_fd = set(changed) | set(decoded)
    lock = threading.Lock()

    # Split each changed block into up to ``workers`` pieces (each its own xz block, 1 MiB aligned) so
    # that re-encoding one big FCOS block (192 MiB) uses every core; the index simply lists more blocks.
    pieces: dict[int, list[tuple[int, int]]] = {i: _split(*layout.raw_range(i), workers) for i in changed}

    stop = threading.Event()  # set when the main thread gives up: workers end at their next chunk

    def report(n: int) -> None:
        if stop.is_set():
            raise _Cancelled
        if progress:
            with lock:
                progress(n)

    encoded: dict[tuple[int, int], tuple[Path, xz.Block]] = {}
    # Every encoded block goes into one private directory, removed on every exit path (errors,
    # Ctrl-C): no per-file bookkeeping to get wrong when a worker finishes after the main thread left.
    with tempfile.TemporaryDirectory(prefix=".coreos-infra-blocks-", dir=tmp_dir) as blocks_dir:

        def encode(key: tuple[int, int], start: int, end: int) -> tuple[Path, xz.Block]:
            path = Path(blocks_dir) / f"{key[0]}.{key[1]}.xz"
            with open(path, "wb") as tf:
                block, _ = encode_range(
                    fd, start, end, tf, check=layout.check, preset=preset, progress=report
                )
            return path, block

        pool = concurrent.futures.ThreadPoolExecutor(workers + 1)
        try:
            enc_futs = {
                (i, j): pool.submit(encode, (i, j), a, b)
                for i in changed
                for j, (a, b) in enumerate(pieces[i])
            }
            # One sequential pass hashes the whole uncompressed image (decoding the copied blocks once
            # more, which re-verifies their checks) while the encoders run.
            hash_fut = pool.submit(_image_sha256, layout, fd, in_fd, stop)
            futs: list[concurrent.futures.Future[Any]] = [*enc_futs.values(), hash_fut]
            done, _ = concurrent.futures.wait(futs, return_when=concurrent.futures.FIRST_EXCEPTION)
            for f in done:
                if (error := f.exception()) is not None:
                    raise error
            for key, fut in enc_futs.items():
                encoded[key] = fut.result()
            uncompressed_sha = hash_fut.result()
        except BaseException:
            stop.set()  # the first error (or an interrupt) wins; the other workers stop early
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        w = _assemble(layout, pieces, encoded, out)
    return SpliceResult(tuple(changed), tuple(i for i in range(len(layout.blocks)) if i not in changed),
                        w.size, w.h.hexdigest(), uncompressed_sha, layout.uncompressed_size)  # fmt: skip


def _split(start: int, end: int, parts: int) -> list[tuple[int, int]]:
    """Cut [start, end) into up to ``parts`` pieces of at least 16 MiB, on 1 MiB boundaries."""
    size = end - start
    parts = max(1, min(parts, size // (16 << 20)))
    step = (size // parts + (1 << 20) - 1) // (1 << 20) * (1 << 20)
    cuts = [start + k * step for k in range(parts)] + [end]
    return [(a, b) for a, b in zip(cuts, cuts[1:], strict=False) if a < b]


class _Cancelled(Exception):
    """A worker was told to stop because the main thread gave up (an error elsewhere, Ctrl-C)."""


def _image_sha256(layout: XzLayout, fd: int, in_fd: set[int], stop: threading.Event | None = None) -> str:
    """sha256 of the whole uncompressed image: blocks in ``in_fd`` read from the working file, the
    others decoded from the input. Ends early (:class:`_Cancelled`) once ``stop`` is set."""
    h = hashlib.sha256()
    for i in range(len(layout.blocks)):
        start, end = layout.raw_range(i)
        if i in in_fd:
            pos = start
            while pos < end:
                if stop is not None and stop.is_set():
                    raise _Cancelled
                data = os.pread(fd, min(CHUNK, end - pos), pos)
                h.update(data)
                pos += len(data)
        else:
            for chunk in iter_block(layout, i):
                if stop is not None and stop.is_set():
                    raise _Cancelled
                h.update(chunk)
    return h.hexdigest()


def compress_file(src: Path, out: BinaryIO, *, preset: int = 9, threads: int = 0) -> None:
    """Full compression with the xz tool, all cores (``-T0``): multi-block output with sizes in headers."""
    xz_bin = find_binary("xz", reason="compress disk images")
    run([xz_bin, f"-{preset}", f"-T{threads}", "--check=crc64", "-c", str(src)], stdout=out)
