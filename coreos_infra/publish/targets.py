"""Target facts publishing needs (arch, stream platform/format, which file is which artifact kind).

ONE function, :func:`target_facts`, reads them from a build's meta.json (kind, arch, target and the
builder's own fields) and, for the disk kinds, the output format and file suffix from the target
registry (``coreos_infra.targets.REGISTRY[kind].output``).

Stream names (FCOS stream metadata, ``architectures.<arch>.artifacts.<platform>.formats.<format>``): the
platform is the target name; the format and kinds follow FCOS:

| target kind | format | kinds |
|---|---|---|
| iso (usb, live) | ``iso`` | ``disk`` (the ISO) |
| pxe | ``pxe`` | ``kernel``, ``initramfs``, ``rootfs`` |
| rpi4, metal | ``raw.xz`` | ``disk`` |
| qemu | ``qcow2`` | ``disk`` |
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from coreos_infra.errors import CoreosInfraError


def _disk_format(kind: str) -> tuple[str, str] | None:
    """(stream format, file suffix) of a disk-image kind's main artifact, from the target registry."""
    from coreos_infra.targets import REGISTRY

    target = REGISTRY.get(kind)
    if target is None or target.boot.medium == "pxe":
        return None
    return target.output.format, target.output.suffix


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
    if kind == "pxe":
        pxe = meta.get("pxe") or {}
        wanted = {
            "kernel": pxe.get("kernel") or "vmlinuz",
            "initramfs": "initramfs.img",
            "rootfs": "rootfs.img",
        }
        kinds = {k: n for k, n in wanted.items() if n in names}
        if "kernel" not in kinds or "initramfs" not in kinds:
            raise CoreosInfraError(f"{source}: the PXE build lists no kernel/initramfs artifact")
        return TargetFacts(arch=arch, platform=target, format="pxe", kinds=kinds)
    disk_format = _disk_format(kind)
    if disk_format is None:
        raise CoreosInfraError(
            f"{source}: unknown target kind {kind!r}: cannot publish it in stream metadata"
        )
    fmt, suffix = disk_format
    disks = [n for n in names if n.endswith(suffix)]
    if not disks:
        raise CoreosInfraError(f"{source}: no {suffix} artifact in the build")
    unc: dict[str, str] = {}
    image = meta.get("image") or {}
    if isinstance(image, dict) and isinstance(image.get("uncompressed_sha256"), str):
        unc[disks[0]] = image["uncompressed_sha256"]
    return TargetFacts(
        arch=arch, platform=target, format=fmt, kinds={"disk": disks[0]}, uncompressed_sha256=unc
    )
