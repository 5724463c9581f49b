"""Where a value of the merged Butane came from: the overlay template line that wrote it.

The merged document is built from the overlays' rendered fragments, and its lists and mappings are the
fragments' own objects (:mod:`coreos_infra.recipes.merge` appends them). So a Butane report path
(``storage.files.3.contents.source``) leads, through the innermost list or mapping that a fragment
produced, to that fragment's YAML node, its offset in the rendered text, and from there to the line of
``butane.yaml.j2`` that wrote it (:class:`coreos_infra.recipes.overlay.RenderedTemplate`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from coreos_infra.errors import Location
from coreos_infra.recipes.overlay import RenderedTemplate


def _child(node: yaml.Node, key: str | int) -> yaml.Node | None:
    if isinstance(node, MappingNode):
        for k, v in node.value:
            if isinstance(k, ScalarNode) and k.value == key:
                return v
    if isinstance(node, SequenceNode) and isinstance(key, int) and 0 <= key < len(node.value):
        item: yaml.Node = node.value[key]
        return item
    return None


class Origins:
    """Maps the lists and mappings of rendered fragments to their file, YAML node and rendered text."""

    def __init__(self) -> None:
        self._by_id: dict[int, tuple[str, RenderedTemplate, yaml.Node]] = {}
        self._keep: list[Any] = []  # keeps the objects alive, so that their ids stay unique

    def add(self, file: str, rendered: RenderedTemplate, node: yaml.Node, data: Any) -> None:
        """Record ``data`` (the plain form of ``node``) and everything in it as coming from ``file``."""
        stack = [(node, data)]
        while stack:
            n, d = stack.pop()
            if isinstance(d, dict):
                self._by_id[id(d)] = (file, rendered, n)
                self._keep.append(d)
                for key, value in d.items():
                    if (child := _child(n, key)) is not None:
                        stack.append((child, value))
            elif isinstance(d, list):
                self._by_id[id(d)] = (file, rendered, n)
                self._keep.append(d)
                stack.extend((c, v) for c, v in zip(n.value, d, strict=False))

    def locate(self, merged: Any, path: Sequence[str | int]) -> Location | None:
        """The template file and line that produced ``path`` of ``merged``, if a fragment did."""
        best: tuple[tuple[str, RenderedTemplate, yaml.Node], int] | None = None
        obj = merged
        for i, key in enumerate([*path, None]):
            if isinstance(obj, dict | list) and id(obj) in self._by_id:
                best = (self._by_id[id(obj)], i)
            if key is None:
                break
            try:
                obj = obj[key]
            except (KeyError, IndexError, TypeError):
                break
        if best is None:
            return None
        (file, rendered, node), i = best
        for key in path[i:]:
            child = _child(node, key)
            if child is None:
                break
            node = child
        line = rendered.template_line(node.start_mark.index)
        return Location(file, None, line)
