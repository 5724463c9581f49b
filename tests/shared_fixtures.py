"""Where the upstream corpora (Butane cases, coreos-installer fixtures, Ignition schemas) are.

``$COREOS_INFRA_SHARED_FIXTURES`` if set, else ``../shared/fixtures`` next to the checkout. Tests that need
a corpus that is not there skip with one reason saying how to get it (``scripts/fetch-upstream-fixtures``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ENV = "COREOS_INFRA_SHARED_FIXTURES"
ROOT = Path(__file__).resolve().parent.parent


def fixtures_root() -> Path:
    value = os.environ.get(ENV)
    return Path(value) if value else ROOT.parent / "shared" / "fixtures"


def corpus(name: str) -> Path:
    """The path of corpus ``name`` (``coreos-installer/iso``, ``butane-cases`` ...); it may not exist."""
    return fixtures_root() / name


def missing_reason(*names: str) -> str | None:
    missing = [n for n in names if not corpus(n).is_dir()]
    if not missing:
        return None
    return (
        f"upstream corpus {', '.join(missing)} not found under {fixtures_root()} "
        f"(set {ENV} or run scripts/fetch-upstream-fixtures)"
    )


def needs(*names: str) -> pytest.MarkDecorator:
    """Mark a test (or, as ``pytestmark``, a module) as needing the corpora ``names``."""
    reason = missing_reason(*names)
    return pytest.mark.skipif(reason is not None, reason=reason or "")


def require(*names: str) -> None:
    """Skip the running test (or fixture) when a corpus is missing."""
    reason = missing_reason(*names)
    if reason is not None:
        pytest.skip(reason)
