"""Target facts publishing needs (arch, stream platform/format, which file is which artifact kind).

ONE function, :func:`target_facts`, reads them from a build's meta.json (kind, arch, target) and the
target registry: the stream format is ``REGISTRY[kind].output.format`` and which built file is which
stream artifact kind is ``REGISTRY[kind].stream_artifacts(...)`` (by default the main artifact,
``<name><output.suffix>``, is the ``disk``; the PXE target names its ``kernel``, ``initramfs`` and
``rootfs``). A new target kind needs nothing here.

Stream names (FCOS stream metadata, ``architectures.<arch>.artifacts.<platform>.formats.<format>``): the
platform is the target (recipe) name, the format the kind's output format (``iso``, ``pxe``,
``raw.xz``, ``qcow2`` ...), as ``invoke list`` shows under "Target kinds".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from coreos_infra.errors import CoreosInfraError


@dataclass(frozen=True)
class TargetFacts:
    arch: str
    platform: str
    format: str
    kinds: dict[str, str]  # stream artifact kind -> file name in the build
    uncompressed_sha256: dict[str, str] = field(default_factory=dict)  # file name -> sha256 of its content


def target_facts(meta: dict[str, Any], source: str = "meta.json") -> TargetFacts:
    """The facts of the build described by ``meta`` (a parsed meta.json)."""
    kind = meta.get("kind")
    target = meta.get("target")
    arch = meta.get("arch")
    if not isinstance(kind, str) or not isinstance(target, str) or not isinstance(arch, str):
        raise CoreosInfraError(f"{source}: missing kind, target or arch")
    names = [a["name"] for a in meta.get("artifacts", [])]
    from coreos_infra.targets import REGISTRY

    cls = REGISTRY.get(kind)
    if cls is None:
        raise CoreosInfraError(
            f"{source}: unknown target kind {kind!r}: cannot publish it in stream metadata"
        )
    kinds = cls.stream_artifacts(meta, names, source)
    unc: dict[str, str] = {}
    image = meta.get("image") or {}
    disk = kinds.get("disk")
    if disk is not None and isinstance(image, dict) and isinstance(image.get("uncompressed_sha256"), str):
        unc[disk] = image["uncompressed_sha256"]
    return TargetFacts(
        arch=arch, platform=target, format=cls.output.format, kinds=kinds, uncompressed_sha256=unc
    )
