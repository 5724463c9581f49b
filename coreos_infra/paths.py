"""Where the project keeps its inputs and outputs.

Library functions take paths as arguments; these helpers only compute the defaults that the CLI and the
Invoke tasks pass in.
"""

from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    """The checkout holding ``recipes/`` and ``overlays/`` (override with ``COREOS_INFRA_ROOT``)."""
    env = os.environ.get("COREOS_INFRA_ROOT")
    if env:
        return Path(env).resolve()
    return Path(__file__).resolve().parent.parent


def artifacts_dir(root: Path | None = None) -> Path:
    return (root or project_root()) / "artifacts"


def cache_dir(root: Path | None = None) -> Path:
    return artifacts_dir(root) / "cache"
