"""Target kinds (``iso``, ``pxe``, ``rpi4``, ``metal``, ``qemu``, ...): one module per kind.

Every module of this package except :mod:`~coreos_infra.targets.base` declares one
:class:`~coreos_infra.targets.base.Target` subclass. The first use of :data:`REGISTRY` (kind -> target
class), :class:`Kind` or :data:`KINDS` imports them all, so adding a kind is adding a module (plus a
recipe in ``recipes/`` and its tests). Read target facts from the registry::

    from coreos_infra.targets import REGISTRY
    t = REGISTRY["metal"]
    t.bases[0], t.arches[0], t.output.artifact_name("lab-dns1-metal"), t.boot.medium
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Any

from coreos_infra.build import BuildRequest, BuildResult
from coreos_infra.targets.base import Arch, Base, BootProfile, Output, Target, load_all, target


def __getattr__(name: str) -> Any:
    # REGISTRY, Kind and KINDS need every target module imported; import them on first use, so that
    # the modules the targets build on may import coreos_infra.targets.base without a cycle.
    if name == "REGISTRY":
        return load_all()
    if name == "KINDS":
        return tuple(sorted(load_all()))
    if name == "Kind":
        return StrEnum("Kind", {k.upper(): k for k in sorted(load_all())})
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load_builder(kind: str) -> Callable[[BuildRequest], BuildResult]:
    """The build function of ``kind``."""
    return target(kind)().build


__all__ = [
    "KINDS",
    "REGISTRY",
    "Arch",
    "Base",
    "BootProfile",
    "Kind",
    "Output",
    "Target",
    "load_builder",
    "target",
]
