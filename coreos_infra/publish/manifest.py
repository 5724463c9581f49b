"""A finished build on disk, as publishing sees it: its meta.json, its files and their store keys.

Builds live in ``artifacts/build/<target>/<name>/meta.json``. Each artifact listed there is found by its
name, directly in the build directory or (PXE bundles) in a subdirectory, and must have the recorded
size; its SHA-256 is taken from meta.json (the build already hashed it). The store's own
``SHA256SUMS`` replaces a build file of that name.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coreos_infra.errors import CoreosInfraError
from coreos_infra.publish import layout
from coreos_infra.publish.targets import TargetFacts, target_facts

RESERVED = ("meta.json", "SHA256SUMS")
SITE_WIDE_HOST = "all"  # host component for builds made for a whole site (no --host)


@dataclass(frozen=True)
class BuildFile:
    name: str
    path: Path
    size: int
    sha256: str


@dataclass(frozen=True)
class LocalBuild:
    site: str
    host: str
    target: str
    build_id: str
    meta_path: Path
    meta_bytes: bytes
    meta: dict[str, Any]
    files: tuple[BuildFile, ...]
    date: str  # RFC 3339, when the build was made
    facts: TargetFacts

    def key(self, name: str) -> str:
        return layout.artifact(self.site, self.host, self.target, self.build_id, name)

    @property
    def meta_key(self) -> str:
        return layout.meta(self.site, self.host, self.target, self.build_id)

    @property
    def sums_key(self) -> str:
        return layout.sums(self.site, self.host, self.target, self.build_id)

    @property
    def prefix(self) -> str:
        return layout.build_prefix(self.site, self.host, self.target, self.build_id)

    def sums_text(self) -> bytes:
        """``sha256sum -c`` lines for every file and meta.json (binary mode marker, sorted by name)."""
        import hashlib

        entries = [(f.name, f.sha256) for f in self.files]
        entries.append(("meta.json", hashlib.sha256(self.meta_bytes).hexdigest()))
        return "".join(f"{sha}  {name}\n" for name, sha in sorted(entries)).encode()


def _find(build_dir: Path, name: str, size: int, source: str) -> Path:
    direct = build_dir / name
    if direct.is_file() and direct.stat().st_size == size:
        return direct
    found = [p for p in build_dir.rglob(name) if p.is_file() and p.stat().st_size == size]
    if len(found) == 1:
        return found[0]
    if not found:
        raise CoreosInfraError(f"{source}: artifact {name} ({size} bytes) is missing from {build_dir}")
    raise CoreosInfraError(f"{source}: artifact name {name} is ambiguous in {build_dir}")


def load_build(meta_path: Path) -> LocalBuild:
    source = str(meta_path)
    try:
        data = meta_path.read_bytes()
        meta = json.loads(data)
    except FileNotFoundError:
        raise CoreosInfraError(f"{source}: no such build (run `invoke build` first)") from None
    except ValueError as e:
        raise CoreosInfraError(f"{source}: not valid JSON ({e})") from None
    for k in ("site", "target", "build_id", "artifacts"):
        if k not in meta:
            raise CoreosInfraError(f"{source}: no {k!r} (not a coreos-infra build?)")
    host = meta.get("host") or SITE_WIDE_HOST
    files = []
    seen: set[str] = set()
    for art in meta["artifacts"]:
        name = layout.check_name(str(art["name"]), "artifact name")
        if name in RESERVED:
            continue
        if name in seen or name.endswith(layout.SIGNATURE_SUFFIX):
            raise CoreosInfraError(f"{source}: artifact name {name} is duplicated or reserved")
        seen.add(name)
        size = int(art["size"])
        files.append(BuildFile(name, _find(meta_path.parent, name, size, source), size, str(art["sha256"])))
    when = meta.get("date")
    if not isinstance(when, str):
        ts = datetime.datetime.fromtimestamp(meta_path.stat().st_mtime, datetime.UTC)
        when = ts.strftime("%Y-%m-%dT%H:%M:%SZ")
    build = LocalBuild(
        site=layout.check_name(str(meta["site"]), "site"),
        host=layout.check_name(str(host), "host"),
        target=layout.check_name(str(meta["target"]), "target"),
        build_id=layout.check_name(str(meta["build_id"]), "build ID"),
        meta_path=meta_path,
        meta_bytes=data,
        meta=meta,
        files=tuple(files),
        date=when,
        facts=target_facts(meta, source),
    )
    return build


def find_builds(
    build_root: Path, *, site: str | None, host: str | None, target: str | None
) -> list[LocalBuild]:
    """Every build under ``build_root`` that matches the given site/host/target (None: any)."""
    pattern = f"{target or '*'}/*/meta.json"
    builds = []
    for meta_path in sorted(build_root.glob(pattern)):
        b = load_build(meta_path)
        if site and b.site != site:
            continue
        if host and b.host != host:
            continue
        builds.append(b)
    if not builds:
        what = " ".join(f"--{k} {v}" for k, v in (("site", site), ("host", host), ("target", target)) if v)
        raise CoreosInfraError(
            f"no build found in {build_root} for {what or 'any target'}",
            hint=f"run `invoke build {what or '--target T'}` first (publish never builds)",
        )
    return builds
