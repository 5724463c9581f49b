"""Mapping paths in the generated Ignition JSON back to the Butane YAML that produced them."""

from __future__ import annotations

import re
from collections.abc import Callable

from coreos_infra.ignition.merging import PARENT, Origins
from coreos_infra.ignition.report import PathT

Resolver = Callable[[PathT], PathT]

_UPPER = re.compile(r"([A-Z])")


def camel(key: str) -> str:
    """YAML ``size_mib`` → JSON ``sizeMiB``; ``ssh_authorized_keys`` → ``sshAuthorizedKeys``."""
    suffix = ""
    if key.endswith("_mib"):
        key, suffix = key[:-4], "MiB"
    parts = key.split("_")
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:]) + suffix


def snake(key: str) -> str:
    """JSON ``sizeMiB`` → YAML ``size_mib`` (the inverse of :func:`camel`)."""
    if key.endswith("MiB"):
        return snake(key[:-3]) + "_mib"
    return _UPPER.sub(lambda m: "_" + m.group(1).lower(), key)


def snake_path(path: PathT) -> PathT:
    return tuple(snake(p) if isinstance(p, str) else p for p in path)


def prefix_resolver(exceptions: dict[PathT, PathT]) -> Resolver:
    """Resolve by the longest prefix in ``exceptions``; other paths map by snake-casing each key."""

    def resolve(path: PathT) -> PathT:
        for n in range(len(path), -1, -1):
            target = exceptions.get(path[:n])
            if target is not None:
                return (*target, *snake_path(path[n:]))
        return snake_path(path)

    return resolve


def fixed_resolver(exceptions: dict[PathT, PathT], default: PathT) -> Resolver:
    """For generated configs: the longest matching prefix, else ``default`` (no suffix is kept)."""

    def resolve(path: PathT) -> PathT:
        for n in range(len(path), -1, -1):
            target = exceptions.get(path[:n])
            if target is not None:
                return target
        return default

    return resolve


def merged_resolver(origins: Origins, parent: Resolver, child: Resolver) -> Resolver:
    """Resolver for the result of ``merge(parent, child)`` given the merge's origins."""

    def resolve(path: PathT) -> PathT:
        for n in range(len(path), 0, -1):
            origin = origins.get(path[:n])
            if origin is not None:
                side, src = origin
                return (parent if side == PARENT else child)((*src, *path[n:]))
        return child(path)

    return resolve
