"""The site index (``sites/<site>/index.json``) and the FCOS-compatible stream documents built from it.

Site index::

    {"format": 1, "site": "lab", "generated": "RFC3339",
     "hosts": {"dns1": {"targets": {"rpi4": {"latest": "<build_id>", "builds": [<build>, ...]}}}}}

Builds newest first; each carries its date, base release, arch, stream platform/format, contains_secrets
and the keys of its meta.json, SHA256SUMS (+ signature) and files (name, key, size, sha256, signature,
and the stream kind for the files that appear in stream metadata).

``streams/<site>-<host>.json`` lists the latest build of every target of the host as FCOS stream
metadata: ``architectures.<arch>.artifacts.<target>.formats.<format>.<kind>`` with absolute
``location``, ``signature``, ``sha256`` and, for ``.xz`` images, ``uncompressed-sha256``.
"""

from __future__ import annotations

import datetime
import json
from typing import Any

from coreos_infra.errors import CoreosInfraError
from coreos_infra.publish import layout
from coreos_infra.publish.manifest import LocalBuild
from coreos_infra.publish.store import Store

FORMAT = 1


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_entry(b: LocalBuild, *, signed: bool) -> dict[str, Any]:
    """The index entry of one published build."""
    roles = {name: kind for kind, name in b.facts.kinds.items()}
    files = []
    for f in b.files:
        entry: dict[str, Any] = {"name": f.name, "key": b.key(f.name), "size": f.size, "sha256": f.sha256}
        if signed:
            entry["signature"] = layout.signature(b.key(f.name))
        if f.name in roles:
            entry["kind"] = roles[f.name]
        if f.name in b.facts.uncompressed_sha256:
            entry["uncompressed_sha256"] = b.facts.uncompressed_sha256[f.name]
        files.append(entry)
    out: dict[str, Any] = {
        "build_id": b.build_id,
        "date": b.date,
        "base_release": b.meta.get("base_release"),
        "arch": b.facts.arch,
        "platform": b.facts.platform,
        "format": b.facts.format,
        "contains_secrets": bool(b.meta.get("contains_secrets")),
        "meta": b.meta_key,
        "sums": b.sums_key,
        "files": files,
    }
    if signed:
        out["sums_signature"] = layout.signature(b.sums_key)
    return out


def render_site_index(site: str, hosts: dict[str, Any], *, generated: str | None = None) -> dict[str, Any]:
    """The site index document for ``hosts`` (host -> {"targets": target -> {"latest", "builds"}})."""
    ordered: dict[str, Any] = {}
    for host in sorted(hosts):
        targets = {}
        for target in sorted(hosts[host].get("targets", {})):
            t = hosts[host]["targets"][target]
            builds = sorted(
                t.get("builds", []), key=lambda e: (e.get("date", ""), e["build_id"]), reverse=True
            )
            if not builds:
                continue
            latest = t.get("latest") if any(e["build_id"] == t.get("latest") for e in builds) else None
            targets[target] = {"latest": latest or builds[0]["build_id"], "builds": builds}
        if targets:
            ordered[host] = {"targets": targets}
    return {"format": FORMAT, "site": site, "generated": generated or now(), "hosts": ordered}


def parse_site_index(data: bytes, source: str) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except ValueError as e:
        raise CoreosInfraError(f"{source}: not valid JSON ({e})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("hosts"), dict):
        raise CoreosInfraError(f"{source}: not a coreos-infra site index (format {FORMAT})")
    return doc


def read_site_index(store: Store, site: str) -> dict[str, Any] | None:
    key = layout.site_index(site)
    if store.head(key) is None:
        return None
    return parse_site_index(store.get_bytes(key), f"{store.url}/{key}")


def with_build(
    index: dict[str, Any] | None, site: str, host: str, target: str, entry: dict[str, Any]
) -> dict[str, Any]:
    """``index`` with ``entry`` added (replacing a build of the same ID) and made the target's latest."""
    hosts = json.loads(json.dumps(index["hosts"])) if index else {}
    t = hosts.setdefault(host, {"targets": {}}).setdefault("targets", {}).setdefault(target, {"builds": []})
    t["builds"] = [e for e in t.get("builds", []) if e["build_id"] != entry["build_id"]] + [entry]
    t["latest"] = entry["build_id"]
    return render_site_index(site, hosts)


def referenced_keys(index: dict[str, Any]) -> set[str]:
    """Every object key the index points to."""
    keys: set[str] = set()
    for h in index.get("hosts", {}).values():
        for t in h.get("targets", {}).values():
            for b in t.get("builds", []):
                keys.update(k for k in (b.get("meta"), b.get("sums"), b.get("sums_signature")) if k)
                for f in b.get("files", []):
                    keys.update(k for k in (f.get("key"), f.get("signature")) if k)
    return keys


def latest_builds(index: dict[str, Any], host: str) -> dict[str, dict[str, Any]]:
    """target -> the latest build entry of ``host``."""
    out = {}
    for target, t in index.get("hosts", {}).get(host, {}).get("targets", {}).items():
        for b in t.get("builds", []):
            if b["build_id"] == t.get("latest"):
                out[target] = b
    return out


def stream_document(index: dict[str, Any], host: str, store: Store) -> dict[str, Any]:
    """FCOS stream metadata for ``<site>-<host>``: the latest build of each target of the host."""
    site = index["site"]
    arches: dict[str, Any] = {}
    for _target, b in sorted(latest_builds(index, host).items()):
        kinds = {f["kind"]: f for f in b.get("files", []) if "kind" in f}
        if not kinds:
            continue
        formats: dict[str, Any] = {}
        for kind, f in sorted(kinds.items()):
            art: dict[str, Any] = {"location": store.public_url(f["key"])}
            if f.get("signature"):
                art["signature"] = store.public_url(f["signature"])
            art["sha256"] = f["sha256"]
            if f.get("uncompressed_sha256"):
                art["uncompressed-sha256"] = f["uncompressed_sha256"]
            formats[kind] = art
        platform = arches.setdefault(b["arch"], {"artifacts": {}})["artifacts"]
        platform[b["platform"]] = {
            "release": b.get("base_release") or b["build_id"],
            "formats": {b["format"]: formats},
        }
    return {
        "stream": layout.stream_name(site, host),
        "metadata": {"last-modified": index.get("generated") or now(), "generator": "coreos-infra publish"},
        "architectures": arches,
    }
