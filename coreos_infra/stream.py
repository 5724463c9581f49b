"""Fedora CoreOS stream metadata, release index and release metadata: read, choose an artifact, write.

Official layout (relative to a base URL, default ``https://builds.coreos.fedoraproject.org``)::

    streams/<stream>.json                                   stream metadata (current release per platform)
    prod/streams/<stream>/releases.json                     release index (every release of the stream)
    prod/streams/<stream>/builds/<release>/release.json     one release's metadata
    prod/streams/<stream>/builds/<release>/<arch>/<file>    artifacts, each with <file>.sig

A document's artifact ``location`` is an absolute URL (or, in mirrors we write, may be relative to the
document). When metadata is read from a base URL other than the official one, locations under the
official URL are rewritten to the same path under that base, so a mirror copied verbatim from the
official server works wherever it is served (http://, https:// or file://).

The writer half (:func:`stream_document`, :func:`release_document`, :func:`write_mirror`) builds the
same documents from artifact files; the fixture mirror and ``invoke mirror`` use it.
"""

from __future__ import annotations

import datetime
import json
import os
import posixpath
import shutil
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coreos_infra.errors import CoreosInfraError, InputError, Location
from coreos_infra.fsutil import sha256_file, write_atomic
from coreos_infra.safenames import safe_file_name
from coreos_infra.transport import FetchOptions, read_url

DEFAULT_BASE_URL = "https://builds.coreos.fedoraproject.org"
KNOWN_STREAMS = ("stable", "testing", "next")
ROLES = ("disk", "kernel", "initramfs", "rootfs")
FORMATS = ("iso", "pxe", "raw.xz", "4k.raw.xz", "qcow2.xz")
MAX_METADATA_BYTES = 64 << 20


class StreamError(InputError):
    """Stream/release metadata is malformed, or does not offer what was asked for."""


# --- URLs ------------------------------------------------------------------------------------------------


def normalize_base_url(url: str) -> str:
    """``http(s)://…`` or ``file://…`` without a trailing slash; a plain path becomes a ``file://`` URL."""
    url = url.strip()
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme in ("http", "https"):
        if not parsed.netloc:
            raise StreamError(f"stream base URL has no host: {url}")
        return url.rstrip("/")
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise StreamError(f"file:// URL with a host is not supported: {url}")
        return "file://" + (parsed.path.rstrip("/") or "/")
    if parsed.scheme == "" and url:
        return Path(url).resolve().as_uri()
    raise StreamError(f"unsupported stream base URL (use http://, https:// or file://): {url}")


def stream_url(base_url: str, stream: str) -> str:
    return f"{normalize_base_url(base_url)}/streams/{_name(stream, 'stream')}.json"


def release_index_url(base_url: str, stream: str) -> str:
    return f"{normalize_base_url(base_url)}/prod/streams/{_name(stream, 'stream')}/releases.json"


def builds_url(base_url: str, stream: str, release: str) -> str:
    base = normalize_base_url(base_url)
    return f"{base}/prod/streams/{_name(stream, 'stream')}/builds/{_name(release, 'release')}"


def release_metadata_url(base_url: str, stream: str, release: str) -> str:
    return f"{builds_url(base_url, stream, release)}/release.json"


def artifact_url(base_url: str, stream: str, release: str, arch: str, filename: str) -> str:
    arch = _name(arch, "architecture")
    return f"{builds_url(base_url, stream, release)}/{arch}/{urllib.parse.quote(filename)}"


def _name(value: str, what: str) -> str:
    if not value or "/" in value or value in (".", "..") or any(c.isspace() for c in value):
        raise StreamError(f"invalid {what} name: {value!r}")
    return value


def relocate(location: str, document_url: str, base_url: str) -> str:
    """Resolve ``location`` against the document it came from and move official URLs to ``base_url``."""
    url = urllib.parse.urljoin(document_url, location)
    base = normalize_base_url(base_url)
    if base != DEFAULT_BASE_URL and url.startswith(DEFAULT_BASE_URL + "/"):
        url = base + url[len(DEFAULT_BASE_URL) :]
    return url


# --- model -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArtifactRef:
    """One downloadable file: where it is, its signature and its checksums."""

    location: str
    sha256: str | None
    signature: str | None
    size: int | None = None
    uncompressed_sha256: str | None = None

    @property
    def name(self) -> str:
        """The file name as published (last path component of the location, URL-decoded), checked to be a
        plain file name: it becomes a local path (cache records, ``download -C DIR``, mirrors)."""
        return safe_file_name(_location_name(self.location), what="artifact file name")


def _location_name(location: str) -> str:
    return urllib.parse.unquote(posixpath.basename(urllib.parse.urlparse(location).path))


def _where(source: str, path: list[str]) -> Location:
    return Location(file=source, path=".".join(path) if path else None)


def _get(obj: Any, key: str, kind: type, source: str, path: list[str], *, what: str | None = None) -> Any:
    if not isinstance(obj, dict):
        raise StreamError("expected an object", _where(source, path))
    if key not in obj:
        available = sorted(obj)
        raise StreamError(
            f"no {what or repr(key)}"
            + (f" (available: {', '.join(available)})" if available else " (none)"),
            _where(source, path),
        )
    value = obj[key]
    if not isinstance(value, kind):
        raise StreamError(
            f"expected {kind.__name__}, got {type(value).__name__}", _where(source, [*path, key])
        )
    return value


def _artifact(obj: Any, source: str, path: list[str], base_url: str) -> ArtifactRef:
    if not isinstance(obj, dict):
        raise StreamError("expected an artifact object", _where(source, path))
    location = _get(obj, "location", str, source, path)
    sha256 = obj.get("sha256")
    if sha256 is not None and (not isinstance(sha256, str) or len(sha256) != 64):
        raise StreamError("sha256 must be 64 hex digits", _where(source, [*path, "sha256"]))
    if isinstance(sha256, str):
        try:
            int(sha256, 16)
        except ValueError:
            raise StreamError("sha256 must be 64 hex digits", _where(source, [*path, "sha256"])) from None
    signature = obj.get("signature")
    if signature is not None and not isinstance(signature, str):
        raise StreamError("signature must be a URL string", _where(source, [*path, "signature"]))
    size = obj.get("size")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
        raise StreamError("size must be a non-negative integer", _where(source, [*path, "size"]))
    unc = obj.get("uncompressed-sha256")
    try:
        safe_file_name(_location_name(location), what="artifact file name")
    except CoreosInfraError as e:
        raise StreamError(e.message, _where(source, [*path, "location"])) from None
    return ArtifactRef(
        location=relocate(location, source, base_url),
        sha256=sha256.lower() if isinstance(sha256, str) else None,
        signature=relocate(signature, source, base_url) if signature else None,
        size=size,
        uncompressed_sha256=unc.lower() if isinstance(unc, str) else None,
    )


def _artifacts(
    formats: Any, fmt: str, source: str, path: list[str], base_url: str
) -> dict[str, ArtifactRef]:
    entry = _get(formats, fmt, dict, source, path, what=f"format '{fmt}'")
    if not entry:
        raise StreamError("format lists no artifacts", _where(source, [*path, fmt]))
    return {role: _artifact(obj, source, [*path, fmt, role], base_url) for role, obj in entry.items()}


@dataclass(frozen=True)
class Stream:
    """A parsed ``streams/<stream>.json``."""

    name: str
    source: str
    base_url: str
    last_modified: str | None
    architectures: Mapping[str, Any] = field(repr=False)

    def arches(self) -> list[str]:
        return sorted(self.architectures)

    def _platform(self, arch: str, platform: str) -> tuple[dict[str, Any], list[str]]:
        a = _get(
            self.architectures, arch, dict, self.source, ["architectures"], what=f"architecture '{arch}'"
        )
        path = ["architectures", arch, "artifacts"]
        artifacts = _get(a, "artifacts", dict, self.source, ["architectures", arch])
        p = _get(artifacts, platform, dict, self.source, path, what=f"platform '{platform}' for {arch}")
        return p, [*path, platform]

    def platforms(self, arch: str) -> list[str]:
        a = _get(
            self.architectures, arch, dict, self.source, ["architectures"], what=f"architecture '{arch}'"
        )
        return sorted(_get(a, "artifacts", dict, self.source, ["architectures", arch]))

    def formats(self, arch: str, platform: str) -> list[str]:
        p, path = self._platform(arch, platform)
        return sorted(_get(p, "formats", dict, self.source, path))

    def release(self, arch: str, platform: str) -> str:
        p, path = self._platform(arch, platform)
        return str(_get(p, "release", str, self.source, path))

    def artifact(self, arch: str, platform: str, fmt: str) -> dict[str, ArtifactRef]:
        """The artifacts of ``fmt`` by role (``disk``, or ``kernel``/``initramfs``/``rootfs`` for pxe)."""
        p, path = self._platform(arch, platform)
        formats = _get(p, "formats", dict, self.source, path)
        return _artifacts(formats, fmt, self.source, [*path, "formats"], self.base_url)


@dataclass(frozen=True)
class ReleaseEntry:
    version: str
    metadata: str  # URL of release.json
    architectures: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReleaseIndex:
    """A parsed ``prod/streams/<stream>/releases.json`` (oldest release first)."""

    stream: str
    source: str
    releases: tuple[ReleaseEntry, ...]

    def find(self, version: str) -> ReleaseEntry:
        for entry in self.releases:
            if entry.version == version:
                return entry
        recent = [e.version for e in self.releases[-5:]]
        raise StreamError(
            f"release {version!r} is not in the release index of stream {self.stream!r}"
            + (f" (most recent: {', '.join(reversed(recent))})" if recent else " (it lists no releases)"),
            Location(file=self.source),
        )

    @property
    def latest(self) -> ReleaseEntry:
        if not self.releases:
            raise StreamError("the release index lists no releases", Location(file=self.source))
        return self.releases[-1]


@dataclass(frozen=True)
class Release:
    """A parsed ``release.json`` of one build."""

    version: str
    stream: str
    source: str
    base_url: str
    architectures: Mapping[str, Any] = field(repr=False)

    def artifact(self, arch: str, platform: str, fmt: str) -> dict[str, ArtifactRef]:
        src = self.source
        a = _get(self.architectures, arch, dict, src, ["architectures"], what=f"architecture '{arch}'")
        media = _get(a, "media", dict, src, ["architectures", arch])
        path = ["architectures", arch, "media"]
        p = _get(media, platform, dict, src, path, what=f"platform '{platform}' for {arch}")
        artifacts = _get(p, "artifacts", dict, src, [*path, platform])
        return _artifacts(artifacts, fmt, src, [*path, platform, "artifacts"], self.base_url)


def _json(data: bytes, source: str) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        line = getattr(e, "lineno", None)
        raise StreamError(f"not valid JSON: {e}", Location(file=source, line=line)) from None
    if not isinstance(doc, dict):
        raise StreamError("expected a JSON object", Location(file=source))
    return doc


def parse_stream(data: bytes, source: str, *, base_url: str | None = None) -> Stream:
    doc = _json(data, source)
    name = _get(doc, "stream", str, source, [])
    arches = _get(doc, "architectures", dict, source, [])
    meta = doc.get("metadata")
    modified = meta.get("last-modified") if isinstance(meta, dict) else None
    return Stream(name, source, base_url or DEFAULT_BASE_URL, modified, arches)


def parse_release_index(data: bytes, source: str, *, base_url: str | None = None) -> ReleaseIndex:
    doc = _json(data, source)
    releases = _get(doc, "releases", list, source, [])
    entries = []
    for i, r in enumerate(releases):
        path = [f"releases[{i}]"]
        version = _get(r, "version", str, source, path)
        metadata = _get(r, "metadata", str, source, path)
        arches = tuple(
            c["architecture"] for c in r.get("commits", []) if isinstance(c, dict) and "architecture" in c
        )
        entries.append(
            ReleaseEntry(version, relocate(metadata, source, base_url or DEFAULT_BASE_URL), arches)
        )
    return ReleaseIndex(str(doc.get("stream", "")), source, tuple(entries))


def parse_release(data: bytes, source: str, *, base_url: str | None = None) -> Release:
    doc = _json(data, source)
    version = _get(doc, "release", str, source, [])
    arches = _get(doc, "architectures", dict, source, [])
    return Release(version, str(doc.get("stream", "")), source, base_url or DEFAULT_BASE_URL, arches)


def load_stream(base_url: str, stream: str, *, options: FetchOptions | None = None) -> Stream:
    """Download and parse ``<base_url>/streams/<stream>.json``."""
    base = normalize_base_url(base_url)
    url = stream_url(base, stream)
    return parse_stream(read_url(url, limit=MAX_METADATA_BYTES, options=options), url, base_url=base)


def load_release_index(base_url: str, stream: str, *, options: FetchOptions | None = None) -> ReleaseIndex:
    base = normalize_base_url(base_url)
    url = release_index_url(base, stream)
    return parse_release_index(read_url(url, limit=MAX_METADATA_BYTES, options=options), url, base_url=base)


def load_release(
    base_url: str, stream: str, release: str, *, options: FetchOptions | None = None
) -> Release:
    """Find ``release`` in the stream's release index and parse its ``release.json``."""
    base = normalize_base_url(base_url)
    entry = load_release_index(base, stream, options=options).find(release)
    data = read_url(entry.metadata, limit=MAX_METADATA_BYTES, options=options)
    parsed = parse_release(data, entry.metadata, base_url=base)
    if parsed.version != release:
        raise StreamError(f"release.json describes release {parsed.version!r}, expected {release!r}",
                          Location(file=entry.metadata, path="release"))  # fmt: skip
    return parsed


# --- writer ----------------------------------------------------------------------------------------------

_SUFFIX = {
    ("metal", "raw.xz", "disk"): "metal.{arch}.raw.xz",
    ("metal", "4k.raw.xz", "disk"): "metal4k.{arch}.raw.xz",
    ("metal", "iso", "disk"): "live-iso.{arch}.iso",
    ("metal", "pxe", "kernel"): "live-kernel.{arch}",
    ("metal", "pxe", "initramfs"): "live-initramfs.{arch}.img",
    ("metal", "pxe", "rootfs"): "live-rootfs.{arch}.img",
}


def artifact_filename(release: str, arch: str, platform: str, fmt: str, role: str = "disk",
                      *, product: str = "fedora-coreos") -> str:  # fmt: skip
    """The official file name, e.g. ``fedora-coreos-41.20250101.3.0-live-iso.x86_64.iso``."""
    suffix = _SUFFIX.get((platform, fmt, role), f"{platform}.{{arch}}.{fmt}")
    return f"{product}-{release}-{suffix.format(arch=arch)}"


@dataclass(frozen=True)
class ArtifactFile:
    """An artifact file to publish in stream/release metadata."""

    arch: str
    platform: str
    fmt: str
    role: str
    path: Path
    name: str | None = None  # published file name (default: path.name)
    uncompressed_sha256: str | None = None
    signature_file: Path | None = None  # an existing detached signature to publish with it

    @property
    def published_name(self) -> str:
        return self.name or self.path.name


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _artifact_entry(f: ArtifactFile, url: str, *, signed: bool, with_size: bool) -> dict[str, Any]:
    entry: dict[str, Any] = {"location": url}
    if signed or f.signature_file is not None:
        entry["signature"] = url + ".sig"
    entry["sha256"] = sha256_file(f.path)
    if f.uncompressed_sha256:
        entry["uncompressed-sha256"] = f.uncompressed_sha256
    if with_size:
        entry["size"] = f.path.stat().st_size
    return entry


def stream_document(stream: str, release: str, files: Sequence[ArtifactFile], *,
                    base_url: str = DEFAULT_BASE_URL, signed: bool = True, with_sizes: bool = False,
                    last_modified: str | None = None) -> dict[str, Any]:  # fmt: skip
    """A ``streams/<stream>.json`` document listing ``files`` as release ``release``."""
    arches: dict[str, Any] = {}
    for f in files:
        url = artifact_url(base_url, stream, release, f.arch, f.published_name)
        platform = arches.setdefault(f.arch, {"artifacts": {}})["artifacts"].setdefault(
            f.platform, {"release": release, "formats": {}}
        )
        platform["formats"].setdefault(f.fmt, {})[f.role] = _artifact_entry(
            f, url, signed=signed, with_size=with_sizes
        )
    return {
        "stream": stream,
        "metadata": {"last-modified": last_modified or _now(), "generator": "coreos-infra"},
        "architectures": arches,
    }


def release_document(stream: str, release: str, files: Sequence[ArtifactFile], *,
                     base_url: str = DEFAULT_BASE_URL, signed: bool = True, with_sizes: bool = False,
                     last_modified: str | None = None) -> dict[str, Any]:  # fmt: skip
    """A ``release.json`` document for ``release``."""
    arches: dict[str, Any] = {}
    for f in files:
        url = artifact_url(base_url, stream, release, f.arch, f.published_name)
        media = arches.setdefault(f.arch, {"media": {}})["media"]
        artifacts = media.setdefault(f.platform, {"artifacts": {}})["artifacts"]
        artifacts.setdefault(f.fmt, {})[f.role] = _artifact_entry(
            f, url, signed=signed, with_size=with_sizes
        )
    return {
        "release": release,
        "stream": stream,
        "metadata": {"last-modified": last_modified or _now()},
        "architectures": arches,
    }


def _dump(doc: Mapping[str, Any]) -> bytes:
    return (json.dumps(doc, indent=2, sort_keys=False) + "\n").encode()


def _load_existing(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    return _json(path.read_bytes(), str(path))


def _merge(old: dict[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """Recursively merge ``new`` into ``old`` (``new`` wins); artifact role entries are replaced whole."""
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(old.get(key), dict) and "location" not in value:
            _merge(old[key], value)
        else:
            old[key] = value
    return old


def _version_key(version: str) -> tuple[tuple[int, str], ...]:
    return tuple((int(p), "") if p.isdigit() else (-1, p) for p in version.split("."))


def _link_or_copy(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    try:
        try:
            os.link(src, tmp)  # the cache's read-only blobs stay read-only
        except OSError:
            shutil.copyfile(src, tmp)
            os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_mirror(root: Path, stream: str, release: str, files: Sequence[ArtifactFile], *,
                 signer: Callable[[Path], Path] | None = None, base_url: str = DEFAULT_BASE_URL,
                 with_sizes: bool = False, merge: bool = True, promote: bool = True) -> Path:  # fmt: skip
    """Lay ``files`` out under ``root`` like the official server, write the metadata, return the stream JSON.

    Each file lands at ``prod/streams/<stream>/builds/<release>/<arch>/<name>`` with its ``.sig`` (copied
    from ``signature_file`` or made by ``signer``). Then ``release.json``, ``releases.json`` and
    ``streams/<stream>.json`` are written, in that order, so readers never see metadata that points at
    missing files. With ``merge``, entries already in the mirror's documents are kept; ``promote=False``
    leaves a platform the stream JSON already lists at another release alone (mirroring an old release).
    Artifact locations are written as absolute URLs under ``base_url`` (default: the official URL, which
    readers rewrite to wherever the mirror is served).
    """
    root = Path(root)
    signed = signer is not None  # files with a signature_file are listed as signed either way
    for f in files:
        dest = root / "prod" / "streams" / stream / "builds" / release / f.arch / f.published_name
        if not (dest.exists() and os.path.samefile(f.path, dest)):
            _link_or_copy(f.path, dest)
        sig = dest.with_name(dest.name + ".sig")
        if f.signature_file is not None:
            _link_or_copy(f.signature_file, sig)
        elif signer is not None:
            signer(dest)
    stamp = _now()
    rel_path = root / "prod" / "streams" / stream / "builds" / release / "release.json"
    rel_doc = release_document(stream, release, files, base_url=base_url, signed=signed,
                               with_sizes=with_sizes, last_modified=stamp)  # fmt: skip
    old = _load_existing(rel_path) if merge else None
    write_atomic(rel_path, _dump(_merge(old, rel_doc) if old else rel_doc))

    index_path = root / "prod" / "streams" / stream / "releases.json"
    index = (_load_existing(index_path) if merge else None) or {
        "note": "For use only by Fedora CoreOS internal tooling.  All other applications should obtain "
        "release info from stream metadata endpoints.",
        "releases": [],
        "stream": stream,
    }
    entries = index.setdefault("releases", [])
    arches = sorted({f.arch for f in files})
    entry = next((e for e in entries if isinstance(e, dict) and e.get("version") == release), None)
    if entry is None:
        entry = {
            "commits": [],
            "version": release,
            "metadata": release_metadata_url(base_url, stream, release),
        }
        entries.append(entry)
    known = {c.get("architecture") for c in entry.setdefault("commits", []) if isinstance(c, dict)}
    entry["commits"].extend({"architecture": a, "checksum": ""} for a in arches if a not in known)
    entries.sort(key=lambda e: _version_key(str(e.get("version", ""))) if isinstance(e, dict) else ())
    index["metadata"] = {"last-modified": stamp}
    write_atomic(index_path, _dump(index))

    stream_path = root / "streams" / f"{stream}.json"
    doc = stream_document(stream, release, files, base_url=base_url, signed=signed,
                          with_sizes=with_sizes, last_modified=stamp)  # fmt: skip
    old = _load_existing(stream_path) if merge else None
    if old:
        for arch, a in doc["architectures"].items():
            for platform, p in a["artifacts"].items():
                olds = old.setdefault("architectures", {}).setdefault(arch, {}).setdefault("artifacts", {})
                prev = olds.get(platform)
                if isinstance(prev, dict) and prev.get("release") == release:
                    _merge(prev, p)
                elif promote or not isinstance(prev, dict):
                    olds[platform] = p
        old["metadata"] = doc["metadata"]
        doc = old
    write_atomic(stream_path, _dump(doc))
    return stream_path
