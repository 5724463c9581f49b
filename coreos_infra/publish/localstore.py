"""A store in a local directory: the default (``artifacts/store/``), servable as-is by a static web server.

Objects are plain files at their keys. What a file system cannot hold (the SHA-256 given at upload,
Content-Type, Cache-Control) goes into a sidecar JSON under ``.store-meta/`` at the root; temporary files
live in ``.store-tmp/``. Both are dot-directories, so they stay out of the published tree's way (keys
never have dot-prefixed components). A sidecar counts only while the file's size and mtime match what it
recorded, so a file replaced behind the store's back has no known SHA-256 and is uploaded again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote

from coreos_infra.errors import CoreosInfraError
from coreos_infra.fsutil import CHUNK, copy_file_fast, write_atomic
from coreos_infra.publish.store import ObjectInfo, check_key

META_DIR = ".store-meta"
TMP_DIR = ".store-tmp"


class LocalStore:
    """A directory laid out exactly like the S3 store."""

    def __init__(self, root: Path, *, public_base_url: str | None = None) -> None:
        self.root = root
        self.url = root.as_uri()
        self.public_base_url = public_base_url.rstrip("/") if public_base_url else None

    def __repr__(self) -> str:
        return f"LocalStore({self.url})"

    # -- paths
    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def _meta_path(self, key: str) -> Path:
        return self.root / META_DIR / (check_key(key) + ".json")

    def _tmp_dir(self) -> Path:
        d = self.root / TMP_DIR
        d.mkdir(parents=True, exist_ok=True)
        return d

    def _read_meta(self, key: str, st: os.stat_result) -> dict[str, object]:
        try:
            meta = json.loads(self._meta_path(key).read_text())
        except (OSError, ValueError):
            return {}
        if (
            not isinstance(meta, dict)
            or meta.get("size") != st.st_size
            or meta.get("mtime_ns") != st.st_mtime_ns
        ):
            return {}
        return meta

    def _write_meta(self, key: str, *, sha256: str | None, content_type: str, cache_control: str) -> None:
        st = self._path(key).stat()
        meta = {
            "sha256": sha256,
            "content_type": content_type,
            "cache_control": cache_control,
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
        }
        write_atomic(self._meta_path(key), json.dumps(meta, sort_keys=True).encode())

    def _drop_meta(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._meta_path(key).unlink()

    def _check_root(self) -> None:
        if not self.root.is_dir():
            raise CoreosInfraError(f"store directory {self.root} does not exist")

    # -- Store
    def head(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        if not path.is_file():
            return None
        sha = self._read_meta(key, st).get("sha256")
        return ObjectInfo(
            key=key,
            size=st.st_size,
            sha256=sha if isinstance(sha, str) else None,
            last_modified=datetime.fromtimestamp(st.st_mtime, UTC),
        )

    def metadata(self, key: str) -> dict[str, object]:
        """The sidecar (Content-Type, Cache-Control, sha256) of ``key``, empty if unknown."""
        path = self._path(key)
        try:
            return self._read_meta(key, path.stat())
        except FileNotFoundError:
            return {}

    def _install(
        self, key: str, tmp: Path, *, sha256: str | None, content_type: str, cache_control: str
    ) -> None:
        dest = self._path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        # Sidecar away first: between the rename and the new sidecar the object has no known sha256.
        self._drop_meta(key)
        os.replace(tmp, dest)
        self._write_meta(key, sha256=sha256, content_type=content_type, cache_control=cache_control)

    def put_file(
        self,
        key: str,
        path: Path,
        *,
        sha256: str,
        content_type: str,
        cache_control: str,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        check_key(key)
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix="put-", dir=self._tmp_dir())
        try:
            with os.fdopen(fd, "w+b") as dst, open(path, "rb") as src:
                copy_file_fast(src, dst)
                dst.flush()
                os.fsync(dst.fileno())
            os.chmod(tmp, 0o644)
            self._install(
                key, Path(tmp), sha256=sha256, content_type=content_type, cache_control=cache_control
            )
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        if progress is not None:
            progress(path.stat().st_size)

    def put_bytes(self, key: str, data: bytes, *, content_type: str, cache_control: str) -> None:
        check_key(key)
        self.root.mkdir(parents=True, exist_ok=True)

        fd, tmp = tempfile.mkstemp(prefix="put-", dir=self._tmp_dir())
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o644)
            self._install(
                key,
                Path(tmp),
                sha256=hashlib.sha256(data).hexdigest(),
                content_type=content_type,
                cache_control=cache_control,
            )
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def get_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise CoreosInfraError(f"{self.url}: no object {key!r} in the store") from None

    def read_to(
        self,
        key: str,
        out: BinaryIO,
        *,
        offset: int = 0,
        end: int | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        try:
            f = open(self._path(key), "rb")  # noqa: SIM115 - closed below
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise CoreosInfraError(f"{self.url}: no object {key!r} in the store") from None
        with f:
            f.seek(offset)
            left = (os.fstat(f.fileno()).st_size if end is None else end) - offset
            buf = memoryview(bytearray(CHUNK))  # one buffer, reused (see Store.read_to)
            while left > 0 and (n := f.readinto(buf[: min(CHUNK, left)])):
                left -= n
                out.write(buf[:n])
                if progress is not None:
                    progress(n)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        if not self.root.is_dir():
            return
        start = self.root
        # Walk only below the deepest directory named by the prefix.
        head, _, _ = prefix.rpartition("/")
        if head:
            start = self.root / head
            if not start.is_dir():
                return
        keys = []
        for dirpath, dirnames, filenames in os.walk(start):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            rel_dir = os.path.relpath(dirpath, self.root)
            for name in filenames:
                if name.startswith("."):
                    continue
                key = name if rel_dir == "." else f"{rel_dir}/{name}"
                if key.startswith(prefix):
                    keys.append(key)
        for key in sorted(keys):  # the same order as an S3 listing
            info = self.head(key)
            if info is not None:
                yield info

    def delete(self, keys: Sequence[str]) -> None:
        for key in keys:
            path = self._path(key)
            self._drop_meta(key)
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            # Remove directories left empty, up to (not including) the root.
            for parent in (path.parent, self._meta_path(key).parent):
                while parent != self.root and parent.is_relative_to(self.root):
                    try:
                        parent.rmdir()
                    except OSError:
                        break
                    parent = parent.parent

    def public_url(self, key: str) -> str:
        check_key(key)
        base = self.public_base_url or self.url
        return f"{base}/{quote(key)}"

    def presign(self, key: str, expires_s: int) -> str:
        raise CoreosInfraError(
            f"{self.url} is a local directory store: it has no presigned URLs (share needs an s3:// store)"
        )

    # -- housekeeping (not part of the Store protocol)
    def abort_incomplete(self) -> int:
        """Remove temporary files that an interrupted upload left behind; return how many."""
        tmp = self.root / TMP_DIR
        count = 0
        if tmp.is_dir():
            for entry in tmp.iterdir():
                with contextlib.suppress(FileNotFoundError):
                    entry.unlink()
                    count += 1
        return count
