"""Parse and re-serialize Ignition 3.x configs the way coreos-installer does.

coreos-installer reads user configs (``--dest-ignition``, ``--live-ignition``) into typed structs of their
own spec version and writes them back out: keys sorted, unknown keys dropped (with a warning), absent
nullable scalars written as ``null``, absent objects/arrays/non-nullable scalars omitted. The field table
comes from Ignition's JSON schemas (:mod:`coreos_infra.live.iso.ignition_types`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from coreos_infra.errors import CoreosInfraError
from coreos_infra.live.iso.ignition_types import FIELDS

GENERATED_VERSION = "3.3.0"
SUPPORTED_VERSIONS = tuple(FIELDS)
I64_MIN, I64_MAX = -(1 << 63), (1 << 63) - 1
_SEMVER = re.compile(r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?")


class IgnitionConfigError(CoreosInfraError):
    """A config that coreos-installer would refuse to parse."""


@dataclass(frozen=True)
class ParsedConfig:
    """A config normalized to its version's struct layout (a plain JSON value in serialization order)."""

    version: str
    value: dict[str, Any]
    warnings: tuple[str, ...] = ()

    def to_bytes(self, *, newline: bool = True) -> bytes:
        return serialize(self.value, newline=newline)


def serialize(value: Any, *, newline: bool = True) -> bytes:
    """Compact JSON as serde_json writes it (insertion order kept), plus ``\\n`` if asked."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.encode() + (b"\n" if newline else b"")


class _Pairs(dict[str, Any]):
    duplicates: list[str]


def _pairs_hook(pairs: list[tuple[str, Any]]) -> _Pairs:
    d = _Pairs()
    d.duplicates = []
    for k, v in pairs:
        if k in d:
            d.duplicates.append(k)
        d[k] = v
    return d


def _describe(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return f"boolean `{str(v).lower()}`"
    if isinstance(v, int):
        return f"integer `{v}`"
    if isinstance(v, float):
        return f"floating point `{v}`"
    if isinstance(v, str):
        return f"string {json.dumps(v)}"
    if isinstance(v, list):
        return "sequence"
    return "map"


class _Normalizer:
    def __init__(self, version: str) -> None:
        self.types = FIELDS[version]
        self.warnings: list[str] = []

    def value(self, v: Any, vtype: str, path: str) -> Any:
        if vtype.startswith("@"):
            return self.struct(v, vtype[1:], path)
        if vtype.startswith("["):
            inner = vtype[1:-1]
            nullable = inner.endswith("?")
            inner = inner.rstrip("?")
            if not isinstance(v, list):
                raise IgnitionConfigError(f"{path}: invalid type: {_describe(v)}, expected a sequence")
            out: list[Any] = []
            for i, item in enumerate(v):
                if item is None and nullable:
                    out.append(None)
                else:
                    out.append(self.value(item, inner, f"{path}.{i}"))
            return out
        if vtype == "string" and isinstance(v, str):
            return v
        if vtype == "boolean" and isinstance(v, bool):
            return v
        if vtype == "integer" and isinstance(v, int) and not isinstance(v, bool):
            if not I64_MIN <= v <= I64_MAX:
                raise IgnitionConfigError(f"{path}: integer {v} out of range")
            return v
        expected = {"string": "a string", "boolean": "a boolean", "integer": "i64"}[vtype]
        raise IgnitionConfigError(f"{path}: invalid type: {_describe(v)}, expected {expected}")

    def struct(self, v: Any, tname: str, path: str) -> dict[str, Any]:
        if not isinstance(v, dict):
            raise IgnitionConfigError(f"{path}: invalid type: {_describe(v)}, expected struct {tname}")
        fields = self.types[tname]
        known = {name for name, _, _ in fields}
        for dup in getattr(v, "duplicates", []):
            if dup in known:
                raise IgnitionConfigError(f"{path}: duplicate field `{dup}`")
        for key in v:
            if key not in known:
                self.warnings.append(f"unused key: {path}.{key}")
        out: dict[str, Any] = {}
        for name, kind, vtype in fields:
            present = name in v
            item = v.get(name)
            if kind == "R":
                if not present:
                    raise IgnitionConfigError(f"{path}: missing field `{name}`")
                out[name] = self.value(item, vtype, f"{path}.{name}")
            elif item is None:
                if kind == "N":
                    out[name] = None
            else:
                out[name] = self.value(item, vtype, f"{path}.{name}")
        return out


def parse_config(data: bytes) -> ParsedConfig:
    """Parse an Ignition 3.0–3.6 config; raise :class:`IgnitionConfigError` like ignition-config-rs."""
    try:
        raw = json.loads(data, object_pairs_hook=_pairs_hook)
    except (ValueError, UnicodeDecodeError) as e:
        raise IgnitionConfigError(f"serialization error: {e}") from None
    ign = raw.get("ignition") if isinstance(raw, dict) else None
    version = ign.get("version") if isinstance(ign, dict) else None
    if not isinstance(version, str):
        raise IgnitionConfigError("serialization error: missing field `ignition.version`")
    if not _SEMVER.fullmatch(version):
        raise IgnitionConfigError(f"couldn't parse config version: {version}")
    if version not in FIELDS:
        raise IgnitionConfigError(f"unsupported config version: {version}")
    norm = _Normalizer(version)
    value = norm.struct(raw, "config", "$")
    return ParsedConfig(version, value, tuple(norm.warnings))


def new_config() -> dict[str, Any]:
    """An empty generated config (spec 3.3.0)."""
    return {"ignition": {"version": GENERATED_VERSION}}
