"""``invoke prune``: remove old builds from a store, never anything an index or ``latest`` points to.

Per (site, host, target) the newest ``keep`` builds stay, and the latest one always stays; with
``older_than_days`` only builds older than that go. The site index (and the streams and download page
derived from it) is rewritten first, then the pruned builds' objects are deleted, so a reader never
finds an index entry whose objects are gone. A key still referenced by any index or ``latest.json``
is never deleted.
"""

from __future__ import annotations

import datetime
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from coreos_infra.errors import CoreosInfraError
from coreos_infra.publish import index as idx
from coreos_infra.publish import layout
from coreos_infra.publish.store import Store

LOG = logging.getLogger("coreos_infra.publish")


@dataclass
class PruneReport:
    removed_builds: list[str] = field(default_factory=list)  # "site/host/target/build_id"
    deleted_keys: list[str] = field(default_factory=list)
    kept_builds: int = 0


def _parse_date(value: Any) -> datetime.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _sites(store: Store, site: str | None) -> list[str]:
    if site:
        return [site]
    names = set()
    for info in store.list("sites/"):
        parts = info.key.split("/")
        if len(parts) == 3 and parts[2] == "index.json":
            names.add(parts[1])
    return sorted(names)


def _latest_pointers(store: Store, site: str) -> set[str]:
    """Keys of the meta.json files the site's latest.json pointers name (and their build prefixes)."""
    protected = set()
    for info in store.list(layout.site_prefix(site)):
        if info.key.endswith("/latest.json"):
            try:
                doc = json.loads(store.get_bytes(info.key))
            except ValueError:
                continue
            meta = doc.get("meta") if isinstance(doc, dict) else None
            if isinstance(meta, str):
                protected.add(meta.rsplit("/", 1)[0] + "/")
    return protected


def prune(
    store: Store,
    *,
    keep: int,
    older_than_days: float | None = None,
    site: str | None = None,
    dry_run: bool = False,
    now: datetime.datetime | None = None,
) -> PruneReport:
    if keep < 1:
        raise CoreosInfraError("--keep must be at least 1 (the latest build always stays)")
    now = now or datetime.datetime.now(datetime.UTC)
    cutoff = now - datetime.timedelta(days=older_than_days) if older_than_days is not None else None
    report = PruneReport()
    for s in _sites(store, site):
        index = idx.read_site_index(store, s)
        if index is None:
            if site:
                raise CoreosInfraError(f"{store.url}: no index for site {s!r} ({layout.site_index(s)})")
            continue
        hosts = json.loads(json.dumps(index["hosts"]))
        removed: list[dict[str, Any]] = []
        for host, h in hosts.items():
            for target, t in h.get("targets", {}).items():
                keep_list, drop = [], []
                for n, b in enumerate(t.get("builds", [])):  # newest first
                    when = _parse_date(b.get("date"))
                    young = cutoff is not None and (when is None or when > cutoff)
                    if n < keep or b["build_id"] == t.get("latest") or young:
                        keep_list.append(b)
                    else:
                        drop.append(b)
                t["builds"] = keep_list
                report.kept_builds += len(keep_list)
                for b in drop:
                    report.removed_builds.append(f"{s}/{host}/{target}/{b['build_id']}")
                    removed.append({**b, "_prefix": layout.build_prefix(s, host, target, b["build_id"])})
        if not removed:
            continue
        new_index = idx.render_site_index(s, hosts)
        referenced = idx.referenced_keys(new_index)
        protected_prefixes = _latest_pointers(store, s)
        doomed: list[str] = []
        for b in removed:
            if b["_prefix"] in protected_prefixes:
                continue
            doomed.extend(info.key for info in store.list(b["_prefix"]) if info.key not in referenced)
        report.deleted_keys.extend(doomed)
        if dry_run:
            continue
        # Indexes first (site index, streams, page), then the objects.
        store.put_bytes(
            layout.site_index(s),
            (json.dumps(new_index, indent=2) + "\n").encode(),
            content_type="application/json",
            cache_control="public, max-age=60, must-revalidate",
        )
        for host in new_index["hosts"]:
            doc = idx.stream_document(new_index, host, store)
            store.put_bytes(
                layout.stream(s, host),
                (json.dumps(doc, indent=2) + "\n").encode(),
                content_type="application/json",
                cache_control="public, max-age=60, must-revalidate",
            )
        from coreos_infra.publish.publish import write_page

        write_page(store)
        store.delete(doomed)
        LOG.info("pruned %d build(s) of site %s (%d objects)", len(removed), s, len(doomed))
    return report
