"""Download official Fedora CoreOS artifacts into a verified, content-addressed cache.

``fetch_artifacts`` resolves (stream, arch, platform, format[, release]) through the stream metadata
or the release index (:mod:`coreos_infra.stream`), then makes sure each artifact is in the cache:

- cache layout: ``<cache>/sha256/<hex>`` (the file, read-only), ``<hex>.sig`` (the detached signature
  that verified it) and ``<hex>.json`` (a record written last: size, name, source, signer). Only files
  that passed every check are ever renamed into ``sha256/``; downloads happen in ``<cache>/tmp/`` and
  are deleted on any failure. A per-file ``fcntl`` lock (``<cache>/locks/<hex>.lock``) lets several
  builds share one cache: the second waits and then finds a cache hit, which makes no network request.
- download: http://, https:// or file:// URLs, socket timeouts, retries with exponential backoff,
  resume with an HTTP ``Range`` request (guarded by ``If-Range``) after a dropped connection, a progress
  bar, a clear message when the disk is full.
- verification before use: size and SHA-256 from the metadata over the bytes as served; the detached
  OpenPGP signature over the same bytes with ``gpgv`` against the trusted keyring (a missing signature
  is an error unless ``insecure``, a bad one always is); compressed files (``.xz``, ``.gz``, ``.zst``)
  must be complete streams with nothing after them, and decompress to ``uncompressed-sha256`` when the
  metadata gives it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import http.client
import json
import logging
import lzma
import os
import shutil
import socket
import ssl
import struct
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from coreos_infra import __version__, gpg
from coreos_infra import xz as xzformat
from coreos_infra.errors import CoreosInfraError, VerificationError
from coreos_infra.fsutil import CHUNK, write_atomic
from coreos_infra.log import progress
from coreos_infra.stream import (
    DEFAULT_BASE_URL,
    ArtifactFile,
    ArtifactRef,
    StreamError,
    load_stream,
    normalize_base_url,
    parse_release,
    parse_release_index,
    release_index_url,
    release_metadata_url,
    write_mirror,
)

LOG = logging.getLogger("coreos_infra.fetch")
USER_AGENT = f"coreos-infra/{__version__}"
MAX_SIGNATURE_BYTES = 1 << 20
DEEP_CHECK_LIMIT = 64 << 20  # compressed files up to this size are always fully decompressed


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


@dataclass(frozen=True)
class FetchedArtifacts:
    release: str
    files: dict[str, Path]  # verified files in the cache, by role ("disk", "kernel", ...)
    artifacts: dict[str, ArtifactRef] = field(default_factory=dict)  # what the metadata said, by role
    stream: str = ""
    arch: str = ""
    platform: str = ""
    fmt: str = ""


# --- transport -------------------------------------------------------------------------------------------


@dataclass
class _Response:
    body: IO[bytes]
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


def download(url: str, dest: Path, *, expected_size: int | None = None, options: FetchOptions | None = None,
             description: str | None = None) -> str:  # fmt: skip
    """Download ``url`` to ``dest`` (overwritten), resuming with Range after failures; return its SHA-256."""
    options = options or FetchOptions()
    hasher = hashlib.sha256()
    have = 0
    validator: str | None = None
    total = expected_size
    attempt = 0
    with open(dest, "wb") as out, progress(expected_size, description or Path(url).name) as bar:
        while True:
            resp: _Response | None = None
            try:
                resp = _open(url, offset=have, if_range=validator, timeout=options.timeout)
                if have and resp.status == 200:
                    LOG.warning("%s: server restarted the download from the beginning", url)
                    out.seek(0)
                    out.truncate()
                    hasher = hashlib.sha256()
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
                while chunk := resp.body.read(CHUNK):
                    try:
                        out.write(chunk)
                    except OSError as e:
                        if e.errno in (errno.ENOSPC, errno.EDQUOT):
                            raise _no_space(dest, None if total is None else total - have) from None
                        raise
                    hasher.update(chunk)
                    have += len(chunk)
                    bar.update(len(chunk))
                    if total is not None and have > total:
                        raise VerificationError(f"{url}: server sent more than the {total} bytes announced")
                if total is not None and have < total:
                    raise _Transient(f"connection closed after {have} of {total} bytes")
                try:
                    out.flush()
                    os.fsync(out.fileno())
                except OSError as e:
                    if e.errno in (errno.ENOSPC, errno.EDQUOT):
                        raise _no_space(dest, None) from None
                    raise
                return hasher.hexdigest()
            except _NETWORK_ERRORS as e:
                attempt += 1
                if attempt > options.retries:
                    raise FetchError(f"{url}: download failed after {attempt} attempts: {e}") from None
                if isinstance(e, _RangeRejected):
                    out.seek(0)
                    out.truncate()
                    hasher = hashlib.sha256()
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


# --- compressed-stream checks ----------------------------------------------------------------------------


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


# --- cache -----------------------------------------------------------------------------------------------


class ArtifactCache:
    """The content-addressed cache directory (see the module docstring for its layout)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def blob(self, sha256: str) -> Path:
        return self.root / "sha256" / sha256

    def signature(self, sha256: str) -> Path:
        return self.root / "sha256" / f"{sha256}.sig"

    def record(self, sha256: str) -> Path:
        return self.root / "sha256" / f"{sha256}.json"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    @contextlib.contextmanager
    def lock(self, sha256: str) -> Iterator[None]:
        path = self.root / "locks" / f"{sha256}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a+b") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    def read_record(self, sha256: str) -> dict[str, Any] | None:
        if not self.blob(sha256).exists():
            return None
        try:
            record = json.loads(self.record(sha256).read_bytes())
        except (OSError, ValueError):
            return None
        if not isinstance(record, dict) or record.get("size") != self.blob(sha256).stat().st_size:
            return None
        return record

    def cached(self, sha256: str) -> Path | None:
        """The verified file for ``sha256`` if the cache has it."""
        return self.blob(sha256) if self.read_record(sha256) is not None else None


def _fetch_signature(ref: ArtifactRef, options: FetchOptions) -> bytes | None:
    if not ref.signature:
        return None
    try:
        return read_url(ref.signature, limit=MAX_SIGNATURE_BYTES, options=options)
    except NotFound:
        return None


def _missing_signature(ref: ArtifactRef) -> VerificationError:
    where = ref.signature or "the metadata lists no signature"
    return VerificationError(
        f"{ref.name}: no detached signature ({where}); refusing to use an unsigned artifact",
        hint="pass --insecure (insecure=True) to accept artifacts without a signature; bad signatures "
        "are rejected either way",
    )


def ensure_artifact(ref: ArtifactRef, *, cache: ArtifactCache, keyring: gpg.Keyring, insecure: bool = False,
                    options: FetchOptions | None = None) -> Path:  # fmt: skip
    """Return the verified cached file for ``ref``, downloading and verifying it first if needed."""
    options = options or FetchOptions()
    if not ref.sha256:
        raise StreamError(f"{ref.name}: the metadata gives no sha256 for {ref.location}; cannot verify it")
    digest = ref.sha256.lower()
    if len(digest) != 64 or digest.strip("0123456789abcdef"):
        raise StreamError(f"{ref.name}: invalid sha256 {ref.sha256!r}")
    blob = cache.blob(digest)
    with cache.lock(digest):
        for stale in cache.tmp.glob(f"{digest}.*"):  # left by a killed process; we hold the lock
            stale.unlink(missing_ok=True)
        record = cache.read_record(digest)
        if record is not None:
            if ref.size is not None and record["size"] != ref.size:
                raise VerificationError(f"{ref.name}: metadata size {ref.size} != cached {record['size']}")
            sig_path = cache.signature(digest)
            if record.get("signed_by") and sig_path.exists():
                if record["signed_by"] in keyring.fingerprints:
                    LOG.debug("cache hit: %s", ref.name)
                    return blob
                check = gpg.verify_detached(blob, sig_path.read_bytes(), keyring, what=ref.name)
                _write_record(cache, digest, ref, check)
                return blob
            if insecure:
                LOG.debug("cache hit (unsigned, insecure): %s", ref.name)
                return blob
            signature = _fetch_signature(ref, options)
            if signature is None:
                raise _missing_signature(ref)
            check = gpg.verify_detached(blob, signature, keyring, what=ref.name)
            write_atomic(sig_path, signature)
            _write_record(cache, digest, ref, check)
            return blob

        signature = _fetch_signature(ref, options)
        if signature is None and not insecure:
            raise _missing_signature(ref)
        cache.tmp.mkdir(parents=True, exist_ok=True)
        blob.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f"{digest}.", suffix=".part", dir=cache.tmp)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            LOG.info("downloading %s", ref.location)
            got = download(ref.location, tmp, expected_size=ref.size, options=options, description=ref.name)
            size = tmp.stat().st_size
            if got != digest:
                raise VerificationError(
                    f"{ref.name}: SHA-256 mismatch: downloaded {size} bytes hashing to {got}, "
                    f"the metadata says {digest}"
                )
            # The signature first: only data from a trusted signer is fed to a decompressor.
            verified: gpg.SignatureCheck | None = None
            if signature is not None:
                verified = gpg.verify_detached(tmp, signature, keyring, what=ref.name)
            else:
                LOG.warning("%s: no signature, accepted because insecure mode is on", ref.name)
            check_compressed(tmp, name=ref.name, uncompressed_sha256=ref.uncompressed_sha256,
                             deep=options.check_uncompressed)  # fmt: skip
            if signature is not None:
                write_atomic(cache.signature(digest), signature)
            else:
                cache.signature(digest).unlink(missing_ok=True)
            os.chmod(tmp, 0o444)
            os.replace(tmp, blob)
            _write_record(cache, digest, ref, verified)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    return blob


def _write_record(
    cache: ArtifactCache, digest: str, ref: ArtifactRef, check: gpg.SignatureCheck | None
) -> None:
    record = {
        "sha256": digest,
        "size": cache.blob(digest).stat().st_size,
        "name": ref.name,
        "source": ref.location,
        "uncompressed-sha256": ref.uncompressed_sha256,
        "signed_by": check.primary_fingerprint if check else None,
        "verified_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_atomic(cache.record(digest), (json.dumps(record, indent=2, sort_keys=True) + "\n").encode())


# --- resolution and the public entry points --------------------------------------------------------------


def _resolve(base: str, stream: str, arch: str, platform: str, fmt: str, release: str | None,
             cache: ArtifactCache, options: FetchOptions) -> tuple[str, dict[str, ArtifactRef]]:  # fmt: skip
    if release is None:
        s = load_stream(base, stream, options=options)
        return s.release(arch, platform), s.artifact(arch, platform, fmt)
    # A release never changes: its metadata is cached so a rebuild needs no network at all.
    saved = cache.root / "metadata" / stream / f"{release}.json"
    canonical = release_metadata_url(base, stream, release)
    if saved.exists():
        with contextlib.suppress(StreamError):
            return release, parse_release(saved.read_bytes(), canonical, base_url=base).artifact(
                arch, platform, fmt
            )
    try:
        index_url = release_index_url(base, stream)
        index = parse_release_index(
            read_url(index_url, limit=64 << 20, options=options), index_url, base_url=base
        )
    except NotFound:
        s = load_stream(base, stream, options=options)
        current = s.release(arch, platform)
        if current != release:
            raise StreamError(
                f"the mirror has no release index and its {stream} stream is at {current}, not {release}",
                hint=f"use release {current}, or a mirror with prod/streams/{stream}/releases.json",
            ) from None
        return release, s.artifact(arch, platform, fmt)
    entry = index.find(release)
    data = read_url(entry.metadata, limit=64 << 20, options=options)
    parsed = parse_release(data, entry.metadata, base_url=base)
    if parsed.version != release:
        raise StreamError(f"{entry.metadata}: describes release {parsed.version!r}, expected {release!r}")
    refs = parsed.artifact(arch, platform, fmt)
    write_atomic(saved, data)
    return release, refs


def trusted_keyring(dest: Path, keyring: Path | None = None, *, bundled_keys: bool = True) -> gpg.Keyring:
    """The keyring used to verify artifacts: the pinned Fedora keys plus the user's ``keyring`` keys."""
    return gpg.build_keyring(dest, pinned=None if bundled_keys else [], extra=[keyring] if keyring else [])


def fetch_artifacts(*, base_url: str = DEFAULT_BASE_URL, stream: str, arch: str, platform: str, fmt: str,
                    release: str | None = None, cache_dir: Path, keyring: Path | None = None,
                    insecure: bool = False, bundled_keys: bool = True,
                    options: FetchOptions | None = None) -> FetchedArtifacts:  # fmt: skip
    """Make sure the artifacts of (stream, arch, platform, fmt[, release]) are verified in the cache.

    ``keyring`` is a key file or a directory of key files trusted in addition to the shipped Fedora keys
    (``bundled_keys=False`` trusts only those). Returns the verified paths by role.
    """
    options = options or FetchOptions()
    base = normalize_base_url(base_url)
    cache = ArtifactCache(Path(cache_dir))
    cache.root.mkdir(parents=True, exist_ok=True)
    resolved, refs = _resolve(base, stream, arch, platform, fmt, release, cache, options)
    with tempfile.TemporaryDirectory(prefix="coreos-infra-keys-") as tmp:
        trusted = trusted_keyring(Path(tmp) / "trusted.gpg", keyring, bundled_keys=bundled_keys)
        files = {
            role: ensure_artifact(ref, cache=cache, keyring=trusted, insecure=insecure, options=options)
            for role, ref in refs.items()
        }
    return FetchedArtifacts(resolved, files, refs, stream, arch, platform, fmt)


@dataclass(frozen=True)
class Selection:
    """One (arch, platform, format) to fetch or mirror."""

    arch: str
    platform: str
    fmt: str


def mirror_artifacts(dest: Path, selections: Sequence[Selection], *, base_url: str = DEFAULT_BASE_URL,
                     stream: str, release: str | None = None, cache_dir: Path, keyring: Path | None = None,
                     insecure: bool = False, mirror_url: str = DEFAULT_BASE_URL,
                     options: FetchOptions | None = None) -> Path:  # fmt: skip
    """Fetch (verified) and copy ``selections`` into a mirror at ``dest`` laid out like the official one.

    The mirror gets the files, their ``.sig``, ``release.json``, ``releases.json`` and the stream JSON.
    Locations in its metadata are written under ``mirror_url`` (default: the official URL, which
    coreos-infra rewrites to wherever the mirror is read from). Returns the stream JSON path.
    """
    cache = ArtifactCache(Path(cache_dir))
    by_release: dict[str, list[ArtifactFile]] = {}
    for sel in selections:
        fetched = fetch_artifacts(
            base_url=base_url, stream=stream, arch=sel.arch, platform=sel.platform, fmt=sel.fmt,
            release=release, cache_dir=cache_dir, keyring=keyring, insecure=insecure, options=options,
        )  # fmt: skip
        for role, path in fetched.files.items():
            ref = fetched.artifacts[role]
            assert ref.sha256 is not None
            sig = cache.signature(ref.sha256)
            by_release.setdefault(fetched.release, []).append(
                ArtifactFile(
                    sel.arch,
                    sel.platform,
                    sel.fmt,
                    role,
                    path,
                    name=ref.name,
                    uncompressed_sha256=ref.uncompressed_sha256,
                    signature_file=sig if sig.exists() else None,
                )  # fmt: skip
            )
    if not by_release:
        raise StreamError("nothing to mirror: no (arch, platform, format) selected")
    stream_json = Path(dest) / "streams" / f"{stream}.json"
    for rel, files in by_release.items():
        promote = release is None  # mirroring a pinned old release does not move the stream back
        stream_json = write_mirror(Path(dest), stream, rel, files, base_url=mirror_url, promote=promote)
    return stream_json


def stream_base_url_default() -> str:
    """``$COREOS_INFRA_STREAM_BASE_URL`` (a mirror for air-gapped sites) or the official URL."""
    return os.environ.get("COREOS_INFRA_STREAM_BASE_URL") or DEFAULT_BASE_URL


@dataclass(frozen=True)
class Want:
    """What one recipe needs from the stream: (stream, release or None) and a selection."""

    stream: str
    release: str | None
    selection: Selection


def wants_of_recipe(recipe: Any) -> Want:
    """The base artifact a target recipe (``coreos_infra.recipes`` TargetRecipe) builds from."""
    selection = Selection(recipe.arch, recipe.base.platform, recipe.base.format)
    return Want(recipe.stream, recipe.release or None, selection)
