"""Filesystem helpers: atomic outputs, fast copies, hashing."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from coreos_infra.background import Background
from coreos_infra.errors import CoreosInfraError, WriteError

CHUNK = 1 << 20


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold SIGINT/SIGTERM back during the block (delivered right after it, in this thread).

    Wrap the creation of a temporary file together with recording its name, so that an interrupt
    cannot fall between the two and leak the file: ``name = None; try: with signals_held(): name =
    mkstemp(); ... finally: remove name``.
    """
    held = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


# errno values that a write into the output file can raise without naming a file (the fd has no name)
_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS})


@contextlib.contextmanager
def atomic_output(
    path: Path, *, overwrite: bool = True, mode: int = 0o644, durable: bool = True, parents: bool = True
) -> Iterator[BinaryIO]:
    """Open a temporary file next to ``path``; rename it over ``path`` only if the block succeeds.

    On any exception the temporary file is removed and ``path`` is untouched. ``durable=False`` skips the
    fsync before the rename (as ``cp`` does): still atomic for readers, not crash-proof. ``parents=False``
    requires the directory to exist (a user's ``-o``), like butane and coreos-installer. Failing to create,
    write (disk full) or rename the output raises :class:`WriteError` naming ``path``.
    """
    path = Path(path)
    if not overwrite and path.exists():
        raise CoreosInfraError(f"{path}: refusing to overwrite an existing file")
    if parents:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise WriteError(str(path), e, stage="open") from None
    tmp = ""
    body_done = False
    try:
        with signals_held():
            try:
                fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            except OSError as e:
                raise WriteError(str(path), e, stage="open") from None
        with os.fdopen(fd, "w+b") as f:
            yield f
            body_done = True
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.chmod(tmp, mode)
        if not overwrite:
            # link() fails if the target appeared meanwhile: never clobber.
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise CoreosInfraError(f"{path}: refusing to overwrite an existing file") from None
            os.unlink(tmp)
        else:
            os.replace(tmp, path)
    except BaseException as e:
        if tmp:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        if isinstance(e, OSError) and (body_done or (e.filename is None and e.errno in _FULL)):
            raise WriteError(str(path), e) from e
        raise


@contextlib.contextmanager
def naming_write_errors(path: Path) -> Iterator[None]:
    """Writes through a file descriptor fail without a file name (disk full, quota, read-only): name
    ``path`` in them (:class:`WriteError`)."""
    try:
        yield
    except OSError as e:
        if e.filename is None and e.errno in _FULL:
            raise WriteError(str(path), e) from e
        raise


def write_atomic(
    path: Path, data: bytes, *, mode: int = 0o644, overwrite: bool = True, parents: bool = True,
    durable: bool = True,
) -> None:  # fmt: skip
    """Write ``data`` to ``path`` atomically (see :func:`atomic_output`)."""
    with atomic_output(path, mode=mode, overwrite=overwrite, parents=parents, durable=durable) as f:
        f.write(data)


class StartedCopy:
    """A copy of ``src`` into the temporary file of a new output ``dest``, started in a thread at once.

    ``copy_file_range`` releases the GIL, so the kernel copies while the caller imports its modules and
    parses the input (``iso customize -o`` costs what ``cp`` costs plus its patching, not plus Python's
    start-up). :meth:`finish` waits and returns the temporary file to patch, :meth:`commit` gives it its
    name exactly as :func:`atomic_output` does; leaving the ``with`` block without committing removes it.
    """

    def __init__(self, src: Path, dest: Path, *, overwrite: bool = False, mode: int = 0o644,
                 durable: bool = False) -> None:  # fmt: skip
        self._src = open(src, "rb")  # noqa: SIM115 - closed by commit()/discard()
        try:
            self._output = atomic_output(
                dest, overwrite=overwrite, mode=mode, durable=durable, parents=False
            )
            self.file = self._output.__enter__()
        except BaseException:
            self._src.close()
            raise
        self._done = False
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._copy, name="started-copy", daemon=True)
        self._thread.start()

    def _copy(self) -> None:
        try:
            copy_file_fast(self._src, self.file)
        except BaseException as e:  # re-raised by finish()
            self._error = e

    def finish(self) -> BinaryIO:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self.file

    def commit(self) -> None:
        self.finish()
        self._done = True
        try:
            self._output.__exit__(None, None, None)
        finally:
            self._src.close()

    def discard(self) -> None:
        if self._done:
            return
        self._done = True
        self._thread.join()
        reason = CoreosInfraError("output discarded")
        try:
            self._output.__exit__(type(reason), reason, None)
        finally:
            self._src.close()

    def __enter__(self) -> StartedCopy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.discard()


BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def boot_id() -> str:
    """This boot's random ID (Linux), or "" where there is none.

    Data written in this boot is coherent in the page cache without fsync, so a record that carries the
    boot ID can skip the fsync and is trusted only while the ID is the same (a crash means a new boot).
    """
    try:
        return BOOT_ID.read_text().strip()
    except OSError:
        return ""


class EarlyWriteback:
    """Starts a file's writeback while it is still being written, so that the final fsync has little left.

    Call :meth:`wrote` after each write; every ``step`` bytes a background thread runs ``fdatasync``
    (which releases the GIL), so the disk writes while the network delivers the next bytes instead of
    all at the end. Errors are left to the caller's final ``fsync``, which reports them. Use as a
    context manager inside the block that keeps ``fd`` open.
    """

    def __init__(self, fd: int, *, step: int = 16 << 20, enabled: bool = True) -> None:
        self.fd, self.step, self.pending, self.enabled = fd, step, 0, enabled
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="early-writeback", daemon=True)
        if enabled:
            self._thread.start()

    def wrote(self, n: int) -> None:
        if not self.enabled:
            return
        self.pending += n
        if self.pending >= self.step:
            self.pending = 0
            self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._stopping:
                return
            try:
                os.fdatasync(self.fd)
            except OSError:
                return

    def close(self) -> None:
        self._stopping = True
        self._wake.set()
        if self.enabled:
            self._thread.join()

    def __enter__(self) -> EarlyWriteback:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def copying_meanwhile(src: Path, opened: BinaryIO, dst: BinaryIO) -> Iterator[None]:
    """:func:`copy_file_fast` of ``src`` to ``dst`` in a thread while the block runs (the kernel copies
    while Python works on the input); its error, if any, is raised when the block ends.

    ``src`` is opened again (the copy must not move ``opened``'s file position) and must be the file
    ``opened`` is, else the input changed meanwhile. ``dst`` is left alone until the block ends.
    """
    copy = open(src, "rb")  # noqa: SIM115 - closed by the copy
    first, again = os.fstat(opened.fileno()), os.fstat(copy.fileno())
    if (first.st_dev, first.st_ino) != (again.st_dev, again.st_ino):
        copy.close()
        raise CoreosInfraError(f"{src}: changed while it was being read")

    def work() -> None:
        with copy:
            copy_file_fast(copy, dst)

    with Background(work) as copied:
        yield
    copied()


def copy_file_fast(src: BinaryIO, dst: BinaryIO) -> None:
    """Copy all of ``src`` to ``dst`` with copy_file_range (reflink or in-kernel copy) when possible.

    Holes in ``src`` stay holes where the filesystem supports SEEK_DATA/SEEK_HOLE.
    """
    src_fd, dst_fd = src.fileno(), dst.fileno()
    size = os.fstat(src_fd).st_size
    offset = 0
    try:
        while offset < size:
            try:
                data = os.lseek(src_fd, offset, os.SEEK_DATA)
            except OSError:  # ENXIO: only a hole remains
                break
            hole = os.lseek(src_fd, data, os.SEEK_HOLE)
            pos = data
            while pos < hole:
                n = os.copy_file_range(src_fd, dst_fd, hole - pos, pos, pos)
                if n == 0:
                    break
                pos += n
            offset = hole
        os.ftruncate(dst_fd, size)
    except OSError:
        src.seek(0)
        dst.seek(0)
        dst.truncate(0)
        while chunk := src.read(CHUNK):
            dst.write(chunk)


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()
