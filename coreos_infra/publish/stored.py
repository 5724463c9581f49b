"""Builds as the store holds them: which are complete, read back from their own meta.json.

A build directory in the store is complete when its meta.json, its SHA256SUMS and every artifact its
meta.json lists (with the recorded size) are there; it is signed when SHA256SUMS.sig and every
artifact's .sig are there too. The index step (:func:`coreos_infra.publish.publish.write_site_indexes`)
lists only complete builds, so a shard killed mid-upload never shows up in an index.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass
from pathlib import PurePosixPath

from coreos_infra.publish import layout
from coreos_infra.publish.manifest import RESERVED, SITE_WIDE_HOST, BuildFile, LocalBuild
from coreos_infra.publish.store import ObjectInfo, Store
from coreos_infra.publish.targets import target_facts


@dataclass(frozen=True)
class StoredBuild(LocalBuild):
    """A complete build in the store (``meta_path`` and the files' ``path`` are store keys)."""

    signed: bool = False


def _date(info: ObjectInfo) -> str:
    return info.last_modified.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _complete(store: Store, objects: dict[str, ObjectInfo], meta_key: str) -> StoredBuild | None:
    prefix = meta_key.rsplit("/", 1)[0] + "/"
    if prefix + "SHA256SUMS" not in objects:
        return None
    source = f"{store.url}/{meta_key}"
    try:
        data = store.get_bytes(meta_key)
        meta = json.loads(data)
        facts = target_facts(meta, source)
    except Exception:  # noqa: BLE001 - an unreadable build is not complete; the index skips it
        return None
    site, host, target, build_id = layout.parse_build_key(meta_key) or ("", "", "", "")
    if meta.get("build_id") != build_id or (meta.get("host") or SITE_WIDE_HOST) != host:
        return None
    files = []
    signed = prefix + layout.signature("SHA256SUMS") in objects
    for art in meta.get("artifacts", []):
        name = str(art.get("name"))
        if name in RESERVED:
            continue
        info = objects.get(prefix + name)
        if info is None or info.size != int(art.get("size", -1)):
            return None
        signed = signed and layout.signature(prefix + name) in objects
        files.append(BuildFile(name, PurePosixPath(prefix + name), info.size, str(art["sha256"])))  # type: ignore[arg-type]
    when = meta.get("date")
    return StoredBuild(
        site=site, host=host, target=target, build_id=build_id, meta_path=PurePosixPath(meta_key),  # type: ignore[arg-type]
        meta_bytes=data, meta=meta, files=tuple(files),
        date=when if isinstance(when, str) else _date(objects[meta_key]), facts=facts, signed=signed,
    )  # fmt: skip


def complete_builds(store: Store, site: str) -> dict[str, StoredBuild]:
    """meta.json key → the complete build, for every complete build of ``site`` in ``store``."""
    objects = {
        info.key: info for info in store.list(layout.site_prefix(site)) if layout.parse_build_key(info.key)
    }
    out = {}
    for key in sorted(objects):
        if key.count("/") == 5 and key.endswith("/meta.json"):
            build = _complete(store, objects, key)
            if build is not None:
                out[key] = build
    return out


def complete_build(store: Store, site: str, build_id: str) -> StoredBuild | None:
    """The complete build ``build_id`` of ``site`` in ``store`` (any host and target), else None."""
    objects = {}
    for info in store.list(layout.site_prefix(site)):
        parsed = layout.parse_build_key(info.key)
        if parsed is not None and parsed[3] == build_id:
            objects[info.key] = info
    for key in sorted(objects):
        if key.count("/") == 5 and key.endswith("/meta.json"):
            build = _complete(store, objects, key)
            if build is not None:
                return build
    return None


def stored_sites(store: Store) -> list[str]:
    """Every site with at least one object under ``sites/`` in the store."""
    return sorted({info.key.split("/")[1] for info in store.list("sites/") if info.key.count("/") >= 2})
