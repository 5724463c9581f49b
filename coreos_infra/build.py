"""The contract between the build pipeline and the target builders.

recipe + site -> Butane -> Ignition (``coreos_infra.recipes``) -> verified base artifacts
(``coreos_infra.fetch``) -> a target builder (``coreos_infra.targets.REGISTRY[kind]``) -> artifact +
``meta.json``. A builder is a pure-ish function of its :class:`BuildRequest`: it reads only the
request and writes only under ``out_dir``, each output atomically.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coreos_infra.fsutil import sha256_file, write_atomic


@dataclass(frozen=True)
class BuildRequest:
    target: str  # recipe name, e.g. "usb", "rpi4"
    kind: str  # target kind: a key of coreos_infra.targets.REGISTRY
    arch: str  # "x86_64", "aarch64"
    ignition: bytes  # the final Ignition config (compact JSON)
    base: Mapping[str, Path]  # verified inputs by role: iso, kernel, initramfs, rootfs, disk, firmware
    base_release: str
    build_id: str
    out_dir: Path
    cache_dir: Path
    # the recipe's target options: parsed by the target class (TargetRecipe.settings), or a plain mapping
    options: Mapping[str, Any] | Any = field(default_factory=dict)
    name: str = "coreos-infra"  # file name stem of the outputs, e.g. "lab-dns1-rpi4"
    contains_secrets: bool = False  # the Ignition carries password hashes or keys


@dataclass(frozen=True)
class BuildResult:
    artifacts: list[Path]  # the files a user flashes or serves, first one is the main artifact
    meta: dict[str, Any] = field(default_factory=dict)  # builder-specific facts (firmware version, kargs...)


def artifact_meta(path: Path) -> dict[str, Any]:
    return {"name": path.name, "size": path.stat().st_size, "sha256": sha256_file(path)}


def write_meta(req: BuildRequest, result: BuildResult) -> Path:
    """Write ``meta.json`` beside the artifacts (atomically) and return its path."""
    meta = {
        "target": req.target,
        "kind": req.kind,
        "arch": req.arch,
        "build_id": req.build_id,
        "base_release": req.base_release,
        "contains_secrets": req.contains_secrets,
        "artifacts": [artifact_meta(p) for p in result.artifacts],
        **result.meta,
    }
    path = req.out_dir / "meta.json"
    write_atomic(path, (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode())
    return path
