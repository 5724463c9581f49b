"""The store-facing tasks' common steps: open a site's store, and download a published build through it.

``invoke publish/prune/share/download/flash`` and the nightly call these so that the tasks only parse
options and print.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from coreos_infra.paths import artifacts_dir
from coreos_infra.publish.download import Build, Downloaded, download_build, keyring_for, resolve_build
from coreos_infra.publish.publish import prepare_store
from coreos_infra.publish.settings import resolve
from coreos_infra.publish.store import Store


def open_site_store(root: Path, site: str, store: str = "", endpoint_url: str = "", *,
                    create_bucket: bool = False) -> Store:  # fmt: skip
    """The store of ``site`` (default ``lab``), with ``store``/``endpoint_url`` overriding its settings."""
    settings = resolve(root, site or "lab", store=store or None, endpoint_url=endpoint_url or None)
    return prepare_store(settings, create_bucket=create_bucket)


def download_site_build(
    root: Path,
    site: str,
    host: str,
    target: str,
    *,
    build: str = "latest",
    store: str = "",
    endpoint_url: str = "",
    keyring: str = "",
    allow_unsigned: bool = False,
    dest: str = "",
    names_of: Callable[[Build], Sequence[str]] | None = None,
    verify_each: bool = False,
) -> Downloaded:
    """Resolve and download (verified) a build; ``names_of(build)`` picks the files (default: all).

    Files go to ``dest``, else ``artifacts/download/<site>/<host>/<target>/<build ID>/``.
    """
    st = open_site_store(root, site, store, endpoint_url)
    b = resolve_build(st, site, host, target, build or "latest")
    with keyring_for(root, site, Path(keyring) if keyring else None) as trusted:
        return download_build(
            st, site, host, target, dest=Path(dest) if dest else artifacts_dir(root) / "download",
            per_build_dir=not dest, keyring=trusted, allow_unsigned=allow_unsigned,
            names=list(names_of(b)) if names_of else None, resolved=b, verify_each=verify_each,
        )  # fmt: skip
