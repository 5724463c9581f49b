"""The one interface every store implements, and :func:`open_store` that picks one from a URL.

A store holds objects under keys relative to its root (``sites/lab/index.json``); the layout is in
:mod:`coreos_infra.publish.layout`. Two implementations: a local directory (the default,
``artifacts/store/``, servable as-is by any static web server) and S3 through boto3.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Protocol
from urllib.parse import unquote, urlsplit

from coreos_infra.errors import CoreosInfraError


@dataclass(frozen=True)
class ObjectInfo:
    """What a store knows about one object without reading it."""

    key: str
    size: int
    sha256: str | None  # from the object's metadata; None when it was stored without one
    last_modified: datetime


class Store(Protocol):
    url: str  # canonical: "s3://bucket/prefix" or "file:///abs/dir"

    def head(self, key: str) -> ObjectInfo | None: ...

    def put_file(
        self,
        key: str,
        path: Path,
        *,
        sha256: str,
        content_type: str,
        cache_control: str,
        progress: Callable[[int], None] | None = None,
    ) -> None: ...  # atomic; sha256 in metadata

    def put_bytes(self, key: str, data: bytes, *, content_type: str, cache_control: str) -> None: ...

    def get_bytes(self, key: str) -> bytes: ...  # missing -> CoreosInfraError naming the key

    # streams bytes [offset, end) (to the end of the object without one) to ``out.write``, which may get a
    # view of a buffer that is reused: valid only during that call (write or copy it, do not keep it)
    def read_to(
        self,
        key: str,
        out: BinaryIO,
        *,
        offset: int = 0,
        end: int | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> None: ...

    def list(self, prefix: str) -> Iterator[ObjectInfo]: ...

    def delete(self, keys: Sequence[str]) -> None: ...

    def public_url(self, key: str) -> str: ...  # what a reader fetches (http(s) or file://)

    def presign(self, key: str, expires_s: int) -> str: ...


def check_key(key: str) -> str:
    """Return ``key`` if it is a safe relative key (no empty, ``.``, ``..`` or dot-prefixed parts)."""
    if not key or key.startswith("/") or "\\" in key:
        raise CoreosInfraError(f"invalid store key {key!r}")
    for part in key.split("/"):
        if not part or part in (".", "..") or part.startswith("."):
            raise CoreosInfraError(f"invalid store key {key!r}: bad component {part!r}")
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in part):
            raise CoreosInfraError(f"invalid store key {key!r}: control character")
    return key


def open_store(
    url_or_path: str,
    *,
    endpoint_url: str | None = None,
    public_base_url: str | None = None,
) -> Store:
    """Open ``s3://BUCKET[/PREFIX]``, ``file:///DIR`` or a directory path.

    ``endpoint_url`` (S3 only; else boto3's ``AWS_ENDPOINT_URL``) points at a non-AWS server.
    ``public_base_url`` is the URL readers use for the store's root (default: the S3 endpoint's
    path-style URL or the ``file://`` URL of the directory).
    """
    if url_or_path.startswith("s3://"):
        from coreos_infra.publish.s3store import S3Store

        parts = urlsplit(url_or_path)
        if not parts.netloc:
            raise CoreosInfraError(
                f"store URL {url_or_path!r} has no bucket (expected s3://BUCKET[/PREFIX])"
            )
        return S3Store(
            parts.netloc,
            parts.path.strip("/"),
            endpoint_url=endpoint_url,
            public_base_url=public_base_url,
        )
    if "://" in url_or_path and not url_or_path.startswith("file://"):
        raise CoreosInfraError(
            f"unsupported store URL {url_or_path!r}: use s3://BUCKET[/PREFIX], file:///DIR or a directory"
        )
    from coreos_infra.publish.localstore import LocalStore

    if url_or_path.startswith("file://"):
        parts = urlsplit(url_or_path)
        if parts.netloc not in ("", "localhost"):
            raise CoreosInfraError(f"store URL {url_or_path!r}: file:// URLs must name a local path")
        path = Path(unquote(parts.path))
    else:
        path = Path(url_or_path)
    return LocalStore(path.absolute(), public_base_url=public_base_url)
