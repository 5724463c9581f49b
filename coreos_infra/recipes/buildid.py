"""Build identity: a SHA-256 over the canonical form of everything that determines a build's output.

The canonical form is compact JSON with sorted keys of: the site and target models (as data, so comments
and key order in the YAML do not matter; file system locations are left out), the host name, every file
of every overlay used (relative path and SHA-256, following symlinked directories: what the render can
read), the base image release, the firmware version and the SHA-256 of its archive, the builder version
and its errata list, and a salted digest of any secret file the render reads.
Same inputs, same ID; any change to one of them, a new ID.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from coreos_infra import __version__
from coreos_infra.recipes.model import Overlay
from coreos_infra.recipes.overlay import overlay_files

# Bump (append) when a render bug is fixed so that builds made with the bug get a new ID.
ERRATA: tuple[str, ...] = ()
FORMAT = 1
_SKIP_FIELDS = {"path", "source", "location", "template", "checks", "settings"}  # settings: from options


def canonical(value: Any) -> Any:
    """Plain JSON-able data for a model value."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: canonical(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if f.name not in _SKIP_FIELDS
        }
    if isinstance(value, dict):
        return {str(k): canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [canonical(v) for v in value]
    if isinstance(
        value,
        ipaddress.IPv4Address | ipaddress.IPv6Address | ipaddress.IPv4Network | ipaddress.IPv6Network | Path,
    ):
        return str(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"cannot put {type(value).__name__} into a build identity")


def overlay_digest(overlay: Overlay) -> dict[str, str]:
    return {
        str(p.relative_to(overlay.path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in overlay_files(overlay)
    }


def build_identity(
    *,
    site: Any,
    target: Any,
    host: str | None,
    overlays: Iterable[Overlay],
    base_release: str,
    firmware_version: str,
    firmware_sha256: str = "",
    secrets: Iterable[bytes] = (),
    extra: dict[str, Any] | None = None,
) -> tuple[str, bytes]:
    """Return ``(build_id, canonical_bytes)``."""
    doc = {
        "format": FORMAT,
        "builder": {"version": __version__, "errata": list(ERRATA)},
        "site": canonical(site),
        "target": canonical(target),
        "host": host,
        "overlays": {o.name: overlay_digest(o) for o in overlays},
        "base_release": base_release,
        "firmware_version": firmware_version,
        "firmware_sha256": firmware_sha256,
        "secrets": [hashlib.sha256(b"coreos-infra build identity\0" + s).hexdigest() for s in secrets],
        "extra": canonical(extra or {}),
    }
    blob = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    return hashlib.sha256(blob).hexdigest(), blob
