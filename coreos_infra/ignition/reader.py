"""The one reader of Ignition configs: a JSON value walked along the schema table (:mod:`.types`).

It checks every value against its field's type and returns the value normalized to the struct layout of
one spec version. What it finds is data (:class:`Problem`, unknown key paths); the two front ends say it
in their upstream's words:

- :func:`coreos_infra.ignition.parse` reads like Go's ``encoding/json`` (Butane, Ignition): ``lenient`` —
  ``null`` is accepted anywhere, required fields are not enforced, fields come in the document's order;
- :func:`coreos_infra.ignition.installer.parse_config` reads like coreos-installer (serde): ``strict`` —
  required fields, nullability, duplicate fields and integer ranges are checked, and the normalized value
  has its keys sorted, absent nullable fields as ``null`` and unknown keys dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from coreos_infra.ignition.report import PathT
from coreos_infra.ignition.types import (
    BOOL,
    INT,
    LATEST_MINOR,
    NULLABLE,
    REQUIRED,
    STR,
    TYPES,
    Field,
    ListOf,
)

I64_MIN, I64_MAX = -(1 << 63), (1 << 63) - 1

TYPE = "type"  # the value has the wrong JSON type for ``expected``
RANGE = "range"  # an integer outside i64
MISSING = "missing"  # a required field is absent (``key``)
DUPLICATE = "duplicate"  # a known field appears twice in one object (``key``)


@dataclass(frozen=True)
class Problem:
    """Something wrong at ``path``: a wrong type (``expected``: a scalar, :class:`ListOf` or type name)."""

    what: str
    path: PathT
    value: Any = None
    expected: str | ListOf = ""
    key: str = ""


class DuplicateKeys(dict[str, Any]):
    """A JSON object that remembers the keys it saw twice (see :func:`pairs_hook`)."""

    duplicates: list[str]


def pairs_hook(pairs: list[tuple[str, Any]]) -> DuplicateKeys:
    """``json.loads(..., object_pairs_hook=pairs_hook)``: the last value wins, duplicates are recorded."""
    d = DuplicateKeys()
    d.duplicates = []
    for k, v in pairs:
        if k in d:
            d.duplicates.append(k)
        d[k] = v
    return d


def _scalar_ok(value: Any, t: str) -> bool:
    if t == STR:
        return isinstance(value, str)
    if t == BOOL:
        return isinstance(value, bool)
    return t == INT and isinstance(value, int) and not isinstance(value, bool)


@dataclass
class Reader:
    """One walk of one config; ``problems`` and ``unknown`` fill up as it goes."""

    spec_minor: int = LATEST_MINOR
    strict: bool = False
    problems: list[Problem] = field(default_factory=list)
    unknown: list[PathT] = field(default_factory=list)
    _layout: dict[str, tuple[Field, ...]] = field(default_factory=dict, repr=False)

    def fields(self, type_name: str) -> tuple[Field, ...]:
        """The fields of ``type_name`` in this spec version: sorted by key (strict) or in table order."""
        if type_name not in self._layout:
            known = tuple(f for f in TYPES[type_name] if f.since <= self.spec_minor)
            self._layout[type_name] = tuple(sorted(known, key=lambda f: f.key)) if self.strict else known
        return self._layout[type_name]

    def value(self, v: Any, t: str | ListOf, path: PathT, *, null_items: bool = False) -> Any:
        if v is None and not self.strict:
            return None
        if isinstance(t, ListOf):
            if not isinstance(v, list):
                self.problems.append(Problem(TYPE, path, v, t))
                return v
            return [
                None
                if item is None and (null_items or not self.strict)
                else self.value(item, t.item, (*path, i))
                for i, item in enumerate(v)
            ]
        if t in TYPES:
            return self.struct(v, t, path)
        if not _scalar_ok(v, t):
            self.problems.append(Problem(TYPE, path, v, t))
        elif t == INT and self.strict and not I64_MIN <= v <= I64_MAX:
            self.problems.append(Problem(RANGE, path, v, t))
        return v

    def struct(self, v: Any, type_name: str, path: PathT) -> Any:
        if not isinstance(v, dict):
            self.problems.append(Problem(TYPE, path, v, type_name))
            return v
        fields = self.fields(type_name)
        by_key = {f.key: f for f in fields}
        if not self.strict:
            for key, item in v.items():
                if key in by_key:
                    self.value(item, by_key[key].type, (*path, key))
                else:
                    self.unknown.append((*path, key))
            return v
        for dup in getattr(v, "duplicates", ()):
            if dup in by_key:
                self.problems.append(Problem(DUPLICATE, path, key=dup))
        self.unknown += [(*path, key) for key in v if key not in by_key]
        out: dict[str, Any] = {}
        for f in fields:
            kind = f.kind(self.spec_minor)
            if kind == REQUIRED and f.key not in v:
                self.problems.append(Problem(MISSING, path, key=f.key))
            elif v.get(f.key) is not None or kind == REQUIRED:
                nulls = f.null_items(self.spec_minor)
                out[f.key] = self.value(v[f.key], f.type, (*path, f.key), null_items=nulls)
            elif kind == NULLABLE:
                out[f.key] = None
        return out
