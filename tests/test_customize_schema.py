"""The one Ignition schema table (``coreos_infra.ignition.types``) matches Ignition's JSON schemas.

coreos-installer re-serializes user configs through structs generated from these schemas: a property
that is required is always written, a scalar whose type includes ``null`` is written as ``null`` when
absent, and every other property (objects, arrays, non-nullable scalars) is omitted when absent. The
schema view of each version (:func:`derive`, from the ``ignition-schemas`` corpus,
``tests/shared_fixtures.py``) must equal the view of the hand-written table for that version
(:func:`table_view`): every object's keys, their kind (required, nullable, optional), value types and
array item nullability.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from shared_fixtures import corpus, needs

from coreos_infra.ignition.types import (
    BOOL,
    INT,
    STR,
    SUPPORTED_VERSIONS,
    TYPES,
    ListOf,
    fields_for,
    minor,
)

SCHEMAS = corpus("ignition-schemas")
VERSIONS = ("3.0.0", "3.1.0", "3.2.0", "3.3.0", "3.4.0", "3.5.0", "3.6.0")
Derived = dict[str, tuple[tuple[str, str, str], ...]]


def _resolve(schema: dict[str, Any], ref: str) -> tuple[str, dict[str, Any]]:
    node: Any = schema
    parts = ref.removeprefix("#/").split("/")
    for p in parts:
        node = node[p]
    return parts[-1], node


def derive(schema: dict[str, Any]) -> dict[str, tuple[tuple[str, str, str], ...]]:
    """type name -> ((json key, kind R/N/O, value type), ...) sorted by key."""
    types: dict[str, tuple[tuple[str, str, str], ...]] = {}

    def value_type(prop: dict[str, Any], hint: str) -> tuple[str, bool]:
        if "$ref" in prop:
            name, target = _resolve(schema, prop["$ref"])
            if target.get("type") == "object" or "allOf" in target or "properties" in target:
                return object_type(name, target), False
            return value_type(target, name)
        t = prop.get("type")
        nullable = isinstance(t, list) and "null" in t
        if isinstance(t, list):
            t = [x for x in t if x != "null"][0]
        if t == "array":
            item, item_null = value_type(prop["items"], hint + "Item")
            return "[" + item + ("?" if item_null else "") + "]", nullable
        if t == "object" or "allOf" in prop:
            return object_type(hint, prop), nullable
        assert t in ("string", "integer", "boolean"), prop
        return str(t), nullable

    def object_type(name: str, node: dict[str, Any]) -> str:
        props: dict[str, Any] = {}
        required: set[str] = set()
        parts = [node]
        while parts:
            part = parts.pop(0)
            if "$ref" in part:
                parts.insert(0, _resolve(schema, part["$ref"])[1])
                continue
            for sub in part.get("allOf", []):
                parts.append(sub)
            props.update(part.get("properties", {}))
            required |= set(part.get("required", []))
        if name in types:
            return "@" + name
        types[name] = ()
        fields = []
        for key in sorted(props):
            vt, nullable = value_type(props[key], name + "." + key)
            kind = "R" if key in required else "N" if nullable else "O"
            fields.append((key, kind, vt))
        types[name] = tuple(fields)
        return "@" + name

    object_type("config", schema)
    return types


def derive_version(version: str) -> Derived:
    return derive(json.loads((SCHEMAS / f"ignition-{version}.json").read_text()))


def table_view(version: str, derived: Derived) -> tuple[Derived, list[str]]:
    """The table's fields of ``version`` in :func:`derive`'s shape, object types named as the schema names
    them (found by walking both from the root), and the schema types two table types disagree on."""
    spec_minor = minor(version)
    out: Derived = {}
    conflicts: list[str] = []

    def vtype(t: str | ListOf, schema_vtype: str, null_items: bool) -> str:
        if isinstance(t, ListOf):
            inner = schema_vtype[1:-1].rstrip("?") if schema_vtype.startswith("[") else ""
            return "[" + vtype(t.item, inner, False) + ("?" if null_items else "") + "]"
        if t in TYPES:
            name = schema_vtype[1:] if schema_vtype.startswith("@") else t
            struct(t, name)
            return "@" + name
        return {STR: "string", INT: "integer", BOOL: "boolean"}[t]

    def struct(type_name: str, schema_name: str) -> None:
        schema_fields = {k: vt for k, _, vt in derived.get(schema_name, ())}
        fields = sorted(fields_for(type_name, spec_minor), key=lambda f: f.key)
        view = tuple(
            (
                f.key,
                f.kind(spec_minor),
                vtype(f.type, schema_fields.get(f.key, ""), f.null_items(spec_minor)),
            )
            for f in fields
        )
        if out.setdefault(schema_name, view) != view:
            conflicts.append(f"{schema_name} ({type_name})")

    struct("Config", "config")
    return out, conflicts


def test_supported_versions_are_the_schema_versions() -> None:
    assert SUPPORTED_VERSIONS == VERSIONS


@needs("ignition-schemas")
@pytest.mark.parametrize("version", VERSIONS)
def test_table_matches_schemas(version: str) -> None:
    derived = derive_version(version)
    view, conflicts = table_view(version, derived)
    assert conflicts == []
    assert view == derived


@needs("ignition-schemas")
def test_table_view_detects_a_wrong_kind() -> None:
    derived = derive_version("3.3.0")
    file_ = dict((k, (kind, t)) for k, kind, t in derived["file"])
    assert file_["mode"] == ("N", "integer")  # the view compares kinds: one changed kind is a mismatch
    broken = dict(
        derived, file=tuple((k, "R" if k == "mode" else kind, t) for k, kind, t in derived["file"])
    )
    assert table_view("3.3.0", broken)[0] != broken


def test_table_has_upstream_nullability() -> None:
    files = {f.key: f for f in fields_for("File", 3)}
    assert (files["path"].kind(3), files["path"].type) == ("R", STR)
    assert files["mode"].kind(3) == "N" and files["overwrite"].kind(3) == "N"
    assert (files["contents"].kind(3), files["contents"].type) == ("O", "Resource")
    partition = {f.key: f.kind(3) for f in fields_for("Partition", 3)}
    assert partition["number"] == "O" and partition["sizeMiB"] == "N"
    ign = {f.key: f for f in fields_for("Ignition", 3)}
    assert ign["version"].kind(3) == "O" and ign["version"].kind(4) == "R"
    assert "kernelArguments" not in {f.key for f in fields_for("Config", 2)}
    assert "httpHeaders" not in {f.key for f in fields_for("Resource", 0)}
    assert "httpHeaders" in {f.key for f in fields_for("Resource", 1)}
    no_proxy = {f.key: f for f in fields_for("Proxy", 3)}["noProxy"]
    assert no_proxy.null_items(3) and not no_proxy.null_items(4)
