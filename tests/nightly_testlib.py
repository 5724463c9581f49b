"""Helpers for the nightly tests that publish: the real publisher on a real local store.

:func:`store_publisher` is :class:`coreos_infra.nightly.publisher.StorePublisher` (the one ``invoke
nightly --publish`` uses) on a directory store; the other helpers read that store back, so the tests
assert what the store holds, not what a stand-in recorded.
"""

from __future__ import annotations

from pathlib import Path

from coreos_infra.nightly.publisher import StorePublisher
from coreos_infra.publish.store import open_store
from coreos_infra.publish.stored import complete_builds, stored_sites


def store_publisher(root: Path, store_dir: Path, *, unsigned: bool = False) -> StorePublisher:
    """The real publisher on the local store in ``store_dir``, signing with ``root``'s demo key.

    ``unsigned`` for project roots under pytest's long temporary paths: gpg-agent's socket path there
    would be longer than a Unix socket allows.
    """
    return StorePublisher(root=root, store_url=str(store_dir), unsigned=unsigned)


def published_items(store_dir: Path) -> set[str]:
    """``site/host/target`` of every complete build in the store."""
    store = open_store(str(store_dir))
    return {
        f"{b.site}/{b.host}/{b.target}"
        for s in stored_sites(store)
        for b in complete_builds(store, s).values()
    }


def store_files(store_dir: Path) -> dict[str, int]:
    """Every file in the store (objects and sidecar metadata) → its inode and mtime, to see rewrites."""
    out = {}
    for p in sorted(store_dir.rglob("*")):
        if p.is_file():
            st = p.stat()
            out[str(p.relative_to(store_dir))] = hash((st.st_ino, st.st_mtime_ns))
    return out


def index_keys(store_dir: Path) -> list[str]:
    """The index documents in the store (site indexes, streams, page, latest pointers)."""
    names = [*store_dir.glob("sites/*/index.json"), *store_dir.glob("streams/*.json"),
             *store_dir.glob("index.html"), *store_dir.glob("sites/*/*/*/latest.json")]  # fmt: skip
    return sorted(str(p.relative_to(store_dir)) for p in names)
