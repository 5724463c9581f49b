"""``invoke share``: presigned URLs to the latest build of a (site, host, target) in a private bucket."""

from __future__ import annotations

import re

from coreos_infra.errors import CoreosInfraError
from coreos_infra.publish import index as idx
from coreos_infra.publish.store import Store

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> int:
    """``7d``, ``12h``, ``30m``, ``90s`` or plain seconds -> seconds."""
    m = re.fullmatch(r"\s*(\d+)\s*([smhdw]?)\s*", text)
    if not m:
        raise CoreosInfraError(f"invalid duration {text!r} (expected e.g. 7d, 12h, 30m or seconds)")
    return int(m.group(1)) * _UNITS[m.group(2) or "s"]


def share(
    store: Store, site: str, host: str, target: str, *, expires_s: int, build: str = "latest"
) -> list[tuple[str, str]]:
    """(file name, presigned URL) for every file of the build (the stream artifacts first)."""
    index = idx.read_site_index(store, site)
    if index is None:
        raise CoreosInfraError(f"{store.url}: site {site!r} has not been published (no site index)")
    t = index["hosts"].get(host, {}).get("targets", {}).get(target)
    if t is None:
        raise CoreosInfraError(f"{store.url}: nothing published for site {site} host {host} target {target}")
    wanted = t["latest"] if build == "latest" else build
    entry = next((b for b in t["builds"] if b["build_id"] == wanted), None)
    if entry is None:
        raise CoreosInfraError(f"{store.url}: no build {wanted!r} for {site}/{host}/{target}")
    files = sorted(entry["files"], key=lambda f: ("kind" not in f, f["name"]))
    out = [(f["name"], store.presign(f["key"], expires_s)) for f in files]
    out.append(("SHA256SUMS", store.presign(entry["sums"], expires_s)))
    if entry.get("sums_signature"):
        out.append(("SHA256SUMS.sig", store.presign(entry["sums_signature"], expires_s)))
    return out
