"""Download official Fedora CoreOS artifacts into the verified, content-addressed cache.

``fetch_artifacts`` resolves (stream, arch, platform, format[, release]) through the stream metadata
or the release index (:mod:`coreos_infra.stream`), then makes sure each artifact is in the cache
(:mod:`coreos_infra.cache`: layout, locking, verification while the bytes stream, re-check on use).
The bytes themselves come through :mod:`coreos_infra.transport` (http://, https:// or file://, retries,
resume). ``mirror_artifacts`` copies verified artifacts into a mirror laid out like the official one.

The names other modules used to import from here (``FetchOptions``, ``FetchError``, ``read_url``,
``check_compressed`` ...) are re-exported.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coreos_infra import gpg
from coreos_infra.background import Background
from coreos_infra.cache import MAX_SIGNATURE_BYTES, ArtifactCache, ensure_artifact
from coreos_infra.compressed import DEEP_CHECK_LIMIT, check_compressed, check_xz_framing, compression_of
from coreos_infra.fsutil import write_atomic
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
from coreos_infra.transport import FetchError, FetchOptions, NotFound, download, read_url

__all__ = [
    "DEEP_CHECK_LIMIT",
    "MAX_SIGNATURE_BYTES",
    "ArtifactCache",
    "FetchError",
    "FetchOptions",
    "FetchedArtifacts",
    "NotFound",
    "Selection",
    "Want",
    "check_compressed",
    "check_xz_framing",
    "compression_of",
    "download",
    "ensure_artifact",
    "fetch_artifacts",
    "mirror_artifacts",
    "read_url",
    "stream_base_url_default",
    "trusted_keyring",
    "wants_of_recipe",
]


@dataclass(frozen=True)
class FetchedArtifacts:
    release: str
    files: dict[str, Path]  # verified files in the cache, by role ("disk", "kernel", ...)
    artifacts: dict[str, ArtifactRef] = field(default_factory=dict)  # what the metadata said, by role
    stream: str = ""
    arch: str = ""
    platform: str = ""
    fmt: str = ""


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


def trusted_keyring(keyring: Path | None = None, *, bundled_keys: bool = True) -> gpg.Keyring:
    """The keyring used to verify artifacts: the pinned Fedora keys plus the user's ``keyring`` keys."""
    return gpg.build_keyring(pinned=None if bundled_keys else [], extra=[keyring] if keyring else [])


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
    # The keyring (three GnuPG calls) is built while the metadata is read and the download's server
    # answers; it is first needed for a cache hit's signer, or just before a download's first byte.
    with Background(lambda: trusted_keyring(keyring, bundled_keys=bundled_keys)) as trusted:
        resolved, refs = _resolve(base, stream, arch, platform, fmt, release, cache, options)
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
