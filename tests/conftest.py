"""Session-wide pytest fixtures shared by every area's tests.

- ``fixture_mirror``: the offline fixture mirror (:func:`coreos_infra.fixtures.ensure_mirror`), built once
  per machine and cached under ``artifacts/cache/fixtures`` (``COREOS_INFRA_FIXTURES_CACHE`` overrides).
  Its images are read-only: copy a file before modifying it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from coreos_infra.fixtures import FixtureMirror, ensure_mirror

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def fixture_mirror() -> FixtureMirror:
    cache = os.environ.get("COREOS_INFRA_FIXTURES_CACHE")
    return ensure_mirror(Path(cache) if cache else None)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist (``invoke test`` runs ``-n 2 --dist loadgroup``): every module that boots QEMU
    runs on one worker, one boot after another (two TCG guests on 2 cores would both crawl), while the
    other worker takes the remaining modules, each whole (its module-scoped builds made once)."""
    if not config.pluginmanager.hasplugin("xdist"):
        return
    booting = {item.module.__name__ for item in items if item.get_closest_marker("boot") and item.module}
    for item in items:
        name = item.module.__name__ if item.module else item.nodeid
        item.add_marker(pytest.mark.xdist_group("qemu" if name in booting else name))
