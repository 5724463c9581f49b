"""The seam between the nightly and the store: what the publish step and the final job call.

A sharded nightly publishes in two phases so that no shard overwrites another's index entries: every
shard uploads the builds that passed (:meth:`Publisher.publish`, immutable objects under the build's own
prefix only), and the final job, after all shards, writes the indexes once (:meth:`write_indexes`) and
prunes (:meth:`prune`). An unsharded run does both phases itself.

The store library is :mod:`coreos_infra.publish` ([publish], issue 13); :class:`StorePublisher` is the
adapter: :func:`~coreos_infra.publish.publish.upload_builds` per build,
:func:`~coreos_infra.publish.publish.write_site_indexes` per site, :func:`~coreos_infra.publish.prune.prune`.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from coreos_infra.errors import CoreosInfraError
from coreos_infra.publish.index import read_site_index
from coreos_infra.publish.manifest import load_build
from coreos_infra.publish.prune import prune
from coreos_infra.publish.publish import PublishReport, prepare_store, upload_builds, write_site_indexes
from coreos_infra.publish.settings import resolve
from coreos_infra.publish.sign import Signer, site_signer
from coreos_infra.publish.store import Store
from coreos_infra.publish.stored import complete_build


class Publisher(Protocol):
    def already_published(self, build_id: str) -> bool:
        """True when the store holds this build completely (nothing to upload)."""
        ...

    def publish(self, build_dir: Path) -> str:
        """Upload the build in ``build_dir`` (its meta.json's files); return where it can be downloaded.

        Only the build's own objects: indexes and ``latest`` pointers are :meth:`write_indexes`' job.
        """
        ...

    def write_indexes(self) -> None:
        """Write every index (site indexes, streams, download page, latest pointers) from the store."""
        ...

    def prune(self, keep: int) -> Sequence[str]:
        """Delete all but the newest ``keep`` builds of each (site, host, target); return what went."""
        ...


@dataclass
class StorePublisher:
    """:class:`Publisher` on :mod:`coreos_infra.publish` (one store per site, signed with the site key)."""

    root: Path
    store_url: str | None = None  # None: each site's configured store (publish.store, else artifacts/store)
    endpoint_url: str | None = None
    unsigned: bool = False
    _stores: dict[str, Store] = field(default_factory=dict)
    _signers: dict[str, Signer] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def store(self, site: str) -> Store:
        with self._lock:
            if site not in self._stores:
                settings = resolve(self.root, site, store=self.store_url, endpoint_url=self.endpoint_url)
                self._stores[site] = prepare_store(settings)
            return self._stores[site]

    def _signer(self, site: str) -> Signer | None:
        if self.unsigned:
            return None
        with self._lock:
            if site not in self._signers:
                settings = resolve(self.root, site, store=self.store_url, endpoint_url=self.endpoint_url)
                self._signers[site] = site_signer(self.root, site, settings.signing)
            return self._signers[site]

    def _sites(self) -> list[str]:
        return sorted(p.stem for p in (self.root / "recipes" / "sites").glob("*.yaml"))

    def already_published(self, build_id: str) -> bool:
        return any(complete_build(self.store(site), site, build_id) is not None for site in self._sites())

    def publish(self, build_dir: Path) -> str:
        build = load_build(build_dir / "meta.json")
        if build.meta.get("contains_secrets"):
            raise CoreosInfraError(
                f"{build.meta_path}: this build contains secrets (password hashes or keys)",
                hint="publish it by hand to a private store: invoke publish --allow-secrets",
            )
        store = self.store(build.site)
        report = PublishReport(site=build.site, store=store.url, signed=not self.unsigned, builds=[build])
        upload_builds(store, build.site, [build], self._signer(build.site), report)
        return store.public_url(build.meta_key)

    def write_indexes(self) -> None:
        for site in self._sites():
            store = self.store(site)
            write_site_indexes(
                store, site, PublishReport(site=site, store=store.url, signed=not self.unsigned)
            )

    def prune(self, keep: int) -> Sequence[str]:
        done: list[str] = []
        for site in self._sites():
            store = self.store(site)
            if read_site_index(store, site) is not None:
                done += prune(store, keep=keep, site=site).removed_builds
        return done

    def close(self) -> None:
        for signer in self._signers.values():
            signer.close()
        self._signers.clear()


def open_publisher(store: str | None, *, root: Path, endpoint_url: str | None = None) -> StorePublisher:
    """The publisher for ``store`` (default: the site's configured store, else ``artifacts/store``)."""
    return StorePublisher(root=root, store_url=store, endpoint_url=endpoint_url)
