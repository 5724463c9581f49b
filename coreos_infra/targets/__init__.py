"""Target builders, one module per kind (``iso``, ``pxe``, ``rpi4``, ``metal``).

Each module defines ``build(req: BuildRequest) -> BuildResult``; modules are imported on demand.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from coreos_infra.build import BuildRequest, BuildResult
from coreos_infra.errors import CoreosInfraError

KINDS = ("iso", "pxe", "rpi4", "metal")


def load_builder(kind: str) -> Callable[[BuildRequest], BuildResult]:
    if kind not in KINDS:
        raise CoreosInfraError(f"unknown target kind {kind!r}; expected one of: {', '.join(KINDS)}")
    module = importlib.import_module(f"coreos_infra.targets.{kind}")
    builder: Callable[[BuildRequest], BuildResult] = module.build
    return builder
