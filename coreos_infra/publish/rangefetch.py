"""One file of a published build, fetched from a store and verified as it arrives.

A big file is split into ``PIECE``-sized pieces. One stream starts with a single GET to the end of the
file and hashes each chunk from the buffer it was just written from, so nothing is read back; if that
stream is slower than ``ONE_STREAM_RATE`` once past its slow start, ``STREAMS`` streams share the pieces
nobody took yet, one range GET each (``pwrite`` at each piece's position, like rclone's multi-thread
streams), and a catch-up thread hashes in order what was written ahead of the hash (and everything
feeds ``gpgv`` for ``--verify-each``). Hashed bytes are handed to writeback and dropped from the page
cache as the hash goes, so a multi-GiB download recycles a few MiB of memory. The partial file is
``.<name>.<sha256 prefix>.part`` with a ``.done`` journal of the complete prefix, so an interrupted run
resumes; a verified mismatch deletes both. See :mod:`coreos_infra.publish.download` for the whole proof.

Nothing is fsynced where the kernel has a boot ID (as in the artifact cache): within one boot the page
cache is coherent, and what a crash may lose is caught by the next reader, because nothing uses a
downloaded file unverified — the journal names the boot it was written in and a later boot starts over
instead of resuming; a re-run re-hashes a complete file before it keeps it; ``flash --image`` checks its
signature. Where there is no boot ID, each journal entry follows an ``fdatasync`` and the file is fsynced
before it gets its name.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, cast

from coreos_infra import gpg
from coreos_infra.errors import CoreosInfraError, VerificationError
from coreos_infra.fsutil import CHUNK, atomic_output, boot_id
from coreos_infra.log import progress
from coreos_infra.publish.store import Store

LOG = logging.getLogger("coreos_infra.publish")

STREAMS = 4  # parallel range GETs for a big file on a slow link (like rclone's multi-thread streams)
PARALLEL_MIN = 64 << 20  # files smaller than this are fetched in one stream
PIECE = 32 << 20  # what one range GET of a big file fetches (fewer GETs: less work for the server)
ONE_STREAM_RATE = 100e6  # bytes/s: a first stream at least this fast stays alone (a busy CPU slows it too)
FIRST_BYTES_WAIT = 1.0  # seconds: a first stream whose bytes take longer to start gets company
RAMP_UP, SAMPLE = 0.25, 0.25  # seconds: the first stream's rate is measured over SAMPLE after RAMP_UP
HASH_STEP = 4 << 20  # the catch-up hasher waits until this much more is there before it reads on
DROP_STEP = 8 << 20  # how often the hashed bytes are handed to writeback and dropped from the page cache
JOURNAL_EVERY = 32 << 20  # how often the .part.done journal records the complete prefix
RETRIES = 4  # extra attempts after a dropped connection, each resuming where the last one stopped


class DownloadError(CoreosInfraError):
    """The build cannot be resolved or downloaded."""


@dataclass(frozen=True)
class FileEntry:
    """One file of a build, as the (untrusted) index describes it, after the name/key checks."""

    name: str
    key: str
    size: int
    sha256: str
    signature: str | None
    kind: str | None = None
    uncompressed_sha256: str | None = None


class _RangeDone(Exception):
    """Raised from a range writer once its range is complete (stops the store's stream)."""


class _Progress:
    """How far each range got; the hasher waits on it for range ``want`` to reach byte ``need``.

    Writers wake the hasher only then, not at every chunk (each wake-up costs the GIL a hand-over).
    """

    def __init__(self, starts: list[int], bar: Any) -> None:
        self.pos = list(starts)
        self.cond = threading.Condition()
        self.bar = bar
        self.stopped = False
        self.want, self.need = -1, 0
        self.total = 0  # bytes written in this run

    def advance(self, k: int, pos: int, n: int) -> None:
        with self.cond:
            self.pos[k] = pos
            self.total += n
            self.bar.update(n)
            if k == self.want and pos >= self.need:
                self.cond.notify_all()

    def wait_for(self, k: int, need: int) -> int:
        """Block until range ``k`` reached ``need`` (or the transfer stopped); how far it got."""
        with self.cond:
            self.want, self.need = k, need
            while self.pos[k] < need and not self.stopped:
                self.cond.wait()
            self.want = -1
            return self.pos[k]

    def milestone(self) -> None:
        """A range got its first bytes or its last (for :meth:`wait_done`)."""
        with self.cond:
            self.cond.notify_all()

    def wait_done(self, k: int, end: int, timeout: float) -> bool:
        """Whether range ``k`` reaches ``end`` (or the transfer stops) within ``timeout`` seconds."""
        with self.cond:
            return self.cond.wait_for(lambda: self.pos[k] >= end or self.stopped, timeout)

    def stop(self) -> None:
        with self.cond:
            self.stopped = True
            self.cond.notify_all()


class _RangeWriter:
    """One piece of the file: ``pwrite`` at its position, hash where the hash stands, report progress."""

    def __init__(self, fd: int, k: int, start: int, end: int, progress: _Progress, hasher: _Hasher) -> None:
        self.fd, self.k, self.start, self.pos, self.end = fd, k, start, start, end
        self.progress, self.hasher = progress, hasher

    def write_some(self, view: memoryview) -> int:
        """Write what of ``view`` belongs to this piece; how many bytes that was."""
        first = self.pos == self.start
        view = view[: self.end - self.pos]
        mine = len(view)
        while view:
            try:
                n = os.pwrite(self.fd, view, self.pos)
            except OSError as e:
                if e.errno in (errno.ENOSPC, errno.EDQUOT):
                    raise DownloadError("no space left on the device of the destination directory") from None
                raise
            self.hasher.inline(self.pos, view[:n])
            view = view[n:]
            self.pos += n
            self.progress.advance(self.k, self.pos, n)
        if first or self.pos >= self.end:
            self.progress.milestone()
        return mine


class _Pieces:
    """The pieces nobody took yet, handed out in order."""

    def __init__(self, writers: list[_RangeWriter]) -> None:
        self.writers, self.next, self.lock = writers, 0, threading.Lock()
        self.shared = False  # parallel streams run: each GET asks for one piece only

    def take(self) -> _RangeWriter | None:
        with self.lock:
            if self.next >= len(self.writers):
                return None
            self.next += 1
            return self.writers[self.next - 1]

    def take_after(self, w: _RangeWriter) -> _RangeWriter | None:
        """The piece right after ``w``, unless another stream took it."""
        with self.lock:
            if self.next < len(self.writers) and self.writers[self.next].start == w.end:
                self.next += 1
                return self.writers[self.next - 1]
            return None


class _Stream:
    """What one GET streams into: its piece, then the next ones while no other stream took them.

    Alone, a stream is one GET to the end of the file (no gap between pieces); once streams run in
    parallel, each GET asks for just its piece.
    """

    def __init__(self, w: _RangeWriter, pieces: _Pieces, size: int) -> None:
        self.w, self.pieces, self.size = w, pieces, size

    def end(self) -> int:
        return self.w.end if self.pieces.shared else self.size

    def write(self, chunk: bytes) -> int:
        view = memoryview(chunk)
        while True:
            if self.w.progress.stopped:
                raise _RangeDone  # another stream failed: stop this one too
            view = view[self.w.write_some(view) :]
            if self.w.pos < self.w.end:
                return len(chunk)
            nxt = self.pieces.take_after(self.w)
            if nxt is None:
                raise _RangeDone
            self.w = nxt


def _get_range(store: Store, key: str, s: _Stream, errors: list[BaseException]) -> None:
    """Fetch a stream's pieces, retrying a dropped connection from where it stopped; errors to ``errors``."""
    attempt = 0
    try:
        while s.w.pos < s.w.end and not s.w.progress.stopped:
            start = s.w.pos
            try:
                store.read_to(key, cast(BinaryIO, s), offset=s.w.pos, end=s.end())
            except _RangeDone:
                return
            except CoreosInfraError as e:
                if "no object" in e.message:
                    raise
                attempt = 0 if s.w.pos > start else attempt + 1
                if attempt > RETRIES:
                    raise DownloadError(
                        f"{key}: download failed after {RETRIES + 1} attempts at byte {s.w.pos}: "
                        f"{e.message}",
                        hint="run the same command again: it resumes where it stopped",
                    ) from None
                LOG.warning("%s: %s; resuming at byte %d", key, e.message, s.w.pos)
                time.sleep(min(0.5 * 2**attempt, 10))
                continue
            if s.w.pos < s.w.end:  # the stream ended early without an error
                attempt += 1
                if attempt > RETRIES:
                    raise DownloadError(f"{key}: the store sent only {s.w.pos} of {s.w.end} bytes")
    except BaseException as e:
        errors.append(e)
        s.w.progress.stop()


class _Hasher:
    """SHA-256 (and gpgv) over the file in order; whoever holds the next bytes hashes them.

    A writer whose chunk starts where the hash stands hashes it from its own buffer, so with one stream
    no byte is read back. Bytes written ahead of the hash (by parallel ranges, or a resumed prefix) are
    read back from the file by :meth:`catch_up`, in its own thread. Hashed bytes are handed to writeback
    and dropped from the page cache, and the journal records how far the file is complete.
    """

    def __init__(self, fd: int, verifier: gpg.Verifier | None, journal: _Journal) -> None:
        self.fd, self.verifier, self.journal = fd, verifier, journal
        self.lock = threading.Lock()
        self.sha = hashlib.sha256()
        self.pos = self.mark = self.dropped = 0
        self.reading = False  # catch_up is reading from pos on: writers leave the hash alone

    def inline(self, at: int, data: memoryview) -> None:
        """Hash ``data`` (just written at ``at``) if the hash stands right there."""
        if self.pos != at:  # (pos only grows: the locked check below decides)
            return
        with self.lock:
            if self.pos != at or self.reading:
                return
            self._update(data)

    def _update(self, data: memoryview) -> None:
        self.sha.update(data)
        if self.verifier is not None:
            self.verifier.update(bytes(data))  # gpgv's feeder keeps it after the call
        self.pos += len(data)
        if self.pos - self.dropped >= DROP_STEP:
            # Hashed bytes are not read again: start their writeback and drop what earlier steps sent
            # to writeback (DONTNEED skips pages still dirty or in flight), so the download recycles a few
            # MiB of page cache instead of taking fresh memory for every byte, which costs a fault to the
            # host on a VM that reports free pages (rclone does this too).
            start = max(0, self.dropped - 3 * DROP_STEP)
            os.posix_fadvise(self.fd, start, self.pos - start, os.POSIX_FADV_DONTNEED)
            self.dropped = self.pos
        if self.pos - self.mark >= JOURNAL_EVERY:
            self.journal.record(self.pos)
            self.mark = self.pos

    def catch_up(self, ranges: list[tuple[int, int]], progress: _Progress, out: dict[str, Any]) -> None:
        """Hash, in order, whatever the writers wrote but did not hash; ``out``: ``sha256`` or ``error``."""
        buf = memoryview(bytearray(CHUNK))  # one buffer for every read: no fresh pages per chunk
        try:
            for k, (_start, end) in enumerate(ranges):
                while self.pos < end:
                    avail = progress.wait_for(k, min(end, self.pos + HASH_STEP))
                    with self.lock:
                        pos = self.pos
                        if pos >= avail:
                            if progress.stopped:
                                return
                            continue  # the writer hashed it as it wrote
                        self.reading = True
                    try:
                        while pos < avail:
                            n = os.preadv(self.fd, [buf[: min(CHUNK, avail - pos)]], pos)
                            if not n:
                                raise DownloadError(f"{self.journal.path}: the partial file shrank")
                            with self.lock:
                                self._update(buf[:n])
                            pos += n
                    finally:
                        self.reading = False
            out["sha256"] = self.sha.hexdigest()
        except BaseException as e:
            out["error"] = e
            progress.stop()


class _Journal:
    """The ``.part.done`` file: ``<complete prefix> <boot ID>`` (just the number where there is none)."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path, self.fd, self.boot = path, fd, boot_id()
        self.durable = not self.boot  # no boot to scope the data to: it must be on the disk

    def record(self, pos: int) -> None:
        if self.durable:
            os.fdatasync(self.fd)
        with atomic_output(self.path, durable=False) as j:
            j.write(f"{pos} {self.boot}".strip().encode())


def part_path(dest: Path, f: FileEntry) -> Path:
    return dest / f".{f.name}.{f.sha256[:16]}.part"


def journal_path(part: Path) -> Path:
    return part.with_name(part.name + ".done")


def _resume_point(part: Path, size: int) -> int:
    """Bytes of ``part`` known complete: what the journal recorded (bounded by the file), else its size."""
    try:
        have = part.stat().st_size
    except FileNotFoundError:
        return 0
    journal = journal_path(part)
    if journal.exists():
        try:
            pos, _, boot = journal.read_text().strip().partition(" ")
            have = min(have, int(pos or 0))
        except (OSError, ValueError):
            return 0
        if boot and boot != boot_id():
            LOG.info("%s: written before a reboot (it may have lost unsynced bytes): starting over",
                     part.name)  # fmt: skip
            return 0
    return have if have <= size else 0


def _split(have: int, size: int) -> list[tuple[int, int]]:
    """The ranges still to fetch: one, or ``PIECE``-sized ones for a big remainder."""
    if size - have < PARALLEL_MIN:
        return [(have, size)]
    return [(start, min(size, start + PIECE)) for start in range(have, size, PIECE)]


def _check_head(store: Store, f: FileEntry) -> None:
    """The store's object must exist with the size (and, when it records one, the SHA-256) of the index."""
    info = store.head(f.key)
    if info is None:
        raise DownloadError(f"{store.url}: the index lists {f.key}, which is not in the store")
    if info.size != f.size:
        raise VerificationError(f"{f.key}: the store has {info.size} bytes, the index says {f.size}")
    if info.sha256 is not None and info.sha256.lower() != f.sha256:
        raise VerificationError(
            f"{f.key}: the store's metadata says SHA-256 {info.sha256}, the index {f.sha256}"
        )


def _transfer(store: Store, f: FileEntry, fd: int, have: int, verifier: gpg.Verifier | None,
              journal: _Journal, show_progress: bool) -> str:  # fmt: skip
    """Fetch what is missing after byte ``have`` while hashing in order; the SHA-256.

    One stream first, one GET to the end of the file: if it runs at ``ONE_STREAM_RATE`` or faster once
    past its slow start, it stays alone (the CPU is then the limit, and a lone stream hashes what it
    writes without reading it back: half the CPU of parallel ranges). On a slower link ``STREAMS``
    streams share the pieces nobody took yet.
    """
    ranges = [(0, have), *_split(have, f.size)] if have else _split(have, f.size)
    with progress(f.size if show_progress else None, f.name) as bar:
        prog = _Progress([e if (have and k == 0) else s for k, (s, e) in enumerate(ranges)], bar)
        bar.update(have)
        errors: list[BaseException] = []
        out: dict[str, Any] = {}
        hasher = _Hasher(fd, verifier, journal)
        catch_up = threading.Thread(target=hasher.catch_up, args=(ranges, prog, out), daemon=True)
        catch_up.start()
        writers = [
            _RangeWriter(fd, k, s, e, prog, hasher)
            for k, (s, e) in enumerate(ranges)
            if not (have and k == 0)
        ]
        pieces = _Pieces(writers)

        def work() -> None:
            while not prog.stopped:
                w = pieces.take()
                if w is None:
                    return
                _get_range(store, f.key, _Stream(w, pieces, f.size), errors)

        workers = [threading.Thread(target=work, daemon=True)]
        try:
            workers[0].start()
            if len(writers) > 1:
                first = writers[0]
                alone = prog.wait_done(first.k, first.start + 1, FIRST_BYTES_WAIT)
                if alone:  # its rate once past TCP's (and the server's) slow start
                    workers[0].join(RAMP_UP)
                    before = prog.total
                    workers[0].join(SAMPLE)
                    alone = not workers[0].is_alive() or prog.total - before >= ONE_STREAM_RATE * SAMPLE
                more = 0 if alone else min(STREAMS, len(writers)) - 1
                pieces.shared = more > 0
                LOG.debug("%s: %d stream(s)", f.name, 1 + more)
                workers += [threading.Thread(target=work, daemon=True) for _ in range(more)]
                for t in workers[1:]:
                    t.start()
            for t in workers:
                t.join()
        finally:
            if errors or any(t.is_alive() for t in workers):
                prog.stop()
            catch_up.join()
    journal.record(hasher.pos)
    if errors:
        raise errors[0]
    if "error" in out:
        raise out["error"]
    digest = out.get("sha256")
    if hasher.pos != f.size or digest is None:
        raise DownloadError(f"{f.key}: got {hasher.pos} of {f.size} bytes")
    if digest != f.sha256:
        raise VerificationError(
            f"{f.key}: SHA-256 mismatch: downloaded {f.size} bytes hashing to {digest}, "
            f"the signed checksums say {f.sha256}; the object in the store is corrupt or tampered with"
        )
    return str(digest)


def fetch_file(
    store: Store,
    f: FileEntry,
    dest: Path,
    *,
    signature: bytes | None,
    keyring: gpg.Keyring | None,
    mode: int,
    show_progress: bool,
    before_rename: Callable[[], None] | None = None,
    on_resume: Callable[[int], None] | None = None,
) -> Path:
    """Download, verify and rename one file; return its path.

    ``before_rename`` runs once the file verified, before it gets its name (the SHA256SUMS signature
    check that ran meanwhile); it raises to refuse the file. ``on_resume(byte)`` is called when the
    download continues a partial file from an earlier run.
    """
    _check_head(store, f)
    part = part_path(dest, f)
    journal = journal_path(part)
    have = _resume_point(part, f.size)
    fd = os.open(part, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    ok = False
    verifier: gpg.Verifier | None = None
    try:
        if os.fstat(fd).st_size != have:
            # (not on a new file: ext4 flushes a file truncated to 0 when it is closed)
            os.ftruncate(fd, have)
        record = _Journal(journal, fd)
        record.record(have)
        if have:
            LOG.info("%s: resuming at byte %d of %d", f.name, have, f.size)
            if on_resume is not None:
                on_resume(have)
        if signature is not None and keyring is not None:
            verifier = gpg.stream_verifier(signature, keyring, what=f.name)
        _transfer(store, f, fd, have, verifier, record, show_progress)
        if verifier is not None:
            verifier.finish()
            verifier = None
        if before_rename is not None:
            before_rename()
        if record.durable:
            os.fsync(fd)
        os.fchmod(fd, mode)
        ok = True
    except VerificationError:
        part.unlink(missing_ok=True)  # a verified mismatch: nothing of it is kept, not even for resuming
        journal.unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)
        if verifier is not None:
            verifier.close()
        if not ok and part.exists() and part.stat().st_size == 0:
            part.unlink()
            journal.unlink(missing_ok=True)
    os.replace(part, dest / f.name)
    journal.unlink(missing_ok=True)
    return dest / f.name
