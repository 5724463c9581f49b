"""coreos-installer's xz initrd encoding done the way coreos-installer does it: one liblzma stream encoder
(``lzma_easy_encoder``, preset 9, CRC32) with ``LZMA_FULL_FLUSH`` after each padded cpio entry.

:func:`coreos_infra.cpio.initrd_to_bytes` produces the same bytes by compressing every flush-delimited
piece with a fresh raw LZMA2 encoder, because Python's ``lzma`` module cannot full-flush. Each fresh
preset-9 encoder costs ~0.1–0.3 s, almost all of it page faults on its 64 MiB hash table. Here the
encoder lives through the whole stream (liblzma reuses its buffers between blocks) and big buffers are
mapped with transparent huge pages, so an embed area encodes in a few tens of milliseconds. That is what
keeps ``iso ... -o FILE`` as fast as ``cp`` of the ISO.

The output is checked: it must decode (Python's ``lzma``) to exactly the cpio bytes, else — and whenever
liblzma cannot be loaded through ctypes — :func:`encode_initrd` falls back to
:func:`coreos_infra.cpio.initrd_to_bytes`.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import lzma
import queue
import signal
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence

from coreos_infra import cpio

LOG = logging.getLogger("coreos_infra.live.xzencoder")

LZMA_OK, LZMA_STREAM_END = 0, 1
LZMA_FULL_FLUSH, LZMA_FINISH = 2, 3
LZMA_CHECK_CRC32 = 1
PRESET = 9
HUGE_ALLOC = 2 << 20  # allocations from this size on are mmapped with MADV_HUGEPAGE

_ALLOC = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t)
_FREE = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)


class _Allocator(ctypes.Structure):
    _fields_ = [("alloc", _ALLOC), ("free", _FREE), ("opaque", ctypes.c_void_p)]


class _Stream(ctypes.Structure):
    """``lzma_stream`` (liblzma ≥ 5.0; the reserved fields keep the layout stable)."""

    _fields_ = [
        ("next_in", ctypes.c_void_p), ("avail_in", ctypes.c_size_t), ("total_in", ctypes.c_uint64),
        ("next_out", ctypes.c_void_p), ("avail_out", ctypes.c_size_t), ("total_out", ctypes.c_uint64),
        ("allocator", ctypes.POINTER(_Allocator)), ("internal", ctypes.c_void_p),
        ("reserved_ptr1", ctypes.c_void_p), ("reserved_ptr2", ctypes.c_void_p),
        ("reserved_ptr3", ctypes.c_void_p), ("reserved_ptr4", ctypes.c_void_p),
        ("seek_pos", ctypes.c_uint64), ("reserved_int2", ctypes.c_uint64),
        ("reserved_int3", ctypes.c_size_t), ("reserved_int4", ctypes.c_size_t),
        ("reserved_enum1", ctypes.c_int), ("reserved_enum2", ctypes.c_int),
    ]  # fmt: skip


class _HugePageAllocator:
    """An ``lzma_allocator``: big buffers as anonymous mappings advised for transparent huge pages."""

    PROT_READ_WRITE = 0x3
    MAP_PRIVATE_ANONYMOUS = 0x22
    MADV_HUGEPAGE = 14
    MAP_FAILED = ctypes.c_void_p(-1).value

    def __init__(self, libc: ctypes.CDLL) -> None:
        self._libc = libc
        self._maps: dict[int, int] = {}  # address -> length
        self._alloc_cb = _ALLOC(self._alloc)
        self._free_cb = _FREE(self._free)
        self.struct = _Allocator(self._alloc_cb, self._free_cb, None)

    def _alloc(self, _opaque: int | None, nmemb: int, size: int) -> int | None:
        total = nmemb * size
        if total < HUGE_ALLOC:
            small: int | None = self._libc.malloc(max(total, 1))
            return small
        addr: int | None = self._libc.mmap(
            None, total, self.PROT_READ_WRITE, self.MAP_PRIVATE_ANONYMOUS, -1, 0
        )
        if addr is None or addr == self.MAP_FAILED:
            return None
        self._libc.madvise(addr, total, self.MADV_HUGEPAGE)  # best effort: THP may be disabled
        self._maps[addr] = total
        return addr

    def _free(self, _opaque: int | None, ptr: int | None) -> None:
        if not ptr:
            return
        length = self._maps.pop(ptr, None)
        if length is None:
            self._libc.free(ptr)
        else:
            self._libc.munmap(ptr, length)

    def release_all(self) -> None:
        for addr, length in self._maps.items():
            self._libc.munmap(addr, length)
        self._maps.clear()


def _cdll(soname: str, name: str) -> ctypes.CDLL:
    """Load by soname first: ``find_library`` runs ``ldconfig -p`` (a process per call, at every start)."""
    try:
        return ctypes.CDLL(soname)
    except OSError:
        from ctypes.util import find_library

        return ctypes.CDLL(find_library(name) or soname)


def _load() -> tuple[ctypes.CDLL, ctypes.CDLL] | None:
    try:
        lib = _cdll("liblzma.so.5", "lzma")
        libc = _cdll("libc.so.6", "c")
    except OSError:
        return None
    lib.lzma_easy_encoder.argtypes = [ctypes.POINTER(_Stream), ctypes.c_uint32, ctypes.c_int]
    lib.lzma_easy_encoder.restype = ctypes.c_int
    lib.lzma_code.argtypes = [ctypes.POINTER(_Stream), ctypes.c_int]
    lib.lzma_code.restype = ctypes.c_int
    lib.lzma_end.argtypes = [ctypes.POINTER(_Stream)]
    lib.lzma_end.restype = None
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    libc.free.restype = None
    libc.mmap.argtypes = [
        ctypes.c_void_p,
        ctypes.c_size_t,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_long,
    ]
    libc.mmap.restype = ctypes.c_void_p
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    libc.munmap.restype = ctypes.c_int
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    libc.madvise.restype = ctypes.c_int
    return lib, libc


def compress_with_flushes(pieces: Sequence[bytes]) -> bytes | None:
    """One xz stream (preset 9, CRC32) with a full flush after every piece; None if liblzma is unusable.

    SIGINT/SIGTERM are deferred meanwhile: a signal handler raising inside liblzma's allocator callback
    cannot be propagated (ctypes drops the exception and returns NULL) and crashed the process.
    """
    with _interrupts_deferred():
        return _compress_with_flushes(lambda: pieces)


@contextlib.contextmanager
def _interrupts_deferred() -> Iterator[None]:
    """Run SIGINT/SIGTERM's Python handlers after the block, not inside it (main thread only: Python
    runs signal handlers nowhere else)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, lambda signum, _frame: caught.append(signum))
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    for signum in caught[:1]:
        handler = previous[signal.Signals(signum)]
        if callable(handler):
            handler(signum, None)
        elif handler == signal.SIG_DFL:
            signal.raise_signal(signum)


def _compress_with_flushes(pieces: Callable[[], Sequence[bytes] | None]) -> bytes | None:
    """Set the encoder up (zeroing its 64 MiB hash table is most of the cost), then encode what
    ``pieces()`` gives once it is ready (None: nothing to encode)."""
    loaded = _load()
    if loaded is None:
        return None
    lib, libc = loaded
    allocator = _HugePageAllocator(libc)
    stream = _Stream()
    stream.allocator = ctypes.pointer(allocator.struct)
    if lib.lzma_easy_encoder(ctypes.byref(stream), PRESET, LZMA_CHECK_CRC32) != LZMA_OK:
        allocator.release_all()
        return None
    out = bytearray()
    outbuf = ctypes.create_string_buffer(1 << 16)
    try:
        todo = pieces()
        if todo is None:
            return None
        steps = [(p, LZMA_FULL_FLUSH) for p in todo[:-1]] + [(todo[-1] if todo else b"", LZMA_FINISH)]
        for data, action in steps:
            inbuf = ctypes.create_string_buffer(data, len(data))
            stream.next_in = ctypes.addressof(inbuf)
            stream.avail_in = len(data)
            while True:
                stream.next_out = ctypes.addressof(outbuf)
                stream.avail_out = len(outbuf)
                rc = lib.lzma_code(ctypes.byref(stream), action)
                out += outbuf.raw[: len(outbuf) - stream.avail_out]
                if rc == LZMA_STREAM_END:  # both a full flush and the finish end this way
                    break
                if rc != LZMA_OK:
                    return None
    finally:
        lib.lzma_end(ctypes.byref(stream))
        allocator.release_all()
    return bytes(out)


def flush_pieces(archive: bytes) -> list[bytes]:
    """Split a :func:`coreos_infra.cpio.initrd_cpio` archive after every entry with padded file data."""
    pieces: list[bytes] = []
    start = pos = 0
    while pos < len(archive):
        head = archive[pos : pos + cpio.HEADER_LEN]
        size = int(head[54:62], 16)
        namesize = int(head[94:102], 16)
        name = archive[pos + cpio.HEADER_LEN : pos + cpio.HEADER_LEN + namesize - 1]
        data_start = pos + cpio.HEADER_LEN + namesize + (-(cpio.HEADER_LEN + namesize) % 4)
        pos = data_start + size + (-size % 4)
        if name == cpio.TRAILER.encode():
            break
        if size % 4:
            pieces.append(archive[start:pos])
            start = pos
    pieces.append(archive[start:])
    return pieces


def encode_initrd(files: Mapping[str, bytes]) -> bytes:
    """Same bytes as :func:`coreos_infra.cpio.initrd_to_bytes`, usually several times faster."""
    archive = cpio.initrd_cpio(files)
    return _checked(compress_with_flushes(flush_pieces(archive)), archive, files)


def _checked(fast: bytes | None, archive: bytes, files: Mapping[str, bytes]) -> bytes:
    """``fast`` if it decodes to ``archive``, else the per-block encoder's bytes for ``files``."""
    if fast is not None:
        try:
            if lzma.decompress(fast, format=lzma.FORMAT_XZ) == archive:
                return fast
        except lzma.LZMAError:
            pass
        LOG.debug("liblzma stream encoder output did not verify; using the per-block encoder")
    return cpio.initrd_to_bytes(files)


class InitrdEncoder:
    """:func:`encode_initrd` with the encoder set up ahead, in a thread, while the caller does other work
    (``pxe customize`` reads its input meanwhile): its setup is the expensive part, and the archive's
    content is known only later. liblzma calls back into Python only in that thread, where no signal
    handler runs, so nothing needs deferring. Use as a context manager; :meth:`encode` at most once."""

    def __init__(self) -> None:
        self._pieces: queue.SimpleQueue[Sequence[bytes] | None] = queue.SimpleQueue()
        self._out: bytes | None = None
        self._thread = threading.Thread(target=self._work, name="xz-initrd-encoder", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        self._out = _compress_with_flushes(self._pieces.get)

    def encode(self, files: Mapping[str, bytes]) -> bytes:
        archive = cpio.initrd_cpio(files)
        self._pieces.put(flush_pieces(archive))
        self._thread.join()
        return _checked(self._out, archive, files)

    def __enter__(self) -> InitrdEncoder:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pieces.put(None)  # unused (an error came first): the thread frees the encoder and ends
