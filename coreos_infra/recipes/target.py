"""Load and validate a target recipe (``recipes/<target>.yaml``).

A recipe says *what to build*: the builder kind, architecture, FCOS stream or pinned release, which base
artifact of the stream to start from, the builder options (passed unchanged to
``BuildRequest.options`` after type checks) and the overlays with their variables.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from coreos_infra.recipes.model import KINDS, STREAMS, BaseArtifact, Overlay, OverlayUse, TargetRecipe
from coreos_infra.recipes.overlay import check_overlay_vars
from coreos_infra.recipes.yamlsrc import Node, load_yaml

RECIPE_KEYS = ("description", "kind", "arch", "stream", "release", "base", "options", "overlays")
ARCHES = ("x86_64", "aarch64")
# The base artifact each kind starts from: (platform, format) in the FCOS stream metadata.
DEFAULT_BASE = {
    "iso": ("metal", "iso"),
    "pxe": ("metal", "pxe"),
    "rpi4": ("metal", "raw.xz"),
    "metal": ("metal", "raw.xz"),
}
ALLOWED_BASE = {
    "iso": {("metal", "iso")},
    "pxe": {("metal", "pxe")},
    "rpi4": {("metal", "raw.xz"), ("metal", "4k.raw.xz")},
    "metal": {("metal", "raw.xz"), ("metal", "4k.raw.xz"), ("qemu", "qcow2.xz")},
}
RELEASE = re.compile(r"^[0-9]{2,}\.[0-9]{8}\.[0-9]+\.[0-9]+$")


def _str(node: Node) -> str:
    return node.str()


def _str_list(node: Node) -> list[str]:
    return list(node.str_list())


def _kargs(node: Node) -> list[str]:
    out = []
    for item in node.list():
        text = item.str()
        if not text or any(c.isspace() for c in text):
            raise item.error("one kernel argument per list item, without spaces")
        out.append(text)
    return out


def _console(node: Node) -> list[str]:
    items = [node] if node.is_scalar else node.list()
    out = []
    for item in items:
        text = item.str()
        if not re.match(r"^(tty[A-Za-z]*[0-9]+|hvc[0-9]+)(,[0-9]+[noe]?[0-9]?)?$", text):
            raise item.error("not a console spec such as ttyS0,115200n8 or tty0")
        out.append(text)
    return out


def _device(node: Node) -> str:
    text = node.str()
    if not text.startswith("/dev/") or text.endswith("/") or " " in text:
        raise node.error("not a device path (e.g. /dev/vda or /dev/disk/by-id/...)")
    return text


def _mode(node: Node) -> str:
    text = node.str()
    if text not in ("install", "live"):
        raise node.error("expected install or live")
    return text


def _url(node: Node) -> str:
    text = node.str()
    if not re.match(r"^(https?|file|tftp)://", text):
        raise node.error("not a URL (http, https, tftp or file)")
    return text


def _bool(node: Node) -> bool:
    return node.bool()


def _firmware(node: Node) -> dict[str, str]:
    m = node.mapping(("version", "url", "sha256"))
    out = {"version": m.require("version").str()}
    if (u := m.get("url")) is not None:
        out["url"] = _url(u)
    if (s := m.get("sha256")) is not None:
        if not re.match(r"^[0-9a-f]{64}$", s.str()):
            raise s.error("not a SHA-256 (64 lower-case hex digits)")
        out["sha256"] = s.str()
    if "url" in out and "sha256" not in out:
        raise node.error(
            "a firmware url needs its sha256 (nothing unverified is used)", path=node.child_path("sha256")
        )
    return out


def _config_txt(node: Node) -> dict[str, Any] | str:
    if node.is_scalar:
        return node.str()  # the whole file, verbatim
    m = node.mapping()
    out: dict[str, Any] = {}
    for key in m:
        if not re.match(r"^[a-z0-9_]+$", key):
            raise m.key_node(key).error("not a config.txt key")
        value = m.require(key)
        if value.is_list:
            out[key] = [v.str() for v in value.list()]
        else:
            out[key] = value.str()
    return out


Check = Callable[[Node], Any]
# Options this loader checks the type of (with the position in the recipe). Other keys pass through as
# plain data if the kind's builder declares them (see _builder_keys); anything else is an unknown key.
TYPED: dict[str, Check] = {
    "kernel_args": _kargs,
    "console": _console,
    "base_url": _url,
    "mode": _mode,
    "dest_device": _device,
    "dest_console": _console,
    "dest_karg_append": _kargs,
    "dest_karg_delete": _kargs,
    "firmware": _firmware,
    "config_txt": _config_txt,
    "ram_limit_3gb": _bool,
}
OWN_KEYS: dict[str, tuple[str, ...]] = {
    "iso": (
        "kernel_args",
        "console",
        "mode",
        "dest_device",
        "dest_console",
        "dest_karg_append",
        "dest_karg_delete",
    ),
    "pxe": (
        "kernel_args",
        "console",
        "base_url",
        "mode",
        "dest_device",
        "dest_console",
        "dest_karg_append",
        "dest_karg_delete",
    ),
    "rpi4": ("kernel_args", "console", "firmware", "config_txt", "ram_limit_3gb"),
    "metal": ("kernel_args", "console"),
}
# Where each builder declares the option keys it accepts.
BUILDER_KEYS = {
    "iso": ("coreos_infra.targets.iso", "KEYS"),
    "pxe": ("coreos_infra.pxe.plan", "OPTION_HELP"),
    "rpi4": ("coreos_infra.targets.rpi4", "KEYS"),
    "metal": ("coreos_infra.disk.options", "COMMON_KEYS"),
}


def _builder_keys(kind: str) -> tuple[str, ...]:
    module_name, attr = BUILDER_KEYS[kind]
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return ()
    return tuple(getattr(module, attr, ()))


def allowed_options(kind: str) -> tuple[str, ...]:
    own = OWN_KEYS[kind]
    return own + tuple(k for k in _builder_keys(kind) if k not in own)


def load_target(path: Path, display: str, overlays: Mapping[str, Overlay]) -> TargetRecipe:
    root = load_yaml(path, display)
    m = root.mapping(RECIPE_KEYS)
    name = path.name.removesuffix(".yaml").removesuffix(".yml")
    kind_node = m.require("kind")
    kind = kind_node.str()
    if kind not in KINDS:
        raise kind_node.error(f"unknown target kind {kind!r}", hint=f"kinds: {', '.join(KINDS)}")
    arch = "aarch64" if kind == "rpi4" else "x86_64"
    if (a := m.get("arch")) is not None:
        arch = a.str()
        if arch not in ARCHES:
            raise a.error(f"unknown architecture {arch!r}", hint=f"architectures: {', '.join(ARCHES)}")
        if kind == "rpi4" and arch != "aarch64":
            raise a.error("the Raspberry Pi 4 target is aarch64")
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
    platform, fmt = DEFAULT_BASE[kind]
    if (b := m.get("base")) is not None:
        bm = b.mapping(("platform", "format"))
        platform = bm.require("platform").str() if "platform" in bm else platform
        fmt = bm.require("format").str() if "format" in bm else fmt
        if (platform, fmt) not in ALLOWED_BASE[kind]:
            allowed = ", ".join(f"{p}/{f}" for p, f in sorted(ALLOWED_BASE[kind]))
            message = f"the {kind} target cannot start from {platform}/{fmt}"
            raise b.error(message, hint=f"allowed: {allowed}")
    options = _options(m.get("options"), kind)
    uses = _overlay_uses(m.get("overlays"), overlays)
    description = d.str() if (d := m.get("description")) is not None else ""
    return TargetRecipe(
        name=name,
        path=path,
        kind=kind,
        arch=arch,
        stream=stream,
        release=release,
        base=BaseArtifact(platform, fmt),
        options=options,
        overlays=uses,
        description=description,
    )


def _options(node: Node | None, kind: str) -> dict[str, Any]:
    if node is None:
        return {}
    m = node.mapping(allowed_options(kind))
    out: dict[str, Any] = {}
    for key in m:
        value = m.get(key)
        if value is not None:
            out[key] = TYPED[key](value) if key in TYPED else value.plain()
    if kind in ("iso", "pxe"):
        mode = out.get("mode", "install")
        if mode == "install" and "dest_device" not in out:
            raise node.error(
                "mode install needs dest_device (the disk to install to)",
                path=node.child_path("dest_device"),
            )
        if mode == "live":
            for key in ("dest_device", "dest_karg_append", "dest_karg_delete", "dest_console"):
                if key in out:
                    raise m.require(key).error(f"{key} is only used with mode install")
    return out


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
