"""Getting bytes from a URL: http://, https:// or file://, with timeouts, retries and resume.

- :func:`read_url`: a whole small document (stream metadata, a signature), at most ``limit`` bytes.
- :func:`download`: a big file to disk, with socket timeouts, retries with exponential backoff, resume
  with an HTTP ``Range`` request (guarded by ``If-Range``) after a dropped connection, a progress bar and
  a clear message when the disk is full. It hashes the bytes as they stream (SHA-256) and hands every
  byte to any ``observers`` (e.g. a signature check), in a thread beside the receiving one, and starts
  the file's writeback early, so nothing reads the file a second time and the final fsync is short.

Nothing here knows about streams, releases or the cache (:mod:`coreos_infra.stream`,
:mod:`coreos_infra.cache` build on it).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import http.client
import io
import logging
import os
import queue
import shutil
import socket
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from coreos_infra import __version__
from coreos_infra.errors import CoreosInfraError, VerificationError
from coreos_infra.fsutil import CHUNK, EarlyWriteback
from coreos_infra.log import progress

LOG = logging.getLogger("coreos_infra.fetch")
USER_AGENT = f"coreos-infra/{__version__}"


class FetchError(CoreosInfraError):
    """A download failed (after retries), or the disk is full."""


class NotFound(FetchError):
    """The server answered 404/410 (or the file:// path does not exist)."""


class _Transient(Exception):
    """A failure worth retrying (dropped connection, timeout, 5xx)."""


class _RangeRejected(_Transient):
    """The server refused to resume (416): start again from the beginning."""


@dataclass(frozen=True)
class FetchOptions:
    timeout: float = 30.0  # seconds without progress on a socket before giving up on that attempt
    retries: int = 5  # extra attempts after the first, for transient failures
    backoff: float = 1.0  # first wait between attempts; doubles each time
    max_backoff: float = 30.0
    check_uncompressed: bool = True  # decompress to check uncompressed-sha256 when the metadata has it


class Observer(Protocol):
    """Sees every byte :func:`download` writes, in order; ``restart`` when the file starts over."""

    def update(self, data: bytes) -> None: ...

    def restart(self) -> None: ...


@dataclass
class _Response:
    body: io.BufferedIOBase  # http.client.HTTPResponse or an open file
    status: int  # 200 (whole file) or 206 (from the requested offset)
    total: int | None  # size of the whole file, when known
    validator: str | None  # ETag or Last-Modified, for If-Range

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.body.close()


def _is_loopback(host: str | None) -> bool:
    return host in ("127.0.0.1", "localhost", "::1")


def _open(url: str, *, offset: int = 0, if_range: str | None = None, timeout: float) -> _Response:
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "file":
        path = Path(urllib.request.url2pathname(parsed.path))
        try:
            f = open(path, "rb")  # noqa: SIM115 - closed by the caller through _Response.close
        except FileNotFoundError:
            raise NotFound(f"not found: {url}") from None
        except IsADirectoryError:
            raise NotFound(f"not a file: {url}") from None
        except OSError as e:
            raise FetchError(f"cannot read {url}: {e.strerror}") from None
        size = os.fstat(f.fileno()).st_size
        if offset:
            f.seek(offset)
        return _Response(f, 206 if offset else 200, size, None)
    if parsed.scheme not in ("http", "https"):
        raise FetchError(f"unsupported URL scheme (use http://, https:// or file://): {url}")
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
        if if_range:
            headers["If-Range"] = if_range
    request = urllib.request.Request(url, headers=headers)
    handlers: list[urllib.request.BaseHandler] = []
    if _is_loopback(parsed.hostname):
        handlers.append(urllib.request.ProxyHandler({}))
    opener = urllib.request.build_opener(*handlers)
    try:
        resp = opener.open(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        e.close()
        if e.code in (404, 410):
            raise NotFound(f"{e.code} {e.reason}: {url}") from None
        if e.code == 416:
            raise _RangeRejected("416 Range Not Satisfiable") from None
        if e.code in (408, 425, 429) or e.code >= 500:
            raise _Transient(f"{e.code} {e.reason}") from None
        raise FetchError(f"{e.code} {e.reason}: {url}") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException, OSError) as e:
        reason = getattr(e, "reason", e)
        if isinstance(reason, socket.gaierror) and reason.errno in (socket.EAI_NONAME, socket.EAI_FAIL):
            raise FetchError(
                f"cannot resolve {parsed.hostname} ({reason.strerror}): {url}",
                hint="without network access, use a local mirror: --stream-base-url DIR (see invoke mirror)",
            ) from None
        raise _Transient(str(reason)) from None
    status = resp.status
    length = resp.headers.get("Content-Length")
    total: int | None = int(length) if length and length.isdigit() else None
    if status == 206:
        content_range = resp.headers.get("Content-Range", "")
        try:
            unit, _, rest = content_range.partition(" ")
            span, _, size = rest.partition("/")
            start = int(span.split("-")[0])
            if unit != "bytes" or start != offset:
                raise ValueError
            total = int(size) if size.isdigit() else None
        except ValueError:
            resp.close()
            raise _Transient(
                f"server answered a Range request with Content-Range {content_range!r}"
            ) from None
    elif status != 200:
        resp.close()
        raise FetchError(f"unexpected HTTP status {status}: {url}")
    validator = resp.headers.get("ETag") or resp.headers.get("Last-Modified")
    return _Response(resp, status, total, validator)


def _sleep_before_retry(attempt: int, options: FetchOptions) -> None:
    time.sleep(min(options.backoff * (2 ** (attempt - 1)), options.max_backoff))


_NETWORK_ERRORS = (
    _Transient,
    TimeoutError,
    socket.timeout,
    ConnectionError,
    http.client.HTTPException,
    ssl.SSLError,
)


def read_url(url: str, *, limit: int, options: FetchOptions | None = None) -> bytes:
    """The whole (small) document at ``url``, with retries; at most ``limit`` bytes."""
    options = options or FetchOptions()
    attempt = 0
    while True:
        try:
            resp = _open(url, timeout=options.timeout)
            try:
                data = resp.body.read(limit + 1)
            finally:
                resp.close()
            if len(data) > limit:
                raise FetchError(f"{url}: larger than the {limit} bytes allowed")
            if resp.total is not None and len(data) != resp.total:
                raise _Transient(f"connection closed after {len(data)} of {resp.total} bytes")
            return data
        except _NETWORK_ERRORS as e:
            attempt += 1
            if attempt > options.retries:
                raise FetchError(f"{url}: download failed after {attempt} attempts: {e}") from None
            LOG.warning("%s: %s; retrying (%d/%d)", url, e, attempt, options.retries)
            _sleep_before_retry(attempt, options)


def _no_space(path: Path, needed: int | None) -> FetchError:
    free = shutil.disk_usage(path.parent).free
    need = f"{needed} bytes needed, " if needed is not None else ""
    return FetchError(
        f"no space left on the device holding {path.parent} ({need}{free} bytes free)",
        hint="free some space or point --cache-dir at a larger filesystem",
    )


@contextlib.contextmanager
def _naming_no_space(dest: Path, needed: int | None) -> Iterator[None]:
    """A full disk (or quota) while writing ``dest`` becomes a FetchError that says how much was needed."""
    try:
        yield
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise _no_space(dest, needed) from None
        raise


class _Digests:
    """SHA-256 and the observers over the downloaded bytes, in a thread beside the one that receives them.

    The receiving thread reads into one of two buffers (:meth:`buffer`) while the hashing thread works on
    the other: hashing overlaps the network, and no chunk needs fresh memory (which costs a fault per page
    on a VM whose balloon reports free pages to the host).
    """

    def __init__(self, observers: Sequence[Observer]) -> None:
        self.given = list(observers)
        self.sharing: list[Observer] = []
        self.observers: list[Observer] | None = None  # decided at the first byte (see _split)
        self.hasher = hashlib.sha256()
        self.error: BaseException | None = None
        self._bufs = [memoryview(bytearray(CHUNK)) for _ in range(2)]
        self._free = [threading.Event(), threading.Event()]
        for e in self._free:
            e.set()
        self._turn = 0
        self._queue: queue.SimpleQueue[tuple[int, int] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="download-digests", daemon=True)
        self._thread.start()

    def _split(self) -> list[Observer]:
        """Which observers get every chunk. One that hashes with SHA-256 only (a SHA-256 signature) gets a
        copy of our state at the end instead: one hashing pass for the file's digest and its signature.
        Asked at the first byte, not before: an observer may only know once the response has arrived
        (see ``on_response`` of :func:`download`)."""
        if self.observers is None:
            self.sharing = [o for o in self.given if getattr(o, "shares_sha256", lambda: False)()]
            self.observers = [o for o in self.given if o not in self.sharing]
        return self.observers

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            i, n = item
            try:
                if self.error is None:
                    chunk = self._bufs[i][:n]
                    self.hasher.update(chunk)
                    for observer in self.observers or ():
                        observer.update(bytes(chunk))  # an observer may keep what it gets (gpgv's feeder)
            except BaseException as e:  # re-raised by the receiving thread
                self.error = e
            finally:
                self._free[i].set()

    def _check(self) -> None:
        if self.error is not None:
            raise self.error

    def buffer(self) -> memoryview:
        """The buffer to read the next chunk into, once the hash is done with it."""
        self._free[self._turn].wait()
        self._check()
        return self._bufs[self._turn]

    def feed(self, n: int) -> None:
        """Hash the first ``n`` bytes of the buffer :meth:`buffer` gave last."""
        self._split()
        self._free[self._turn].clear()
        self._queue.put((self._turn, n))
        self._turn ^= 1

    def _drain(self) -> None:
        for e in self._free:
            e.wait()
        self._check()

    def restart(self) -> None:
        """Forget every byte so far (the download starts over from its first byte)."""
        self._drain()
        self.hasher = hashlib.sha256()
        for observer in self.given:
            observer.restart()

    def hexdigest(self) -> str:
        self._drain()
        self._split()
        for observer in self.sharing:
            observer.adopt_sha256(self.hasher.copy())  # type: ignore[attr-defined]
        return self.hasher.hexdigest()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()


def download(url: str, dest: Path, *, expected_size: int | None = None, options: FetchOptions | None = None,
             description: str | None = None, observers: Sequence[Observer] = (),
             durable: bool = True, on_response: Callable[[], None] | None = None) -> str:  # fmt: skip
    """Download ``url`` to ``dest`` (overwritten), resuming with Range after failures; return its SHA-256.

    Every byte written to ``dest`` is also given to each of ``observers``, once, in file order.
    ``on_response`` runs once, when the first response has arrived and before its body is read: work
    that the body needs but not the request (a trusted keyring being built) can finish while the server
    answers, and its error still comes before any byte is downloaded.
    ``durable``: ``dest`` is on disk (fsync) before this returns; False leaves it to the page cache (the
    artifact cache re-hashes its files after a reboot instead).
    """
    options = options or FetchOptions()

    def start_over() -> None:
        out.seek(0)
        out.truncate()
        digests.restart()

    have = 0
    validator: str | None = None
    total = expected_size
    attempt = 0
    digests = _Digests(observers)
    with (
        contextlib.closing(digests),
        open(dest, "wb") as out,
        EarlyWriteback(out.fileno(), enabled=durable) as writeback,
        progress(expected_size, description or Path(url).name) as bar,
    ):
        while True:
            resp: _Response | None = None
            try:
                resp = _open(url, offset=have, if_range=validator, timeout=options.timeout)
                if on_response is not None:
                    on_response()
                    on_response = None
                if have and resp.status == 200:
                    LOG.warning("%s: server restarted the download from the beginning", url)
                    start_over()
                    bar.reset(total=total)
                    have = 0
                validator = validator or resp.validator
                if resp.total is not None:
                    if expected_size is not None and resp.total != expected_size:
                        raise VerificationError(
                            f"{url}: server announces {resp.total} bytes, the metadata says {expected_size}"
                        )
                    if total is None:
                        total = resp.total
                        bar.reset(total=total)
                        bar.update(have)
                    if shutil.disk_usage(dest.parent).free < total - have:
                        raise _no_space(dest, total - have)
                while n := resp.body.readinto(buf := digests.buffer()):
                    with _naming_no_space(dest, None if total is None else total - have):
                        out.write(buf[:n])
                    writeback.wrote(n)
                    digests.feed(n)
                    have += n
                    bar.update(n)
                    if total is not None and have > total:
                        raise VerificationError(f"{url}: server sent more than the {total} bytes announced")
                if total is not None and have < total:
                    raise _Transient(f"connection closed after {have} of {total} bytes")
                with _naming_no_space(dest, None):
                    out.flush()
                    if durable:
                        os.fsync(out.fileno())
                return digests.hexdigest()
            except _NETWORK_ERRORS as e:
                attempt += 1
                if attempt > options.retries:
                    raise FetchError(f"{url}: download failed after {attempt} attempts: {e}") from None
                if isinstance(e, _RangeRejected):
                    start_over()
                    have = 0
                    validator = None
                    bar.reset(total=total)
                LOG.warning(
                    "%s: %s; retrying (%d/%d)%s", url, e, attempt, options.retries,
                    f", resuming at byte {have}" if have else "",
                )  # fmt: skip
                _sleep_before_retry(attempt, options)
            finally:
                if resp is not None:
                    resp.close()
