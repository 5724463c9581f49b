"""The Ignition config model used across coreos-infra.

Configs are plain ``dict`` objects shaped like Ignition JSON (camelCase keys). This package parses any
spec 3.0.0–3.6.0 config (:func:`parse`), validates it with Ignition's rules (:func:`validate`), merges child
configs with Ignition's semantics (:func:`merge`) and serializes compactly or pretty, byte-compatible with
Butane (:func:`dumps`).
"""

from __future__ import annotations

import gzip
import json
import re
from typing import TYPE_CHECKING, Any

from coreos_infra.errors import InputError, Location
from coreos_infra.ignition.reader import Problem, Reader
from coreos_infra.ignition.report import (
    ERROR,
    INFO,
    WARNING,
    Report,
    format_path,
    format_reports,
    has_errors,
)
from coreos_infra.ignition.types import (
    BOOL,
    EXPERIMENTAL_VERSIONS,
    INT,
    STR,
    SUPPORTED_VERSIONS,
    ListOf,
    minor,
)

if TYPE_CHECKING:
    from coreos_infra.ignition.merging import Origins

# The serializer, the merger and the validation rules are imported when first used: the coreos-installer
# reader (coreos_infra.ignition.installer) needs only the table and the reader.

__all__ = [
    "ERROR",
    "INFO",
    "WARNING",
    "IgnitionError",
    "Report",
    "SUPPORTED_VERSIONS",
    "append",
    "decode_source",
    "dumps",
    "format_path",
    "format_reports",
    "has_errors",
    "merge",
    "merge_with_origins",
    "normalize",
    "parse",
    "spec_version",
    "unknown_keys",
    "validate",
]

_SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")


class IgnitionError(InputError):
    """An Ignition config that cannot be parsed or is invalid."""

    def __init__(
        self, message: str, location: Location | None = None, *, reports: list[Report] | None = None
    ) -> None:
        super().__init__(message, location)
        self.reports = reports or []


def dumps(config: dict[str, Any], pretty: bool = False) -> bytes:
    """Serialize like Butane (:func:`coreos_infra.ignition.jsonfmt.dumps`)."""
    from coreos_infra.ignition import jsonfmt

    return jsonfmt.dumps(config, pretty)


def normalize(value: Any, type_name: str | ListOf = "Config") -> Any:
    """Go key order and ``omitempty`` (:func:`coreos_infra.ignition.jsonfmt.normalize`)."""
    from coreos_infra.ignition import jsonfmt

    return jsonfmt.normalize(value, type_name)


def merge(parent: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    """Ignition's merge of ``child`` over ``parent`` (:func:`coreos_infra.ignition.merging.merge`)."""
    from coreos_infra.ignition import merging

    return merging.merge(parent, child)


def merge_with_origins(parent: dict[str, Any], child: dict[str, Any]) -> tuple[dict[str, Any], Origins]:
    """:func:`merge`, and which input each value came from."""
    from coreos_infra.ignition import merging

    return merging.merge_with_origins(parent, child)


def spec_version(config: dict[str, Any]) -> str:
    """The ``ignition.version`` of a config (``""`` if absent)."""
    ign = config.get("ignition")
    if isinstance(ign, dict) and isinstance(ign.get("version"), str):
        return str(ign["version"])
    return ""


_GO_TYPES = {STR: "string", INT: "int", BOOL: "bool"}


def _json_kind(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int | float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return "null"


def _unmarshal_error(p: Problem) -> str:
    """A wrong JSON type, worded like Go's ``encoding/json``."""
    if isinstance(p.expected, ListOf):
        into = "an array"
    elif p.expected in _GO_TYPES:
        into = f"a {_GO_TYPES[p.expected]}"
    else:
        into = "an object"
    return f"{format_path(p.path)}: cannot unmarshal {_json_kind(p.value)} into {into}"


def parse(data: bytes | str, *, filename: str | None = None) -> dict[str, Any]:
    """Parse an Ignition config of spec 3.0.0–3.6.0 (or 3.7.0-experimental).

    Raises :class:`IgnitionError` (a CoreosInfraError) with line/column on bad JSON, on an unknown or
    unparsable version and on values of the wrong JSON type. The config is returned as parsed (no defaults).
    """
    raw = data.encode() if isinstance(data, str) else data
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise IgnitionError(f"config is not valid UTF-8 (byte {e.start})", Location(file=filename)) from None
    from coreos_infra.ignition.jsonfmt import go_syntax_error, offset_to_line_col

    syntax = go_syntax_error(text)
    if syntax is not None:
        msg, offset = syntax
        line, col = offset_to_line_col(raw, offset)
        raise IgnitionError(msg, Location(file=filename, line=line, column=col))
    obj = json.loads(text)
    if not isinstance(obj, dict):
        raise IgnitionError("config must be a JSON object", Location(file=filename, line=1, column=1))
    version = spec_version(obj)
    if not _SEMVER.match(version):
        raise IgnitionError(
            "invalid config version (couldn't parse)", Location(file=filename, path="$.ignition.version")
        )
    if version not in SUPPORTED_VERSIONS + EXPERIMENTAL_VERSIONS:
        raise IgnitionError(
            f"unsupported config version {version}", Location(file=filename, path="$.ignition.version")
        )
    reader = Reader()  # every field of every version, like Go's decoder
    reader.struct(obj, "Config", ())
    if reader.problems:
        raise IgnitionError("; ".join(_unmarshal_error(p) for p in reader.problems), Location(file=filename))
    return obj


def unknown_keys(config: dict[str, Any], spec_minor: int | None = None) -> list[Report]:
    """``unused key X`` warnings for keys the config's spec version does not know."""
    if spec_minor is None:
        try:
            spec_minor = minor(spec_version(config))
        except (ValueError, IndexError):
            spec_minor = 6
    reader = Reader(spec_minor)
    reader.struct(config, "Config", ())
    return [Report(WARNING, f"unused key {path[-1]}", path) for path in reader.unknown]


def validate(config: dict[str, Any]) -> list[Report]:
    """Ignition's validation rules on a config: unknown keys (warnings), duplicates, then per-type checks."""
    try:
        spec_minor = minor(spec_version(config))
    except (ValueError, IndexError):
        spec_minor = 6
    from coreos_infra.ignition.rules import validate as validate_rules

    return unknown_keys(config, spec_minor) + validate_rules(config, spec_minor=spec_minor)


def decode_source(source: str, compression: str | None = None) -> bytes:
    """The bytes of a ``data:`` URL source, gunzipped when ``compression`` is ``gzip``."""
    from coreos_infra.ignition.urls import decode_data_url

    try:
        data = decode_data_url(source)
    except ValueError as e:
        raise IgnitionError(f"invalid data URL: {e}") from None
    if compression == "gzip":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as e:
            raise IgnitionError(f"invalid gzip data: {e}") from None
    return data


def append(parent: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    """Ignition's ``merge`` of a child config (alias kept for readability at call sites)."""
    return merge(parent, child)
