"""Load and validate a target recipe (``recipes/<target>.yaml``).

A recipe says *what to build*: the target kind, architecture, FCOS stream or pinned release, which base
artifact of the stream to start from, the target's options and the overlays with their variables. What
each kind allows (architectures, bases, options) comes from its target class in
:data:`coreos_infra.targets.REGISTRY`; the options are parsed once, here, by the target's own parser,
and the parsed value travels to the builder as ``TargetRecipe.settings``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from coreos_infra import targets
from coreos_infra.recipes.model import STREAMS, BaseArtifact, Overlay, OverlayUse, TargetRecipe
from coreos_infra.recipes.overlay import check_overlay_vars
from coreos_infra.recipes.yamlsrc import Mapping as NodeMapping
from coreos_infra.recipes.yamlsrc import Node, load_yaml

RECIPE_KEYS = ("description", "kind", "arch", "stream", "release", "base", "options", "overlays")
RELEASE = re.compile(r"^[0-9]{2,}\.[0-9]{8}\.[0-9]+\.[0-9]+$")


def load_target(path: Path, display: str, overlays: Mapping[str, Overlay]) -> TargetRecipe:
    root = load_yaml(path, display)
    m = root.mapping(RECIPE_KEYS)
    name = path.name.removesuffix(".yaml").removesuffix(".yml")
    kind_node = m.require("kind")
    kind = kind_node.str()
    registry = targets.REGISTRY
    if kind not in registry:
        raise kind_node.error(f"unknown target kind {kind!r}", hint=f"kinds: {', '.join(sorted(registry))}")
    target = registry[kind]
    arch = _arch(m, target)
    stream = "stable"
    if (s := m.get("stream")) is not None:
        stream = s.str()
        if stream not in STREAMS:
            raise s.error(f"unknown stream {stream!r}", hint=f"streams: {', '.join(STREAMS)}")
    release = ""
    if (r := m.get("release")) is not None:
        release = r.str()
        if not RELEASE.match(release):
            raise r.error("not an FCOS release such as 40.20240519.3.0")
    options_node = m.get("options")
    options: dict[str, Any] = {}
    if options_node is not None:
        options_node.mapping()  # a mapping or nothing
        options = options_node.plain() or {}
    settings = target.parse_options(name, options, options_node)
    description = d.str() if (d := m.get("description")) is not None else ""
    return TargetRecipe(
        name=name,
        path=path,
        kind=kind,
        arch=arch,
        stream=stream,
        release=release,
        base=_base(m, target),
        options=options,
        overlays=_overlay_uses(m.get("overlays"), overlays),
        description=description,
        settings=settings,
    )


def _arch(m: NodeMapping, target: type[targets.Target]) -> str:
    arch = str(target.arches[0])
    if (a := m.get("arch")) is not None:
        arch = a.str()
        if arch not in tuple(targets.Arch):
            architectures = ", ".join(targets.Arch)
            raise a.error(f"unknown architecture {arch!r}", hint=f"architectures: {architectures}")
        if arch not in target.arches:
            raise a.error(f"the {target.title} target is {' or '.join(target.arches)}")
    return arch


def _base(m: NodeMapping, target: type[targets.Target]) -> BaseArtifact:
    platform, fmt = target.bases[0].platform, target.bases[0].format
    if (b := m.get("base")) is not None:
        bm = b.mapping(("platform", "format"))
        platform = bm.require("platform").str() if "platform" in bm else platform
        fmt = bm.require("format").str() if "format" in bm else fmt
        if targets.Base(platform, fmt) not in target.bases:
            allowed = ", ".join(str(base) for base in sorted(target.bases))
            message = f"the {target.kind} target cannot start from {platform}/{fmt}"
            raise b.error(message, hint=f"allowed: {allowed}")
    return BaseArtifact(platform, fmt)


def _overlay_uses(node: Node | None, overlays: Mapping[str, Overlay]) -> tuple[OverlayUse, ...]:
    if node is None:
        return ()
    out: list[OverlayUse] = []
    for item in node.list():
        if item.is_mapping:
            im = item.mapping(("name", "vars"))
            name_node = im.require("name")
        else:
            name_node = item
            im = None
        name = name_node.str()
        if name not in overlays:
            raise name_node.error(
                f"unknown overlay {name!r}", hint=f"overlays: {', '.join(sorted(overlays))}"
            )
        if any(u.name == name for u in out):
            raise name_node.error(f"overlay {name!r} listed twice")
        values: tuple[tuple[str, Any], ...] = ()
        if im is not None and (v := im.get("vars")) is not None:
            values = check_overlay_vars(overlays[name], v)
        out.append(OverlayUse(name=name, vars=values, location=str(item.location())))
    return tuple(out)
