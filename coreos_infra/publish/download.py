"""``invoke download``: fetch a published build from a store, verified before any file gets its name.

Resolution: ``sites/<site>/index.json`` → host → target → the build (``latest`` through
``latest.json``, or a build ID). Everything in an index is untrusted: every file name must be a plain
file name (:func:`coreos_infra.safenames.safe_file_name`) and every key exactly the one the layout gives
for that (site, host, target, build, name); anything else is refused before a request is made.

Verification, against a trusted keyring that comes from the caller (``--keyring`` or the site settings),
never only from the store itself:

1. ``SHA256SUMS`` and its detached signature (gpgv; the keyring is built and the signature checked while
   the files download, and no file is renamed before that passed); every file's SHA-256 in the index
   must equal the one in ``SHA256SUMS``;
2. each file is downloaded to ``.<name>.<sha256 prefix>.part`` in the destination and hashed as it
   arrives; its SHA-256 must be the signed one. That is the whole proof: a per-file ``.sig`` is an
   OpenPGP signature by the same key over a digest (SHA-256 with gpg's defaults) of the same bytes, so
   it adds no assurance, only a second, slower hash (gpgv hashes at a fraction of OpenSSL's speed).
   ``verify_each`` (``--verify-each``) checks it all the same: the bytes are fed to ``gpgv`` with the
   file's ``.sig`` through a FIFO while they arrive (no second pass); the ``.sig`` is then kept too;
3. only when size, SHA-256 (and signature) all verified is the file renamed to its name (mode 0600 when
   the build carries secrets). A file that fails is deleted, partial data included: nothing unverified
   is kept. An interrupted download keeps its ``.part`` file; the next run continues from its size
   (the prefix already there is hashed and fed to gpgv first). Dropped connections are retried in the
   same run, resuming where they stopped.

The destination also gets ``meta.json`` (checked against SHA256SUMS) and ``SHA256SUMS`` (+ ``.sig``), so
``gpgv SHA256SUMS.sig SHA256SUMS && sha256sum -c SHA256SUMS`` works there by hand too.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import re
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, cast

from coreos_infra import gpg
from coreos_infra.errors import CoreosInfraError, VerificationError
from coreos_infra.fsutil import CHUNK, atomic_output, write_atomic
from coreos_infra.log import progress
from coreos_infra.publish import index as idx
from coreos_infra.publish import layout
from coreos_infra.publish.store import Store
from coreos_infra.safenames import safe_file_name

LOG = logging.getLogger("coreos_infra.publish")

STREAMS = 4  # parallel range GETs for a big file (like rclone's multi-thread streams)
PARALLEL_MIN = 64 << 20  # files smaller than this are fetched in one stream
JOURNAL_EVERY = 32 << 20  # how often the .part.done journal records the complete prefix
RETRIES = 4  # extra attempts after a dropped connection, each resuming where the last one stopped
MAX_SMALL = 16 << 20  # signatures, SHA256SUMS, meta.json, pointers
F_SETPIPE_SZ = 1031
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_SUMS_LINE = re.compile(r"^([0-9a-fA-F]{64}) [ *](.+)$")


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


@dataclass(frozen=True)
class Build:
    """A resolved build: its index entry and checked file list."""

    site: str
    host: str
    target: str
    build_id: str
    entry: dict[str, Any]
    files: tuple[FileEntry, ...]
    sums: str | None
    sums_signature: str | None
    meta: str | None

    @property
    def format(self) -> str:
        return str(self.entry.get("format") or "")

    @property
    def contains_secrets(self) -> bool:
        return bool(self.entry.get("contains_secrets"))

    def disk_image(self) -> FileEntry:
        """The file to flash: the stream ``disk`` artifact, else the one named ``*.<format>``."""
        found = [f for f in self.files if f.kind == "disk"] or [
            f for f in self.files if self.format and f.name.endswith("." + self.format)
        ]
        if len(found) != 1 or self.format in ("pxe", "qcow2.xz"):
            raise DownloadError(
                f"build {self.build_id} of {self.site}/{self.host}/{self.target} (format "
                f"{self.format or '?'}) has no disk image to flash",
                hint="flash rpi4/metal (raw.xz) or usb/live (iso) builds; pxe builds are netbooted",
            )
        return found[0]


@dataclass
class Downloaded:
    build: Build
    dest: Path
    files: dict[str, Path] = field(default_factory=dict)  # name -> verified file
    signed: bool = False
    reused: list[str] = field(default_factory=list)  # names already there and verified again
    resumed: dict[str, int] = field(default_factory=dict)  # name -> byte the download resumed at

    def uncompressed_sha256(self, name: str) -> str | None:
        """The SHA-256 of the decompressed image ``name`` from the verified meta.json, if it records one."""
        meta = self.dest / "meta.json"
        if name not in self.files or not meta.is_file():
            return None
        try:
            image = json.loads(meta.read_bytes()).get("image") or {}
        except (ValueError, AttributeError):
            return None
        value = image.get("uncompressed_sha256") if isinstance(image, dict) else None
        return value.lower() if isinstance(value, str) and _HEX64.match(value.lower()) else None


# --- resolution --------------------------------------------------------------------------------------


def _small(store: Store, key: str) -> bytes:
    data = store.get_bytes(key)
    if len(data) > MAX_SMALL:
        raise DownloadError(f"{store.url}/{key}: larger than {MAX_SMALL} bytes; refusing it")
    return data


def _expect_key(value: Any, expected: str, what: str) -> str:
    if value != expected:
        raise VerificationError(
            f"refusing {what} key {value!r}: expected {expected!r} (an index must not point elsewhere)"
        )
    return expected


def _file_entry(site: str, host: str, target: str, build_id: str, f: Any, where: str) -> FileEntry:
    if not isinstance(f, dict):
        raise DownloadError(f"{where}: a file entry is not an object")
    name = safe_file_name(str(f.get("name", "")), what=f"file name in {where}")
    try:
        expected = layout.artifact(site, host, target, build_id, name)
    except CoreosInfraError as e:
        raise VerificationError(f"{where}: refusing file name {name!r}: {e.message}") from None
    key = _expect_key(f.get("key"), expected, f"file {name}")
    sig = f.get("signature")
    if sig is not None:
        sig = _expect_key(sig, layout.signature(key), f"signature of {name}")
    size = f.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise DownloadError(f"{where}: file {name}: invalid size {size!r}")
    sha = str(f.get("sha256", "")).lower()
    if not _HEX64.match(sha):
        raise DownloadError(f"{where}: file {name}: invalid sha256 {f.get('sha256')!r}")
    unc = f.get("uncompressed_sha256")
    unc = str(unc).lower() if isinstance(unc, str) and _HEX64.match(unc.lower()) else None
    kind = f.get("kind") if isinstance(f.get("kind"), str) else None
    return FileEntry(name, key, size, sha, sig, kind, unc)


def resolve_build(store: Store, site: str, host: str, target: str, build: str = "latest") -> Build:
    """Find the build in the site index (``latest`` through ``latest.json``) and check its file list."""
    for value, what in ((site, "site"), (host, "host"), (target, "target")):
        layout.check_name(value, what)
    index = idx.read_site_index(store, site)
    where = f"{store.url}/{layout.site_index(site)}"
    if index is None:
        raise DownloadError(
            f"{store.url}: site {site!r} has not been published (no {layout.site_index(site)})"
        )
    hosts = index.get("hosts", {})
    if host not in hosts:
        raise DownloadError(f"{where}: no host {host!r} (published: {', '.join(sorted(hosts)) or 'none'})")
    targets = hosts[host].get("targets", {}) if isinstance(hosts[host], dict) else {}
    if target not in targets:
        raise DownloadError(
            f"{where}: nothing published for host {host} target {target!r} "
            f"(published: {', '.join(sorted(targets)) or 'none'})"
        )
    t = targets[target]
    builds = [b for b in t.get("builds", []) if isinstance(b, dict)]
    if build == "latest":
        pointer_key = layout.latest(site, host, target)
        if store.head(pointer_key) is not None:
            try:
                pointer = json.loads(_small(store, pointer_key))
            except ValueError as e:
                raise DownloadError(f"{store.url}/{pointer_key}: not valid JSON ({e})") from None
            wanted = pointer.get("build_id") if isinstance(pointer, dict) else None
            source = pointer_key
        else:
            wanted, source = t.get("latest"), layout.site_index(site)
        if not isinstance(wanted, str):
            raise DownloadError(f"{store.url}/{source}: no latest build ID")
    else:
        wanted = build
    layout.check_name(wanted, "build ID")
    entry = next((b for b in builds if b.get("build_id") == wanted), None)
    if entry is None:
        known = ", ".join(str(b.get("build_id")) for b in builds[:5]) or "none"
        raise DownloadError(f"{where}: no build {wanted!r} for {host}/{target} (newest: {known})")
    files = tuple(_file_entry(site, host, target, wanted, f, where) for f in entry.get("files", []))
    if not files:
        raise DownloadError(f"{where}: build {wanted} lists no files")
    if len({f.name for f in files}) != len(files):
        raise DownloadError(f"{where}: build {wanted} lists a file name twice")
    sums = entry.get("sums")
    if sums is not None:
        sums = _expect_key(sums, layout.sums(site, host, target, wanted), "SHA256SUMS")
    sums_sig = entry.get("sums_signature")
    if sums_sig is not None:
        sums_sig = _expect_key(sums_sig, layout.sums_signature(site, host, target, wanted), "SHA256SUMS.sig")
    meta = entry.get("meta")
    if meta is not None:
        meta = _expect_key(meta, layout.meta(site, host, target, wanted), "meta.json")
    return Build(site, host, target, wanted, entry, files, sums, sums_sig, meta)


def parse_sums(data: bytes, source: str) -> dict[str, str]:
    """``sha256sum`` lines → {name: sha256}."""
    out: dict[str, str] = {}
    for n, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        m = _SUMS_LINE.match(line)
        if not m:
            raise VerificationError(f"{source}:{n}: not a sha256sum line")
        name = m.group(2)
        if name in out:
            raise VerificationError(f"{source}:{n}: {name} listed twice")
        out[name] = m.group(1).lower()
    return out


# --- streaming gpgv ----------------------------------------------------------------------------------


class _StreamVerifier:
    """``gpgv`` over bytes as they arrive: it reads a FIFO that :meth:`feed` writes to."""

    def __init__(self, signature: bytes, keyring: gpg.Keyring, what: str, workdir: Path) -> None:
        self.fifo = workdir / f"gpgv-{os.getpid()}-{threading.get_ident()}-{time.monotonic_ns()}.fifo"
        os.mkfifo(self.fifo, 0o600)
        self.error: BaseException | None = None
        self.check: gpg.SignatureCheck | None = None
        self.fd: int | None = None
        self.broken = False
        self._thread = threading.Thread(target=self._run, args=(signature, keyring, what), daemon=True)
        self._thread.start()

    def _run(self, signature: bytes, keyring: gpg.Keyring, what: str) -> None:
        try:
            self.check = gpg.verify_detached(self.fifo, signature, keyring, what=what)
        except BaseException as e:  # reported by finish()
            self.error = e

    def _open(self) -> None:
        while self.fd is None and not self.broken:
            try:
                self.fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            except OSError as e:
                if e.errno != errno.ENXIO:  # ENXIO: gpgv has not opened it yet
                    raise
                if not self._thread.is_alive():
                    self.broken = True  # gpgv ended before reading (a malformed .sig)
                    return
                time.sleep(0.002)
        if self.fd is not None:
            fcntl.fcntl(self.fd, fcntl.F_SETFL, fcntl.fcntl(self.fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
            with contextlib.suppress(OSError):
                fcntl.fcntl(self.fd, F_SETPIPE_SZ, 1 << 20)

    def feed(self, data: bytes | memoryview) -> None:
        if self.fd is None:
            self._open()
        if self.broken or self.fd is None:
            return
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self.fd, view) :]
        except BrokenPipeError:
            self.broken = True  # gpgv stopped reading; finish() reports why

    def _close(self) -> None:
        if self.fd is None and not self.broken:
            self._open()  # let a gpgv that waits in open() see the end of the data
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = None
        self._thread.join()
        self.fifo.unlink(missing_ok=True)

    def finish(self) -> gpg.SignatureCheck:
        self._close()
        if self.error is not None:
            raise self.error
        if self.check is None:
            raise VerificationError(f"{self.fifo}: gpgv gave no result")
        return self.check

    def abort(self) -> None:
        with contextlib.suppress(BaseException):
            self._close()


class _RangeDone(Exception):
    """Raised from a range writer once its range is complete (stops the store's stream)."""


class _Progress:
    """How far each range got; the hasher waits on it."""

    def __init__(self, starts: list[int], bar: Any) -> None:
        self.pos = list(starts)
        self.cond = threading.Condition()
        self.bar = bar
        self.stopped = False

    def advance(self, k: int, pos: int, n: int) -> None:
        with self.cond:
            self.pos[k] = pos
            self.bar.update(n)
            self.cond.notify_all()

    def stop(self) -> None:
        with self.cond:
            self.stopped = True
            self.cond.notify_all()


class _RangeWriter:
    """What the store streams one range into: ``pwrite`` at the range's position, then stop."""

    def __init__(self, fd: int, k: int, start: int, end: int, progress: _Progress) -> None:
        self.fd, self.k, self.pos, self.end, self.progress = fd, k, start, end, progress

    def write(self, chunk: bytes) -> int:
        if self.progress.stopped:
            raise _RangeDone  # another range failed: stop this stream too
        view = memoryview(chunk)[: self.end - self.pos]
        while view:
            try:
                n = os.pwrite(self.fd, view, self.pos)
            except OSError as e:
                if e.errno in (errno.ENOSPC, errno.EDQUOT):
                    raise DownloadError("no space left on the device of the destination directory") from None
                raise
            view = view[n:]
            self.pos += n
            self.progress.advance(self.k, self.pos, n)
        if self.pos >= self.end:
            raise _RangeDone
        return len(chunk)


def _get_range(store: Store, key: str, w: _RangeWriter, errors: list[BaseException]) -> None:
    """Fetch one range, retrying dropped connections from where they stopped; errors go to ``errors``."""
    attempt = 0
    try:
        while w.pos < w.end and not w.progress.stopped:
            start = w.pos
            try:
                store.read_to(key, cast(BinaryIO, w), offset=w.pos)
            except _RangeDone:
                return
            except CoreosInfraError as e:
                if "no object" in e.message:
                    raise
                attempt = 0 if w.pos > start else attempt + 1
                if attempt > RETRIES:
                    raise DownloadError(
                        f"{key}: download failed after {RETRIES + 1} attempts at byte {w.pos}: {e.message}",
                        hint="run the same command again: it resumes where it stopped",
                    ) from None
                LOG.warning("%s: %s; resuming at byte %d", key, e.message, w.pos)
                time.sleep(min(0.5 * 2**attempt, 10))
                continue
            if w.pos < w.end:  # the stream ended early without an error
                attempt += 1
                if attempt > RETRIES:
                    raise DownloadError(f"{key}: the store sent only {w.pos} of {w.end} bytes")
    except BaseException as e:
        errors.append(e)
        w.progress.stop()


def _digest(fd: int, size: int, ranges: list[tuple[int, int]], progress: _Progress,
            verifier: _StreamVerifier | None, journal: Path, out: dict[str, Any]) -> None:  # fmt: skip
    """SHA-256 (and gpgv) over the file in order, reading each byte as soon as its range wrote it.

    ``journal`` records how far the file is complete (and synced) from its start, for a later run.
    """
    hasher = hashlib.sha256()
    pos = 0
    mark = 0
    try:
        for k, (_start, end) in enumerate(ranges):
            while pos < end:
                with progress.cond:
                    while progress.pos[k] <= pos and not progress.stopped:
                        progress.cond.wait()
                    avail = progress.pos[k]
                    if progress.stopped and avail <= pos:
                        return
                while pos < avail:
                    chunk = os.pread(fd, min(CHUNK, avail - pos), pos)
                    if not chunk:
                        raise DownloadError(f"{journal}: the partial file shrank")
                    hasher.update(chunk)
                    if verifier is not None:
                        verifier.feed(chunk)
                    pos += len(chunk)
                if pos - mark >= JOURNAL_EVERY:
                    # Durable before it is recorded; this also starts the writeback early, so the
                    # final fsync has little left to do.
                    os.fdatasync(fd)
                    with atomic_output(journal, durable=False) as j:
                        j.write(str(pos).encode())
                    mark = pos
        out["sha256"] = hasher.hexdigest()
    except BaseException as e:
        out["error"] = e
        progress.stop()
    finally:
        out["pos"] = pos


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
            have = min(have, int(journal.read_text().strip() or 0))
        except (OSError, ValueError):
            have = 0
    return have if have <= size else 0


def _split(have: int, size: int) -> list[tuple[int, int]]:
    """The ranges still to fetch: one, or ``STREAMS`` parallel ones for a big remainder."""
    left = size - have
    n = STREAMS if left >= PARALLEL_MIN else 1
    step = -(-left // n)
    return [
        (have + i * step, min(size, have + (i + 1) * step)) for i in range(n) if have + i * step < size
    ] or [(have, size)]


def _fetch_file(
    store: Store,
    f: FileEntry,
    dest: Path,
    *,
    signature: bytes | None,
    keyring: gpg.Keyring | None,
    mode: int,
    show_progress: bool,
    result: Downloaded,
    before_rename: Callable[[], None] | None = None,
) -> Path:
    """Download, verify and rename one file; see the module docstring.

    ``before_rename`` runs once the file verified, before it gets its name (the SHA256SUMS signature
    check that ran meanwhile); it raises to refuse the file.
    """
    final = dest / f.name
    info = store.head(f.key)
    if info is None:
        raise DownloadError(f"{store.url}: the index lists {f.key}, which is not in the store")
    if info.size != f.size:
        raise VerificationError(f"{f.key}: the store has {info.size} bytes, the index says {f.size}")
    if info.sha256 is not None and info.sha256.lower() != f.sha256:
        raise VerificationError(
            f"{f.key}: the store's metadata says SHA-256 {info.sha256}, the index {f.sha256}"
        )
    part = part_path(dest, f)
    journal = journal_path(part)
    have = _resume_point(part, f.size)
    fd = os.open(part, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    ok = False
    verifier: _StreamVerifier | None = None
    try:
        os.ftruncate(fd, have)
        with atomic_output(journal, durable=False) as j:
            j.write(str(have).encode())
        if have:
            LOG.info("%s: resuming at byte %d of %d", f.name, have, f.size)
            result.resumed[f.name] = have
        if signature is not None and keyring is not None:
            verifier = _StreamVerifier(signature, keyring, f.name, dest)
        ranges = [(0, have), *_split(have, f.size)] if have else _split(have, f.size)
        with progress(f.size if show_progress else None, f.name) as bar:
            starts = [e if (have and k == 0) else s for k, (s, e) in enumerate(ranges)]
            prog = _Progress(starts, bar)
            bar.update(have)
            errors: list[BaseException] = []
            out: dict[str, Any] = {}
            args = (fd, f.size, ranges, prog, verifier, journal, out)
            hasher = threading.Thread(target=_digest, args=args, daemon=True)
            hasher.start()
            workers = [
                threading.Thread(
                    target=_get_range,
                    args=(store, f.key, _RangeWriter(fd, k, s, e, prog), errors),
                    daemon=True,
                )  # fmt: skip
                for k, (s, e) in enumerate(ranges)
                if not (have and k == 0)
            ]
            try:
                for w in workers:
                    w.start()
                for w in workers:
                    w.join()
            finally:
                if errors or any(w.is_alive() for w in workers):
                    prog.stop()
                hasher.join()
        pos = int(out.get("pos", 0))
        with atomic_output(journal, durable=False) as j:
            j.write(str(pos).encode())
        if errors:
            raise errors[0]
        if "error" in out:
            raise out["error"]
        digest = out.get("sha256")
        if pos != f.size or digest is None:
            raise DownloadError(f"{f.key}: got {pos} of {f.size} bytes")
        if digest != f.sha256:
            raise VerificationError(
                f"{f.key}: SHA-256 mismatch: downloaded {f.size} bytes hashing to {digest}, "
                f"the signed checksums say {f.sha256}; the object in the store is corrupt or tampered with"
            )
        if verifier is not None:
            verifier.finish()
            verifier = None
        if before_rename is not None:
            before_rename()
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
            verifier.abort()
        if not ok and part.exists() and part.stat().st_size == 0:
            part.unlink()
            journal.unlink(missing_ok=True)
    os.replace(part, final)
    journal.unlink(missing_ok=True)
    return final


def _reuse(path: Path, f: FileEntry, signature: bytes | None, keyring: gpg.Keyring | None) -> bool:
    """An already downloaded file of the right size and SHA-256 (and signature) is kept as it is."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(st.st_mode) or st.st_size != f.size:
        return False
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    if h.hexdigest() != f.sha256:
        return False
    if signature is not None and keyring is not None:
        try:
            gpg.verify_detached(path, signature, keyring, what=f.name)
        except VerificationError as e:
            LOG.warning("%s: %s; downloading it again", path, e.message)
            return False
    return True


class _Gate:
    """A check running in the background (the SHA256SUMS signature); :meth:`wait` re-raises its error."""

    def __init__(self, job: Callable[[], None] | None) -> None:
        self.error: BaseException | None = None
        self.passed = job is None
        self._thread: threading.Thread | None = None
        if job is not None:
            self._thread = threading.Thread(target=self._run, args=(job,), daemon=True)
            self._thread.start()

    def _run(self, job: Callable[[], None]) -> None:
        try:
            job()
            self.passed = True
        except BaseException as e:  # re-raised by wait()
            self.error = e

    def join(self) -> None:
        if self._thread is not None:
            self._thread.join()

    def wait(self) -> None:
        self.join()
        if self.error is not None:
            raise self.error


def _with_keyring(keyring: Path | None, fn: Callable[[gpg.Keyring | None], None]) -> None:
    with trusted_keyring(keyring) as trusted:
        fn(trusted)


@contextlib.contextmanager
def trusted_keyring(keyring: Path | None) -> Iterator[gpg.Keyring | None]:
    """A gpgv keyring with only the keys in ``keyring`` (a key file or a directory of them)."""
    if keyring is None:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="coreos-infra-trust-") as tmp:
        yield gpg.build_keyring(Path(tmp) / "trusted.gpg", pinned=[], extra=[Path(keyring)])


def download_build(
    store: Store,
    site: str,
    host: str,
    target: str,
    *,
    dest: Path,
    build: str = "latest",
    keyring: Path | None = None,
    allow_unsigned: bool = False,
    names: Sequence[str] | None = None,
    per_build_dir: bool = False,
    verify_each: bool = False,
    show_progress: bool = True,
    resolved: Build | None = None,
) -> Downloaded:
    """Download (with resume) and verify a published build into ``dest``; see the module docstring.

    ``keyring`` holds the trusted site key(s); it is required unless ``allow_unsigned``, and even then a
    signature that is present is checked when a keyring is given. ``names`` limits the files fetched.
    ``per_build_dir`` puts the files in ``dest/<site>/<host>/<target>/<build ID>/``. ``resolved`` is a
    build :func:`resolve_build` already found (no second look-up). ``verify_each`` also checks every
    file's own detached signature with gpgv (streamed while downloading).
    """
    b = resolved or resolve_build(store, site, host, target, build)
    signed = b.sums_signature is not None
    if not signed and not allow_unsigned:
        raise VerificationError(
            f"build {b.build_id} of {site}/{host}/{target} is not signed (no SHA256SUMS.sig)",
            hint="pass --allow-unsigned to accept it (only its SHA-256 from the index is checked then)",
        )
    if keyring is None and not allow_unsigned:
        raise VerificationError(
            "no trusted keyring to verify the download with",
            hint=f"pass --keyring with the site's public key (obtained out of band, e.g. {site}.asc from "
            "the publisher; never only the copy in the same store) or set publish.keyring in the site file",
        )
    if keyring is None:
        LOG.warning("no trusted keyring: NOT verifying signatures (--allow-unsigned)")
    wanted = list(b.files) if names is None else [f for f in b.files if f.name in names]
    if names is not None and len(wanted) != len(set(names)):
        missing = sorted(set(names) - {f.name for f in b.files})
        raise DownloadError(f"build {b.build_id} has no file(s) {', '.join(missing)}")
    dest = Path(dest)
    if per_build_dir:
        dest = dest / b.site / b.host / b.target / b.build_id
    dest.mkdir(parents=True, exist_ok=True)
    mode = 0o600 if b.contains_secrets else 0o644
    result = Downloaded(b, dest, signed=signed and keyring is not None)
    sums_data = _small(store, b.sums) if b.sums else None
    sums_sig = _small(store, b.sums_signature) if b.sums_signature else None
    checked = parse_sums(sums_data, f"{store.url}/{b.sums}") if sums_data is not None else {}
    for f in wanted:
        if (result.signed or sums_data is not None) and checked.get(f.name) != f.sha256:
            raise VerificationError(
                f"{f.key}: the index says SHA-256 {f.sha256}, "
                f"SHA256SUMS says {checked.get(f.name) or 'nothing'}"
            )

    def check_sums(trusted: gpg.Keyring | None) -> None:
        if sums_data is not None and sums_sig is not None and trusted is not None:
            with tempfile.TemporaryDirectory(prefix="coreos-infra-sums-") as tmp:
                p = Path(tmp) / "SHA256SUMS"
                p.write_bytes(sums_data)
                gpg.verify_detached(p, sums_sig, trusted, what=f"{b.sums}")

    with contextlib.ExitStack() as stack:
        if verify_each:  # the keyring is needed while downloading: build it and check SHA256SUMS first
            trusted = stack.enter_context(trusted_keyring(keyring))
            check_sums(trusted)
            gate = _Gate(None)
        else:  # the keyring and the SHA256SUMS signature are checked while the files download
            trusted = None
            gate = _Gate(lambda: _with_keyring(keyring, check_sums))
        signatures: dict[str, bytes | None] = {}
        for f in wanted:
            if f.signature is None:
                if result.signed:
                    raise VerificationError(f"{f.key}: the build is signed but this file has no signature")
                signatures[f.name] = None
            else:
                signatures[f.name] = _small(store, f.signature) if trusted is not None else None

        def fetch(f: FileEntry, sig: bytes | None) -> Path:
            return _fetch_file(store, f, dest, signature=sig, keyring=trusted, mode=mode, result=result,
                               show_progress=show_progress, before_rename=gate.wait)  # fmt: skip

        try:
            for f in wanted:
                sig = signatures[f.name]
                final = dest / f.name
                if _reuse(final, f, sig, trusted):
                    gate.wait()
                    os.chmod(final, mode)
                    result.reused.append(f.name)
                    result.files[f.name] = final
                else:
                    try:
                        result.files[f.name] = fetch(f, sig)
                    except VerificationError as e:
                        if f.name not in result.resumed:
                            raise
                        gate.wait()  # a SHA256SUMS that does not verify is the error to report
                        # The part kept from an earlier run may be what was wrong: once more from byte 0.
                        LOG.warning("%s: %s; downloading it again from the start", f.name, e.message)
                        del result.resumed[f.name]
                        result.files[f.name] = fetch(f, sig)
                if sig is not None:
                    write_atomic(dest / layout.signature(f.name), sig)
        finally:
            gate.join()
        gate.wait()
        # meta.json is covered by the signed SHA256SUMS (it has the uncompressed SHA-256 of images).
        if b.meta and sums_data is not None:
            meta = _small(store, b.meta)
            if hashlib.sha256(meta).hexdigest() != checked.get("meta.json"):
                raise VerificationError(f"{b.meta}: does not match SHA256SUMS")
            write_atomic(dest / "meta.json", meta, mode=mode)
        if sums_data is not None:
            write_atomic(dest / "SHA256SUMS", sums_data)
            if sums_sig is not None:
                write_atomic(dest / "SHA256SUMS.sig", sums_sig)
    return result


@contextlib.contextmanager
def keyring_for(root: Path, site: str, keyring: Path | None) -> Iterator[Path | None]:
    """The trusted keys for downloads of ``site``: ``keyring``, else ``publish.keyring`` of the site file,
    else, on the machine that published with the demo's throwaway key, that local key (with a warning).

    Never the key in the store: a store that can replace images can replace its key too.
    """
    if keyring is not None:
        yield Path(keyring)
        return
    from coreos_infra.publish.settings import SigningSettings, demo_key_dir, site_settings

    configured = site_settings(root, site).keyring
    if configured is not None:
        yield configured
        return
    home = demo_key_dir(root, site) / "gnupg"
    if not home.is_dir():
        yield None
        return
    from coreos_infra.publish.sign import site_signer

    signer = site_signer(root, site, SigningSettings())
    try:
        with tempfile.TemporaryDirectory(prefix="coreos-infra-demo-key-") as tmp:
            path = Path(tmp) / f"{site}.asc"
            path.write_bytes(signer.public_key())
            LOG.warning(
                "trusting the demo's THROWAWAY signing key of site %s (%s, from %s): set publish.keyring "
                "in the site file or pass --keyring for real sites",
                site,
                signer.fingerprint,
                home,
            )
            yield path
    finally:
        signer.close()
