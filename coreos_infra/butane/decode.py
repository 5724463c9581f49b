"""Butane YAML → Python values, typed by the target field, with the line/column of every node.

PyYAML only *composes* the document (no implicit typing); every scalar is then converted according to the
schema field it lands in, with go-yaml v3's rules as Butane sees them:

- string fields keep the source text (``1.10``, ``0x10``, ``no`` stay as written); ``!!binary`` gives bytes;
- int fields take plain scalars parsed like Go's ``ParseInt(s, 0, 64)`` (``0644`` is octal), or a float;
- bool fields take ``true/false`` (3 spellings) and the YAML 1.1 words ``yes/no/on/off/y/n``, even quoted;
- ``~``/``null``/empty means absent; duplicate mapping keys are fatal; keys not in the schema are
  ``unused key`` warnings at the key.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from coreos_infra.butane.schema import STRUCTS, fields
from coreos_infra.ignition.report import WARNING, PathT, Report
from coreos_infra.ignition.types import BOOL, INT, STR, ListOf

STR_TAG = "tag:yaml.org,2002:str"
BINARY_TAG = "tag:yaml.org,2002:binary"
_NULLS = ("", "~", "null", "Null", "NULL")
_TRUE = ("true", "True", "TRUE")
_FALSE = ("false", "False", "FALSE")
_OLD_TRUE = ("y", "Y", "yes", "Yes", "YES", "on", "On", "ON")
_OLD_FALSE = ("n", "N", "no", "No", "NO", "off", "Off", "OFF")
_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
_GO_INT = re.compile(r"^[-+]?(0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|0[0-7]*|[1-9][0-9]*)$")


class YAMLSyntaxError(Exception):
    """A YAML syntax error (go-yaml style message)."""


class DecodeError(Exception):
    """Type errors while decoding (go-yaml's ``yaml: unmarshal errors``)."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("yaml: unmarshal errors:\n" + "\n".join(f"  {e}" for e in errors))
        self.errors = errors


@dataclass
class Decoded:
    """A decoded Butane document: values keyed by YAML names, plus where each node is."""

    value: dict[str, Any]
    positions: dict[PathT, tuple[int, int]] = field(default_factory=dict)
    warnings: list[Report] = field(default_factory=list)

    def position(self, path: PathT) -> tuple[int, int] | None:
        """Line/column of ``path``, or of its deepest ancestor present in the YAML."""
        p = tuple(path)
        while True:
            if p in self.positions:
                return self.positions[p]
            if not p:
                return None
            p = p[:-1]

    def has(self, path: PathT) -> bool:
        return tuple(path) in self.positions


def compose(text: str) -> yaml.Node | None:
    """The node tree of the first YAML document (later documents are ignored, like go-yaml)."""
    try:
        loader = yaml.BaseLoader(text)
    except yaml.reader.ReaderError as e:
        if isinstance(e.character, int) and 0xDC80 <= e.character <= 0xDCFF:
            raise YAMLSyntaxError("yaml: invalid leading UTF-8 octet") from None
        raise YAMLSyntaxError("yaml: control characters are not allowed") from None
    try:
        if not loader.check_node():
            return None
        return loader.get_node()
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark is not None else 1
        raise YAMLSyntaxError(f"yaml: line {line}: {_libyaml_message(e)}") from None
    except yaml.YAMLError as e:
        raise YAMLSyntaxError(f"yaml: {e}") from None
    finally:
        loader.dispose()


_LIBYAML_MESSAGES = (
    ("mapping values are not allowed here", "mapping values are not allowed in this context"),
    ("that cannot start any token", "found character that cannot start any token"),
    ("expected <block end>", "did not find expected key"),
    ("expected the node content", "did not find expected node content"),
    ("expected ',' or ']'", "did not find expected ',' or ']'"),
    ("expected ',' or '}'", "did not find expected ',' or '}'"),
    ("expected '-' indicator", "did not find expected '-' indicator"),
)


def _libyaml_message(e: yaml.MarkedYAMLError) -> str:
    """PyYAML's problem text, reworded the way libyaml/go-yaml say it where they differ."""
    problem = str(e.problem or e.context or "")
    for pyyaml_text, libyaml_text in _LIBYAML_MESSAGES:
        if pyyaml_text in problem:
            return libyaml_text
    if problem.startswith("found undefined alias"):
        return f"unknown anchor '{problem.rsplit(' ', 1)[-1].strip(chr(39))}' referenced"
    return problem


def _pos(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _is_plain(node: yaml.ScalarNode) -> bool:
    return node.style is None and node.tag == STR_TAG


def _resolve(node: yaml.Node) -> tuple[str, Any]:
    """go-yaml's resolution of a node: (short tag, value)."""
    if isinstance(node, yaml.MappingNode):
        return "!!map", None
    if isinstance(node, yaml.SequenceNode):
        return "!!seq", None
    value = node.value
    if node.tag == BINARY_TAG:
        return "!!binary", value
    if node.tag != STR_TAG:
        return "!!" + node.tag.rsplit(":", 1)[-1], value
    if not isinstance(node, yaml.ScalarNode) or not _is_plain(node):
        return "!!str", value
    if value in _NULLS:
        return "!!null", None
    if value in _TRUE:
        return "!!bool", True
    if value in _FALSE:
        return "!!bool", False
    if value and (value[0].isdigit() or value[0] in "+-."):
        plain = value.replace("_", "")
        if _GO_INT.match(plain):
            body = plain.lstrip("+-")
            sign = -1 if plain.startswith("-") else 1
            if len(body) > 1 and body[0] == "0" and body[1] in "0123456789":
                return "!!int", sign * int(body, 8)
            return "!!int", sign * int(body, 0)
        if _FLOAT.match(plain):
            return "!!float", float(plain)
        if value in (".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"):
            return "!!float", math.inf
        if value in ("-.inf", "-.Inf", "-.INF"):
            return "!!float", -math.inf
        if value in (".nan", ".NaN", ".NAN"):
            return "!!float", math.nan
    return "!!str", value


def _go_type(t: str | ListOf, base: str) -> str:
    if isinstance(t, ListOf):
        return "[]" + _go_type(t.item, base)
    return {STR: "string", INT: "int", BOOL: "bool"}.get(t, f"{base}.{t}")


class _Decoder:
    def __init__(self, fcos_minor: int, base: str) -> None:
        self.minor = fcos_minor
        self.base = base
        self.errors: list[str] = []
        self.positions: dict[PathT, tuple[int, int]] = {}
        self.warnings: list[Report] = []

    def type_error(self, node: yaml.Node, tag: str, t: str | ListOf) -> None:
        self.errors.append(
            f"line {_line(node)}: cannot unmarshal {tag}{_shown(node, tag)} into {_go_type(t, self.base)}"
        )

    def decode(self, node: yaml.Node, t: str | ListOf, path: PathT) -> Any:
        self.positions[path] = _pos(node)
        tag, value = _resolve(node)
        if tag == "!!null":
            return None
        if isinstance(t, ListOf):
            if not isinstance(node, yaml.SequenceNode):
                self.type_error(node, tag, t)
                return None
            items: list[Any] = []
            for i, item in enumerate(node.value):
                v = self.decode(item, t.item, (*path, i))
                if v is None:
                    v = {} if t.item in STRUCTS else ("" if t.item == STR else 0 if t.item == INT else False)
                items.append(v)
            return items
        if t == STR:
            if tag in ("!!map", "!!seq"):
                self.type_error(node, tag, t)
                return None
            if tag == "!!binary":
                try:
                    return base64.b64decode("".join(str(node.value).split()))
                except (binascii.Error, ValueError):
                    self.errors.append(f"line {_line(node)}: !!binary value contains invalid base64 data")
                    return None
            return str(node.value)
        if t == INT:
            if tag == "!!int":
                return value
            if tag == "!!float" and math.isfinite(value) and abs(value) < 2**63:
                return int(value)
            self.type_error(node, tag, t)
            return None
        if t == BOOL:
            if tag == "!!bool":
                return value
            if tag == "!!str" and node.value in _OLD_TRUE:
                return True
            if tag == "!!str" and node.value in _OLD_FALSE:
                return False
            self.type_error(node, tag, t)
            return None
        # a struct
        if not isinstance(node, yaml.MappingNode):
            self.type_error(node, tag, t)
            return None
        known = fields(t, self.minor)
        pairs = self._pairs(node)
        first: dict[str, yaml.Node] = {}
        for k, _ in pairs:
            if isinstance(k, yaml.ScalarNode):
                name = str(k.value)
                if name in first:
                    self.errors.append(
                        f"line {_line(k)}: mapping key {json.dumps(name)} "
                        f"already defined at line {_line(first[name])}"
                    )
                else:
                    first[name] = k
        out: dict[str, Any] = {}
        for k, v in pairs:
            name = str(k.value) if isinstance(k, yaml.ScalarNode) else "?"
            if name not in known:
                self.positions.setdefault((*path, name), _pos(k))
                self.warnings.append(Report(WARNING, f"unused key {name}", (*path, name), *_pos(k)))
                continue
            if name in out:
                continue
            decoded = self.decode(v, known[name].type, (*path, name))
            if decoded is not None:
                out[name] = decoded
        return out

    def _pairs(self, node: yaml.MappingNode) -> list[tuple[yaml.Node, yaml.Node]]:
        """Mapping pairs with ``<<`` merge keys expanded (explicit keys win over merged ones)."""
        pairs: list[tuple[yaml.Node, yaml.Node]] = []
        merged: list[tuple[yaml.Node, yaml.Node]] = []
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == "<<" and _is_plain(k):
                sources = v.value if isinstance(v, yaml.SequenceNode) else [v]
                for s in sources:
                    if isinstance(s, yaml.MappingNode):
                        merged.extend(self._pairs(s))
                continue
            pairs.append((k, v))
        names = {str(k.value) for k, _ in pairs if isinstance(k, yaml.ScalarNode)}
        for k, v in merged:
            if isinstance(k, yaml.ScalarNode) and str(k.value) not in names:
                names.add(str(k.value))
                pairs.append((k, v))
        return pairs


def sniff_version(root: yaml.Node | None) -> tuple[str, str]:
    """``variant`` and ``version`` as written (``""`` when absent).

    Like Butane's first pass, this decodes the top-level mapping only: duplicate top-level keys and a
    non-string variant/version raise :class:`DecodeError`.
    """
    variant = version = ""
    if root is None:
        return variant, version
    if not isinstance(root, yaml.MappingNode):
        tag, _ = _resolve(root)
        if tag == "!!null":
            return variant, version
        raise DecodeError(
            [f"line {_line(root)}: cannot unmarshal {tag}{_shown(root, tag)} into common.Common"]
        )
    errors: list[str] = []
    first: dict[str, yaml.Node] = {}
    for k, v in root.value:
        if not isinstance(k, yaml.ScalarNode):
            continue
        name = str(k.value)
        if name in first:
            errors.append(
                f"line {_line(k)}: mapping key {json.dumps(name)} "
                f"already defined at line {_line(first[name])}"
            )
            continue
        first[name] = k
        if name not in ("variant", "version"):
            continue
        tag, _ = _resolve(v)
        if not isinstance(v, yaml.ScalarNode):
            errors.append(f"line {_line(v)}: cannot unmarshal {tag} into string")
            continue
        text = "" if tag == "!!null" else str(v.value)
        if name == "variant":
            variant = text
        else:
            version = text
    if errors:
        raise DecodeError(errors)
    return variant, version


def _shown(node: yaml.Node, tag: str) -> str:
    if tag in ("!!seq", "!!map"):
        return ""
    v = str(node.value)
    return f" `{v[:7]}...`" if len(v) > 10 else f" `{v}`"


def decode(root: yaml.Node | None, fcos_minor: int, base: str) -> Decoded:
    """Decode a composed Butane document; raise :class:`DecodeError` on type errors."""
    d = _Decoder(fcos_minor, base)
    value: dict[str, Any] = {}
    if root is not None:
        v = d.decode(root, "Config", ())
        if isinstance(v, dict):
            value = v
    if d.errors:
        raise DecodeError(d.errors)
    return Decoded(value, d.positions, d.warnings)
