"""``invoke publish``: put what ``invoke build`` produced into a store, in an order that is always safe.

Order per run: abort what an interrupted earlier run left (multipart uploads, temporary files) →
artifacts (+ their detached signatures) → each build's meta.json → SHA256SUMS and its signature → the
site's public key → site index, stream documents and the download page → ``latest.json`` pointers.
A failure anywhere stops the run before the next step, so every index and pointer in the store still
refers only to complete objects; running publish again completes the job.

Every object is skipped when the store already has it with the same SHA-256 (from the object's
metadata), so re-publishing an unchanged build costs HEAD requests only. Artifact SHA-256s come from
the build's meta.json; nothing is hashed again.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coreos_infra.errors import CoreosInfraError
from coreos_infra.log import progress as progress_bar
from coreos_infra.paths import artifacts_dir
from coreos_infra.publish import index as idx
from coreos_infra.publish import layout
from coreos_infra.publish.manifest import BuildFile, LocalBuild, find_builds
from coreos_infra.publish.settings import PublishSettings, resolve
from coreos_infra.publish.sign import Signer, site_signer
from coreos_infra.publish.store import Store, open_store

LOG = logging.getLogger("coreos_infra.publish")

IMMUTABLE = "public, max-age=31536000, immutable"  # everything inside a build directory
SHORT = "public, max-age=60, must-revalidate"  # indexes, streams, page, keys
LATEST = "no-cache"  # latest pointers

_TYPES = {
    ".json": "application/json",
    ".html": "text/html; charset=utf-8",
    ".asc": "application/pgp-keys",
    ".sig": "application/pgp-signature",
    ".iso": "application/x-iso9660-image",
    ".xz": "application/x-xz",
    ".tar": "application/x-tar",
    ".ipxe": "text/plain; charset=utf-8",
    ".cfg": "text/plain; charset=utf-8",
    ".conf": "text/plain; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
}


def content_type(key: str) -> str:
    name = key.rsplit("/", 1)[-1]
    if name == "SHA256SUMS":
        return "text/plain; charset=utf-8"
    for suffix, ctype in _TYPES.items():
        if name.endswith(suffix):
            return ctype
    return "application/octet-stream"


@dataclass(frozen=True)
class PublishOptions:
    root: Path
    site: str | None = None
    host: str | None = None
    target: str | None = None
    store: str | None = None
    endpoint_url: str | None = None
    public_base_url: str | None = None
    gnupg_home: str | None = None
    key_id: str | None = None
    unsigned: bool = False
    create_bucket: bool = False
    allow_secrets: bool = False
    build_root: Path | None = None


@dataclass
class PublishReport:
    site: str
    store: str
    signed: bool
    builds: list[LocalBuild] = field(default_factory=list)
    uploaded: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    bytes_uploaded: int = 0
    aborted: int = 0
    streams: list[str] = field(default_factory=list)
    page: str | None = None
    key_url: str | None = None
    generated_key: bool = False


def prepare_store(settings: PublishSettings, *, create_bucket: bool = False) -> Store:
    """Open the configured store and check it is usable (a bucket must exist unless create_bucket)."""
    store = open_store(
        settings.store, endpoint_url=settings.endpoint_url, public_base_url=settings.public_base_url
    )
    check = getattr(store, "check_bucket", None)
    if check is not None:
        try:
            check()
        except CoreosInfraError as e:
            if not create_bucket or "does not exist" not in e.message:
                raise
            LOG.info("creating bucket for %s", store.url)
            store.create_bucket()  # type: ignore[attr-defined]
    return store


class _Uploader:
    """Puts objects unless the store has them with the same SHA-256; records what it did."""

    def __init__(self, store: Store, report: PublishReport) -> None:
        self.store = store
        self.report = report

    def _same(self, key: str, sha256: str, size: int) -> bool:
        info = self.store.head(key)
        return info is not None and info.sha256 == sha256 and info.size == size

    def put_bytes(self, key: str, data: bytes, cache_control: str, *, always: bool = False) -> None:
        if not always and self._same(key, hashlib.sha256(data).hexdigest(), len(data)):
            self.report.unchanged.append(key)
            return
        self.store.put_bytes(key, data, content_type=content_type(key), cache_control=cache_control)
        self.report.uploaded.append(key)

    def plan_files(self, build: LocalBuild) -> list[BuildFile]:
        todo = []
        for f in build.files:
            if self._same(build.key(f.name), f.sha256, f.size):
                self.report.unchanged.append(build.key(f.name))
            else:
                todo.append(f)
        return todo

    def put_file(self, key: str, f: BuildFile, progress: Callable[[int], None] | None) -> None:
        self.store.put_file(
            key,
            f.path,
            sha256=f.sha256,
            content_type=content_type(key),
            cache_control=IMMUTABLE,
            progress=progress,
        )
        self.report.uploaded.append(key)
        self.report.bytes_uploaded += f.size


def _abort_leftovers(store: Store, builds: list[LocalBuild]) -> int:
    abort: Any = getattr(store, "abort_incomplete", None)
    if abort is None:
        return 0
    if hasattr(store, "incomplete_uploads"):  # S3: only this run's build prefixes
        return sum(int(abort(b.prefix)) for b in builds)
    return int(abort())


def _page_indexes(store: Store) -> list[dict[str, Any]]:
    out = []
    for info in store.list("sites/"):
        parts = info.key.split("/")
        if len(parts) == 3 and parts[2] == "index.json":
            out.append(idx.parse_site_index(store.get_bytes(info.key), f"{store.url}/{info.key}"))
    return sorted(out, key=lambda d: str(d.get("site")))


def page_html(store: Store) -> bytes | None:
    """The download page (index.html) for every site index in the store."""
    try:
        from coreos_infra.publish import page
    except ImportError:  # pragma: no cover - the page module is part of the same feature
        return None
    return page.render_page(_page_indexes(store)).encode()


def write_page(store: Store) -> str | None:
    """Render index.html from every site index in the store (the download page); return its key."""
    html = page_html(store)
    if html is None:
        return None
    store.put_bytes(layout.index_html(), html, content_type=content_type("index.html"), cache_control=SHORT)
    return layout.index_html()


def upload_builds(
    store: Store, site: str, builds: list[LocalBuild], signer: Signer | None, report: PublishReport
) -> None:
    """The build-only step: each build's artifacts (+ signatures), meta.json, SHA256SUMS (+ signature).

    Only objects under the builds' own prefixes, plus the site's public key; never an index, stream,
    page or ``latest`` pointer (:func:`write_site_indexes` does those), so shards of a nightly can
    upload in parallel without touching each other's entries.
    """
    up = _Uploader(store, report)
    report.aborted += _abort_leftovers(store, builds)
    if report.aborted:
        LOG.info("aborted %d incomplete upload(s) left by an interrupted run", report.aborted)

    # 1. artifacts and their signatures. gpg signs (a separate process, one file at a time) while the
    # uploads run, so signing stays off the upload's critical path; signatures are cached per content.
    plans = [(b, up.plan_files(b)) for b in builds]
    total = sum(f.size for _, todo in plans for f in todo)
    with ThreadPoolExecutor(max_workers=1) as pool:
        sigs: list[tuple[str, Future[bytes]]] = []
        if signer is not None:
            sigs = [
                (layout.signature(b.key(f.name)), pool.submit(signer.sign_file, f.path, f.sha256))
                for b in builds
                for f in b.files
            ]
        try:
            with progress_bar(total, f"publish {site}") as bar:
                for b, todo in plans:
                    for f in todo:
                        up.put_file(b.key(f.name), f, bar.update)
        except BaseException:
            for _, fut in sigs:
                fut.cancel()
            raise
        for key, fut in sigs:
            up.put_bytes(key, fut.result(), IMMUTABLE)
    # 2. meta.json, 3. SHA256SUMS + signature (a build counts as complete once its SHA256SUMS is there)
    for b in builds:
        up.put_bytes(b.meta_key, b.meta_bytes, IMMUTABLE)
    for b in builds:
        sums = b.sums_text()
        up.put_bytes(b.sums_key, sums, IMMUTABLE)
        if signer is not None:
            up.put_bytes(layout.signature(b.sums_key), signer.sign_bytes(sums, "SHA256SUMS"), IMMUTABLE)
    if signer is not None:
        up.put_bytes(layout.public_key(site), signer.public_key(), SHORT)
        report.key_url = store.public_url(layout.public_key(site))


def write_site_indexes(
    store: Store, site: str, report: PublishReport, *, builds: list[LocalBuild] | None = None
) -> None:
    """The index step: site index, streams, download page and ``latest`` pointers of ``site``.

    Rebuilt from what is complete in the store (:func:`coreos_infra.publish.stored.complete_builds`):
    entries of the old index whose build is still complete stay as they were, complete builds the index
    does not list yet are added (oldest first, so the newest becomes its target's latest), then
    ``builds`` (just uploaded from this machine) are added and made latest. Unchanged documents are
    not rewritten.
    """
    from coreos_infra.publish.stored import complete_builds

    up = _Uploader(store, report)
    complete = complete_builds(store, site)
    old = idx.read_site_index(store, site)
    hosts: dict[str, Any] = {}
    listed: set[str] = set()
    for host, h in (old or {}).get("hosts", {}).items():
        for target, t in h.get("targets", {}).items():
            kept = [
                e for e in t.get("builds", []) if isinstance(e.get("meta"), str) and e["meta"] in complete
            ]
            listed.update(e["meta"] for e in kept)
            if kept:
                hosts.setdefault(host, {"targets": {}})["targets"][target] = {**t, "builds": kept}
    index: dict[str, Any] | None = idx.render_site_index(site, hosts) if hosts else None
    local = {b.meta_key: b for b in builds or []}
    found = sorted(
        (c for k, c in complete.items() if k not in listed and k not in local), key=lambda c: c.date
    )
    for b in [*found, *(builds or [])]:
        if b.meta_key not in complete:
            raise CoreosInfraError(f"{store.url}: build {b.prefix} is not complete in the store")
        index = idx.with_build(
            index, site, b.host, b.target, idx.build_entry(b, signed=complete[b.meta_key].signed)
        )
    if index is None:
        LOG.info("no complete build of site %s in %s: no index written", site, store.url)
        return
    if old is not None and old["hosts"] == index["hosts"]:
        index = old  # unchanged: keep its "generated" time so the documents stay byte-identical
    up.put_bytes(layout.site_index(site), (json.dumps(index, indent=2) + "\n").encode(), SHORT)
    for host in sorted(index["hosts"]):
        doc = idx.stream_document(index, host, store)
        up.put_bytes(layout.stream(site, host), (json.dumps(doc, indent=2) + "\n").encode(), SHORT)
        report.streams.append(store.public_url(layout.stream(site, host)))
    html = page_html(store)
    if html is not None:
        up.put_bytes(layout.index_html(), html, SHORT)
        report.page = store.public_url(layout.index_html())
    # latest pointers last: they name only builds the index (already written) lists
    for host, h in sorted(index["hosts"].items()):
        for target, t in sorted(h["targets"].items()):
            entry = next(e for e in t["builds"] if e["build_id"] == t["latest"])
            pointer = {"build_id": entry["build_id"], "meta": entry["meta"]}
            up.put_bytes(layout.latest(site, host, target), (json.dumps(pointer) + "\n").encode(), LATEST)


def publish_site(
    store: Store, site: str, builds: list[LocalBuild], signer: Signer | None, report: PublishReport
) -> None:
    """Publish ``builds`` (all of ``site``) to ``store`` in the safe order: upload, then index."""
    upload_builds(store, site, builds, signer, report)
    write_site_indexes(store, site, report, builds=builds)


def publish(opts: PublishOptions) -> list[PublishReport]:
    """Publish the matching builds of ``artifacts/build`` (never builds anything)."""
    build_root = opts.build_root or artifacts_dir(opts.root) / "build"
    builds = find_builds(build_root, site=opts.site, host=opts.host, target=opts.target)
    if not opts.allow_secrets:
        for b in builds:
            if b.meta.get("contains_secrets"):
                raise CoreosInfraError(
                    f"{b.meta_path}: this build contains secrets (password hashes or keys)",
                    hint="publish it only to a private store, with --allow-secrets",
                )
    reports = []
    for site in sorted({b.site for b in builds}):
        site_builds = [b for b in builds if b.site == site]
        settings = resolve(
            opts.root, site, store=opts.store, endpoint_url=opts.endpoint_url,
            public_base_url=opts.public_base_url, gnupg_home=opts.gnupg_home, key_id=opts.key_id,
        )  # fmt: skip
        store = prepare_store(settings, create_bucket=opts.create_bucket)
        signer = None if opts.unsigned else site_signer(opts.root, site, settings.signing)
        report = PublishReport(site=site, store=store.url, signed=signer is not None, builds=site_builds)
        try:
            publish_site(store, site, site_builds, signer, report)
        finally:
            if signer is not None:
                signer.close()
        reports.append(report)
    return reports
