"""The seam between the nightly and the store: what the publish step and the final job call.

A sharded nightly publishes in two phases so that no shard overwrites another's index entries: every
shard uploads the builds that passed (:meth:`Publisher.publish`, immutable objects under the build's own
prefix only), and the final job, after all shards, writes the indexes once (:meth:`write_indexes`) and
prunes (:meth:`prune`). An unsharded run does both phases itself.

The store library is :mod:`coreos_infra.publish` ([publish], issue 13). :func:`open_publisher` is where
its adapter plugs in; until it does, ``--publish`` stops with a clear error before anything is built.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from coreos_infra.errors import CoreosInfraError


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


def open_publisher(store: str | None, *, root: Path, endpoint_url: str | None = None) -> Publisher:
    """The publisher for ``store`` (default: the site's configured store, else ``artifacts/store``)."""
    have_library = importlib.util.find_spec("coreos_infra.publish") is not None
    detail = (
        "coreos_infra.publish is present but has no build-only upload and index step the nightly can call"
        if have_library
        else "it needs the publish library coreos_infra.publish ([publish], issue 13), not in this checkout"
    )
    raise CoreosInfraError(
        f"--publish is not available yet: {detail}",
        hint="run without --publish (build and boot-test only), then `invoke publish` once it lands",
    )
