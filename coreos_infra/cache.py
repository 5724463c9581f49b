"""The content-addressed cache of verified artifacts, shared by every build.

Layout: ``<cache>/sha256/<hex>`` (the file, read-only), ``<hex>.sig`` (the detached signature that
verified it) and ``<hex>.json`` (a record written last: size, name, source, signer, and the file's
``stat`` stamp at insertion). Only files that passed every check are ever renamed into ``sha256/``;
downloads happen in ``<cache>/tmp/`` and are deleted on any failure. A per-file ``fcntl`` lock
(``<cache>/locks/<hex>.lock``) lets several builds share one cache: the second waits and then finds a
cache hit, which makes no network request.

Verification before insertion (:func:`ensure_artifact`), while the bytes stream (one pass): size and
SHA-256 from the metadata; the detached OpenPGP signature with ``gpgv`` reading the same bytes from a
pipe (a missing signature is an error unless ``insecure``, a bad one always is); then, on signed data
only, the compressed-stream checks of :mod:`coreos_infra.compressed`.

Re-check on use: a cache hit compares the file's size, inode, mtime, ctime and the boot ID with the stamp
recorded at insertion (cheap, independent of the size); on any difference the file is hashed again, and a
file that no longer matches its name is dropped with a warning and downloaded again. Because a new boot
re-hashes, nothing in the cache is fsynced where the boot ID exists (Linux): what a crash may lose is
found by the first use after it (a lost record or signature means a new download), and a fetch costs no
forced disk writes.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from coreos_infra import gpg
from coreos_infra.compressed import check_compressed
from coreos_infra.errors import VerificationError
from coreos_infra.fsutil import boot_id, sha256_file, write_atomic
from coreos_infra.stream import ArtifactRef, StreamError
from coreos_infra.transport import FetchOptions, NotFound, download, read_url

LOG = logging.getLogger("coreos_infra.fetch")
MAX_SIGNATURE_BYTES = 1 << 20


def _stamp(st: os.stat_result) -> dict[str, int | str]:
    """What changes when a file's bytes may have changed (ctime cannot be set back by a user), and the
    boot: after a reboot (or a crash, which may lose unsynced data) every file is hashed again once."""
    return {"size": st.st_size, "dev": st.st_dev, "ino": st.st_ino, "mtime_ns": st.st_mtime_ns,
            "ctime_ns": st.st_ctime_ns, "boot": boot_id()}  # fmt: skip


class ArtifactCache:
    """The content-addressed cache directory (see the module docstring for its layout)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.durable = not boot_id()  # fsync only where a new boot cannot be told (see the module docs)

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
        """The record of ``sha256`` if the cache has it and its file still holds those bytes.

        The caller holds :meth:`lock`. A file whose stamp changed is hashed again; one that no longer
        hashes to its name is removed (with a warning) so that it is downloaded again.
        """
        blob = self.blob(sha256)
        try:
            st = blob.stat()
        except FileNotFoundError:
            return None
        try:
            record = json.loads(self.record(sha256).read_bytes())
        except (OSError, ValueError):
            return None
        if not isinstance(record, dict) or record.get("size") != st.st_size:
            return None
        if record.get("stamp") == _stamp(st):
            return record
        got = sha256_file(blob)
        if got != sha256:
            LOG.warning(
                "%s: the cached file %s is corrupt (it hashes to %s); removing it and fetching it again",
                record.get("name", sha256), blob, got,
            )  # fmt: skip
            self.drop(sha256)
            return None
        LOG.info("%s: cached file changed on disk but still matches its SHA-256", record.get("name", sha256))
        record["stamp"] = _stamp(blob.stat())
        write_atomic(self.record(sha256), _record_bytes(record), durable=self.durable)
        return record

    def drop(self, sha256: str) -> None:
        """Remove the file, signature and record of ``sha256`` (record first: it marks the file valid)."""
        for path in (self.record(sha256), self.blob(sha256), self.signature(sha256)):
            path.unlink(missing_ok=True)

    def cached(self, sha256: str) -> Path | None:
        """The verified file for ``sha256`` if the cache has it."""
        with self.lock(sha256):
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


class _VerifierOnResponse:
    """The signature check of a download, set up once the server has answered (``on_response`` of
    :func:`coreos_infra.transport.download`): the trusted keyring may still be being built meanwhile.
    Then the right verifier for it is chosen (:func:`coreos_infra.gpg.stream_verifier`), before any byte
    arrives, so nothing is read twice."""

    def __init__(self, signature: bytes, keyring: Callable[[], gpg.Keyring], *, what: str) -> None:
        self.signature, self.keyring, self.name = signature, keyring, what
        self.inner: gpg.Verifier | None = None

    def prepare(self) -> None:
        self.inner = gpg.stream_verifier(self.signature, self.keyring(), what=self.name)

    def _ready(self) -> gpg.Verifier:
        assert self.inner is not None, "prepare() runs before the first byte"
        return self.inner

    def shares_sha256(self) -> bool:
        return isinstance(self.inner, gpg.DigestStreamVerifier) and self.inner.shares_sha256()

    def adopt_sha256(self, hasher: Any) -> None:
        self._ready().adopt_sha256(hasher)  # type: ignore[union-attr]

    def update(self, data: bytes) -> None:
        self._ready().update(data)

    def restart(self) -> None:
        if self.inner is not None:
            self.inner.restart()

    def finish(self) -> gpg.SignatureCheck:
        return self._ready().finish()

    def close(self) -> None:
        if self.inner is not None:
            self.inner.close()


def _download_verified(
    ref: ArtifactRef,
    digest: str,
    tmp: Path,
    signature: bytes | None,
    keyring: Callable[[], gpg.Keyring],
    options: FetchOptions,
    durable: bool,
) -> gpg.SignatureCheck | None:
    """Download ``ref`` to ``tmp``, checking its SHA-256 and signature as the bytes stream."""
    with contextlib.ExitStack() as stack:
        verifier = None if signature is None else _VerifierOnResponse(signature, keyring, what=ref.name)
        if verifier is not None:
            stack.callback(verifier.close)
        LOG.info("downloading %s", ref.location)
        got = download(ref.location, tmp, expected_size=ref.size, options=options, description=ref.name,
                       observers=[verifier] if verifier else [], durable=durable,
                       on_response=verifier.prepare if verifier else None)  # fmt: skip
        if got != digest:
            raise VerificationError(
                f"{ref.name}: SHA-256 mismatch: downloaded {tmp.stat().st_size} bytes hashing to {got}, "
                f"the metadata says {digest}"
            )
        if verifier is None:
            LOG.warning("%s: no signature, accepted because insecure mode is on", ref.name)
            return None
        return verifier.finish()


def ensure_artifact(ref: ArtifactRef, *, cache: ArtifactCache,
                    keyring: gpg.Keyring | Callable[[], gpg.Keyring], insecure: bool = False,
                    options: FetchOptions | None = None) -> Path:  # fmt: skip
    """Return the verified cached file for ``ref``, downloading and verifying it first if needed.

    ``keyring`` may be a function that gives it (one being built in a thread): it is asked for only
    when needed, for a download once the server has answered.
    """
    options = options or FetchOptions()
    trusted = keyring if callable(keyring) else lambda: keyring
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
            signed_by = record.get("signed_by")
            if signed_by and sig_path.exists() and signed_by in trusted().fingerprints:
                LOG.debug("cache hit: %s", ref.name)
                return blob
            # Cached unsigned, or signed by a key this keyring does not trust (a mirror that re-signed
            # the same bytes): the source's signature of today decides, never the cached one alone.
            if insecure and not signed_by:
                LOG.debug("cache hit (unsigned, insecure): %s", ref.name)
                return blob
            signature = _fetch_signature(ref, options)
            if signature is None:
                raise _missing_signature(ref)
            check = gpg.verify_detached(blob, signature, trusted(), what=ref.name)
            write_atomic(sig_path, signature, durable=cache.durable)
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
            verified = _download_verified(ref, digest, tmp, signature, trusted, options, cache.durable)
            # The signature first: only data from a trusted signer is fed to a decompressor.
            check_compressed(tmp, name=ref.name, uncompressed_sha256=ref.uncompressed_sha256,
                             deep=options.check_uncompressed)  # fmt: skip
            if signature is not None:
                write_atomic(cache.signature(digest), signature, durable=cache.durable)
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
    st = cache.blob(digest).stat()
    record = {
        "sha256": digest,
        "size": st.st_size,
        "stamp": _stamp(st),
        "name": ref.name,
        "source": ref.location,
        "uncompressed-sha256": ref.uncompressed_sha256,
        "signed_by": check.primary_fingerprint if check else None,
        "verified_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_atomic(cache.record(digest), _record_bytes(record), durable=cache.durable)


def _record_bytes(record: dict[str, Any]) -> bytes:
    return (json.dumps(record, indent=2, sort_keys=True) + "\n").encode()
