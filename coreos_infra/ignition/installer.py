"""Parse and re-serialize Ignition 3.x configs the way coreos-installer does.

coreos-installer reads user configs (``--dest-ignition``, ``--live-ignition``) into typed structs of their
own spec version and writes them back out: keys sorted, unknown keys dropped (with a warning), absent
nullable scalars written as ``null``, absent objects/arrays/non-nullable scalars omitted. The walk is the
shared :class:`~coreos_infra.ignition.reader.Reader` (strict) over the one schema table
(:mod:`coreos_infra.ignition.types`); this module words what it finds like serde and ignition-config-rs.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from coreos_infra.errors import CoreosInfraError
from coreos_infra.ignition.reader import DUPLICATE, MISSING, RANGE, Problem, Reader, pairs_hook
from coreos_infra.ignition.report import format_path
from coreos_infra.ignition.types import BOOL, INT, STR, SUPPORTED_VERSIONS, ListOf, minor

GENERATED_VERSION = "3.3.0"
_SEMVER = re.compile(r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?")
_EXPECTED = {STR: "a string", BOOL: "a boolean", INT: "i64"}
# serde names a struct by its ``#[serde(rename)]`` in ignition-config-rs: the schema's name, which is the
# table's type name with a lower-case first letter except for these
_SERDE_NAMES = {"Config": "Config", "IgnitionConfig": "ignition-config", "TLS": "SecurityTls",
                "HTTPHeader": "HttpHeadersItem", "NodeUser": "NodeUser", "NodeGroup": "NodeGroup",
                "PasswdUser": "user", "PasswdGroup": "group", "ConfigRef": "resource"}  # fmt: skip

__all__ = [
    "GENERATED_VERSION",
    "SUPPORTED_VERSIONS",
    "IgnitionConfigError",
    "ParsedConfig",
    "normalize",
    "parse_config",
    "serialize",
]


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


def _struct_name(type_name: str) -> str:
    return _SERDE_NAMES.get(type_name, type_name[:1].lower() + type_name[1:])


def _message(p: Problem) -> str:
    where = format_path(p.path)
    if p.what == MISSING:
        return f"{where}: missing field `{p.key}`"
    if p.what == DUPLICATE:
        return f"{where}: duplicate field `{p.key}`"
    if p.what == RANGE:
        return f"{where}: integer {p.value} out of range"
    if isinstance(p.expected, ListOf):
        expected = "a sequence"
    else:
        expected = _EXPECTED.get(p.expected) or f"struct {_struct_name(p.expected)}"
    return f"{where}: invalid type: {_describe(p.value)}, expected {expected}"


def normalize(value: dict[str, Any], version: str) -> ParsedConfig:
    """``value`` read into the structs of spec ``version``; raise :class:`IgnitionConfigError` on the first
    problem, as serde does."""
    reader = Reader(minor(version), strict=True)
    out = reader.struct(value, "Config", ())
    if reader.problems:
        raise IgnitionConfigError(_message(reader.problems[0]))
    return ParsedConfig(version, out, tuple(f"unused key: {format_path(p)}" for p in reader.unknown))


def parse_config(data: bytes) -> ParsedConfig:
    """Parse an Ignition 3.0–3.6 config; raise :class:`IgnitionConfigError` like ignition-config-rs."""
    try:
        raw = json.loads(data, object_pairs_hook=pairs_hook)
    except (ValueError, UnicodeDecodeError) as e:
        raise IgnitionConfigError(f"serialization error: {e}") from None
    ign = raw.get("ignition") if isinstance(raw, dict) else None
    version = ign.get("version") if isinstance(ign, dict) else None
    if not isinstance(version, str):
        raise IgnitionConfigError("serialization error: missing field `ignition.version`")
    if not _SEMVER.fullmatch(version):
        raise IgnitionConfigError(f"couldn't parse config version: {version}")
    if version not in SUPPORTED_VERSIONS:
        raise IgnitionConfigError(f"unsupported config version: {version}")
    return normalize(raw, version)


def new_config() -> dict[str, Any]:
    """An empty generated config (spec 3.3.0)."""
    return {"ignition": {"version": GENERATED_VERSION}}
