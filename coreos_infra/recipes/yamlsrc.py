"""YAML with positions, and a strict reader that turns it into typed values.

PyYAML's composer gives nodes with start marks; :func:`load_yaml` keeps those nodes so every value can
be reported as ``file:line:col: path: message``. :class:`Node` wraps one YAML node with its document path
(``hosts[1].mac``) and offers typed accessors that raise :class:`~coreos_infra.errors.InputError`.

Scalars read as strings use the *source text* of plain scalars, so the YAML 1.1 traps do not bite:
``52:54:00:12:34:56`` (a base-60 integer for YAML 1.1) and ``22:30`` stay strings, ``no`` stays ``no``.
Booleans and integers must be real YAML booleans and integers.

Size limits (a site file is small; these only stop hostile or broken input early, with a located error):
:data:`MAX_YAML_BYTES` of text, :data:`MAX_NODES` values after expanding aliases (``*anchor``; so nested
aliases cannot balloon into billions of values), :data:`MAX_DEPTH` levels of nesting; recursive aliases are
refused.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from coreos_infra.errors import InputError, Location

_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_FLOAT = "tag:yaml.org,2002:float"
_MERGE = "tag:yaml.org,2002:merge"

MAX_YAML_BYTES = 4 << 20  # text of one YAML document
MAX_NODES = 200_000  # values (scalars, lists, mappings) after expanding aliases
MAX_DEPTH = 100  # nesting of lists and mappings
_LIMITS_HINT = "coreos-infra's YAML size limits are described in recipes/README.md"


def _kind(node: yaml.Node) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    tag = node.tag
    if tag == _NULL:
        return "nothing (null)"
    if tag == _BOOL:
        return "a boolean"
    if tag == _INT:
        return "an integer"
    if tag == _FLOAT:
        return "a number"
    return "a string"


@dataclass(frozen=True)
class Node:
    """One YAML node, where it came from, and its path inside the document."""

    yaml_node: yaml.Node
    file: str
    path: str

    # -- locations and errors -------------------------------------------------------------------------
    def location(self, path: str | None = None) -> Location:
        mark = self.yaml_node.start_mark
        return Location(self.file, path if path is not None else self.path, mark.line + 1, mark.column + 1)

    def error(self, message: str, *, hint: str | None = None, path: str | None = None) -> InputError:
        return InputError(message, self.location(path), hint=hint)

    def child_path(self, key: str | int) -> str:
        if isinstance(key, int):
            return f"{self.path}[{key}]"
        return f"{self.path}.{key}" if self.path else key

    # -- kinds ---------------------------------------------------------------------------------------
    @property
    def is_null(self) -> bool:
        return isinstance(self.yaml_node, ScalarNode) and self.yaml_node.tag == _NULL

    @property
    def is_mapping(self) -> bool:
        return isinstance(self.yaml_node, MappingNode)

    @property
    def is_list(self) -> bool:
        return isinstance(self.yaml_node, SequenceNode)

    @property
    def is_scalar(self) -> bool:
        return isinstance(self.yaml_node, ScalarNode)

    def kind(self) -> str:
        return _kind(self.yaml_node)

    # -- typed reads -----------------------------------------------------------------------------------
    def mapping(self, allowed: tuple[str, ...] | None = None) -> Mapping:
        if not self.is_mapping:
            if self.is_null:
                return Mapping(self, {})
            raise self.error(f"expected a mapping, got {self.kind()}")
        items: dict[str, tuple[Node, Node]] = {}
        assert isinstance(self.yaml_node, MappingNode)
        if any(k.tag == _MERGE for k, _ in self.yaml_node.value):
            _flatten(self.yaml_node)
        for knode, vnode in self.yaml_node.value:
            if not isinstance(knode, ScalarNode) or knode.tag == _NULL:
                raise Node(knode, self.file, self.path).error("mapping keys must be strings")
            key = str(knode.value)
            kpath = self.child_path(key)
            key_node = Node(knode, self.file, kpath)
            if key in items:
                first = items[key][0].yaml_node.start_mark.line + 1
                raise key_node.error(f"duplicate key (first defined on line {first})")
            if allowed is not None and key not in allowed:
                raise key_node.error("unknown key", hint=f"expected one of: {', '.join(allowed)}")
            items[key] = (key_node, Node(vnode, self.file, kpath))
        return Mapping(self, items)

    def list(self) -> list[Node]:
        if self.is_null:
            return []
        if not self.is_list:
            raise self.error(f"expected a list, got {self.kind()}")
        assert isinstance(self.yaml_node, SequenceNode)
        return [Node(n, self.file, self.child_path(i)) for i, n in enumerate(self.yaml_node.value)]

    def str(self) -> str:
        if self.is_null:
            raise self.error("missing value")
        if not self.is_scalar:
            raise self.error(f"expected a string, got {self.kind()}")
        value = self.yaml_node.value
        assert isinstance(value, str)
        return value

    def int(self) -> int:
        if not self.is_scalar or self.yaml_node.tag != _INT:
            raise self.error(f"expected an integer, got {self.kind()}")
        value = self.plain()
        assert isinstance(value, int)
        return value

    def bool(self) -> bool:
        if not self.is_scalar or self.yaml_node.tag != _BOOL:
            raise self.error(f"expected true or false, got {self.kind()}")
        return bool(self.plain())

    def str_list(self) -> tuple[builtins.str, ...]:
        if self.is_scalar and not self.is_null:
            raise self.error(f"expected a list of strings, got {self.kind()}")
        return tuple(item.str() for item in self.list())

    def plain(self) -> Any:
        """The value as plain Python data (YAML 1.1 resolution, but plain strings kept as source text)."""
        return _plain(self.yaml_node)


class Mapping:
    """A YAML mapping whose keys were checked against the allowed set."""

    def __init__(self, node: Node, items: dict[str, tuple[Node, Node]]) -> None:
        self.node = node
        self.items = items

    def __contains__(self, key: str) -> bool:
        return key in self.items and not self.items[key][1].is_null

    def __iter__(self) -> Iterator[str]:
        return iter(self.items)

    def keys(self) -> list[str]:
        return list(self.items)

    def key_node(self, key: str) -> Node:
        return self.items[key][0]

    def get(self, key: str) -> Node | None:
        entry = self.items.get(key)
        if entry is None or entry[1].is_null:
            return None
        return entry[1]

    def require(self, key: str) -> Node:
        entry = self.items.get(key)
        if entry is None:
            raise self.node.error("missing required value", path=self.node.child_path(key))
        if entry[1].is_null:
            raise entry[1].error("missing required value")
        return entry[1]

    def missing_path(self, key: str) -> str:
        return self.node.child_path(key)


_constructor = SafeConstructor()


def _flatten(node: MappingNode) -> None:
    """Resolve YAML merge keys (``<<: *anchor``) in place: the mapping's own keys win over merged ones,
    and among merged mappings the first one listed wins (as YAML says)."""
    own = [(k, v) for k, v in node.value if k.tag != _MERGE]
    own_keys = {k.value for k, _ in own if isinstance(k, ScalarNode)}
    _constructor.flatten_mapping(node)  # merged entries first, then the mapping's own entries
    merged: dict[str, tuple[yaml.Node, yaml.Node]] = {}
    for k, v in node.value:
        if any(k is ok for ok, _ in own) or not isinstance(k, ScalarNode) or k.value in own_keys:
            continue
        merged[k.value] = (k, v)  # flatten_mapping lists the winning merged value last
    node.value = list(merged.values()) + own


def _plain(node: yaml.Node) -> Any:
    if isinstance(node, MappingNode):
        if any(k.tag == _MERGE for k, _ in node.value):
            _flatten(node)
        return {str(k.value): _plain(v) for k, v in node.value}
    if isinstance(node, SequenceNode):
        return [_plain(v) for v in node.value]
    assert isinstance(node, ScalarNode)
    if node.tag in (_BOOL, _INT, _FLOAT, _NULL):
        # Base-60 "integers" (22:30) stay strings: nobody means them.
        if node.tag == _INT and ":" in node.value:
            return node.value
        return _constructor.construct_object(node, deep=True)
    return node.value


def load_yaml(path: Path, display: str | None = None) -> Node:
    """Parse one YAML document from ``path``; syntax errors become InputErrors with a position."""
    name = display or str(path)
    try:
        if path.stat().st_size > MAX_YAML_BYTES:
            raise InputError(
                f"YAML document larger than {MAX_YAML_BYTES >> 20} MiB", Location(name), hint=_LIMITS_HINT
            )
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("file not found", Location(name)) from None
    except UnicodeDecodeError as e:
        raise InputError(f"not UTF-8 text ({e.reason})", Location(name)) from None
    return parse_yaml(text, name)


def parse_yaml(text: str, name: str, *, fast: bool = False) -> Node:
    """Compose ``text``; ``fast`` uses libyaml when present (terser syntax error messages)."""
    if len(text) > MAX_YAML_BYTES:
        raise InputError(
            f"YAML document larger than {MAX_YAML_BYTES >> 20} MiB", Location(name), hint=_LIMITS_HINT
        )
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader) if fast else yaml.SafeLoader
    try:
        node = yaml.compose(text, Loader=loader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        problem = e.problem or e.context or "invalid YAML"
        loc = Location(name, None, mark.line + 1, mark.column + 1) if mark else Location(name)
        raise InputError(f"YAML syntax error: {problem}", loc) from None
    except yaml.YAMLError as e:
        raise InputError(f"YAML error: {e}", Location(name)) from None
    except RecursionError:
        raise InputError(
            f"YAML nested more than {MAX_DEPTH} levels deep", Location(name), hint=_LIMITS_HINT
        ) from None
    if node is None:
        mark = yaml.Mark(name, 0, 0, 0, "", 0)
        node = ScalarNode(_NULL, "", mark, mark)
    check_expanded_size(node, name)
    return Node(node, name, "")


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, SequenceNode):
        return list(node.value)
    return []


def check_expanded_size(root: yaml.Node, name: str) -> None:
    """Refuse a document whose aliases expand to more than :data:`MAX_NODES` values, that nests deeper
    than :data:`MAX_DEPTH` or that has a recursive alias. Linear in the composed (unexpanded) size."""

    def fail(node: yaml.Node, message: str) -> InputError:
        mark = node.start_mark
        return InputError(message, Location(name, None, mark.line + 1, mark.column + 1), hint=_LIMITS_HINT)

    sizes: dict[int, int] = {}  # id(node) -> values in its expansion
    ancestors: set[int] = set()
    stack: list[tuple[yaml.Node, bool, int]] = [(root, False, 0)]
    while stack:
        node, finished, depth = stack.pop()
        key = id(node)
        if finished:
            ancestors.discard(key)
            total = 1 + sum(sizes[id(c)] for c in _children(node))
            if total > MAX_NODES:
                raise fail(
                    node,
                    f"YAML aliases expand this value to more than {MAX_NODES} values "
                    "(nested *aliases, an alias bomb?)",
                )
            sizes[key] = total
            continue
        if key in sizes:
            continue
        if key in ancestors:
            raise fail(node, "recursive YAML alias (a value that contains itself)")
        if depth > MAX_DEPTH:
            raise fail(node, f"YAML nested more than {MAX_DEPTH} levels deep")
        ancestors.add(key)
        stack.append((node, True, depth))
        stack.extend((c, False, depth + 1) for c in _children(node) if id(c) not in sizes)
