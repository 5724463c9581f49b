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
