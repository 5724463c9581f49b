"""Base translation: a decoded Butane config → an Ignition config (fields copied, resources encoded,
``*_local`` files read). Desugaring (mount units, trees, boot_device, grub) lives in its own modules.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coreos_infra.butane.paths import camel
from coreos_infra.butane.resource import (
    ERR_NO_FILES_DIR,
    LocalFileError,
    data_url,
    read_local,
    resolve_local,
    url_escape,
)
from coreos_infra.ignition.report import ERROR, PathT, Report

# Butane-only keys: handled specially, never copied
_SKIP = {
    "Config": {"variant", "version", "boot_device", "grub"},
    "Storage": {"trees"},
    "Filesystem": {"with_mount_unit"},
    "Unit": {"contents_local"},
    "Dropin": {"contents_local"},
    "User": {"ssh_authorized_keys_local"},
}
_NODE_KEYS = ("group", "overwrite", "path", "user")
_RESOURCE_PARENTS = {"contents", "append", "key_file", "merge", "replace", "certificate_authorities"}


@dataclass
class Context:
    """State shared by the translation steps."""

    fcos_minor: int
    target: str
    files_dir: Path | None
    reports: list[Report] = field(default_factory=list)
    exceptions: dict[PathT, PathT] = field(default_factory=dict)  # JSON path → YAML path (non-trivial ones)

    def error(self, path: PathT, msg: str) -> None:
        self.reports.append(Report(ERROR, msg, path))

    def read_local(self, local: str, report_path: PathT) -> bytes | None:
        try:
            return read_local(self.files_dir, local)
        except LocalFileError as e:
            self.error(report_path, str(e))
            return None

    def resolve_local(self, local: str, report_path: PathT) -> str | None:
        try:
            return resolve_local(self.files_dir, local)
        except LocalFileError as e:
            self.error(report_path, str(e))
            return None


def _as_bytes(v: str | bytes) -> bytes:
    return v if isinstance(v, bytes) else v.encode("utf-8", "surrogateescape")


def _as_text(v: str | bytes) -> str:
    return v.decode("utf-8", "surrogateescape") if isinstance(v, bytes) else v


def _kind(ypath: PathT) -> str:
    """Which Butane struct a YAML path points at (enough to pick the special cases)."""
    names = [p for p in ypath if isinstance(p, str)]
    if not names:
        return "Config"
    last = names[-1]
    is_item = isinstance(ypath[-1], int)
    if last in _RESOURCE_PARENTS and (is_item or last in ("contents", "key_file", "replace")):
        return "Resource"
    if last == "storage" and len(ypath) == 1:
        return "Storage"
    if last == "filesystems" and is_item:
        return "Filesystem"
    if last == "units" and is_item:
        return "Unit"
    if last == "dropins" and is_item:
        return "Dropin"
    if last == "users" and is_item and names[-2:-1] == ["passwd"]:
        return "User"
    return ""


def translate_resource(ctx: Context, res: dict[str, Any], ypath: PathT, jpath: PathT) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "compression" in res:
        out["compression"] = res["compression"]
    if "http_headers" in res:
        out["httpHeaders"] = [
            {camel(k): v for k, v in h.items()} if isinstance(h, dict) else h for h in res["http_headers"]
        ]
    if "source" in res:
        out["source"] = _as_text(res["source"])
    if "verification" in res:
        out["verification"] = dict(res["verification"])
    data: bytes | None = None
    origin = None
    if "local" in res:
        origin = "local"
        data = ctx.read_local(_as_text(res["local"]), (*ypath, "local"))
    if "inline" in res:
        origin = "inline"
        data = _as_bytes(res["inline"])
    if data is not None and origin is not None:
        if ctx.fcos_minor == 0:
            out["source"] = "data:," + url_escape(data)
        else:
            source, comp = data_url(data, res.get("compression"))
            out["source"] = source
            if comp is not None:
                out["compression"] = comp
        ctx.exceptions[(*jpath, "source")] = (*ypath, origin)
    return out


def translate_value(ctx: Context, value: Any, ypath: PathT, jpath: PathT) -> Any:
    if isinstance(value, list):
        return [translate_value(ctx, v, (*ypath, i), (*jpath, i)) for i, v in enumerate(value)]
    if isinstance(value, bytes):
        return _as_text(value)
    if not isinstance(value, dict):
        return value
    kind = _kind(ypath)
    if kind == "Resource":
        return translate_resource(ctx, value, ypath, jpath)
    skip = _SKIP.get(kind, set())
    out: dict[str, Any] = {}
    is_node = bool(ypath) and isinstance(ypath[-1], int) and ypath[-2] in ("files", "directories", "links")
    # Butane's struct field order (Go field names: alphabetical, the embedded Node first)
    for key, v in sorted(value.items(), key=lambda kv: (not (is_node and kv[0] in _NODE_KEYS), kv[0])):
        if key in skip:
            continue
        jkey = camel(key)
        out[jkey] = translate_value(ctx, v, (*ypath, key), (*jpath, jkey))
    if kind in ("Unit", "Dropin") and value.get("contents_local"):
        data = ctx.read_local(_as_text(value["contents_local"]), (*ypath, "contents_local"))
        if data is not None:
            out["contents"] = data.decode("utf-8", "surrogateescape")
            ctx.exceptions[(*jpath, "contents")] = (*ypath, "contents_local")
    if kind == "User" and "ssh_authorized_keys_local" in value:
        keys = list(out.get("sshAuthorizedKeys") or [])
        lpath = (*ypath, "ssh_authorized_keys_local")
        if ctx.files_dir is None:
            ctx.error(
                lpath,
                ERR_NO_FILES_DIR,
            )
        else:
            for j, local in enumerate(value["ssh_authorized_keys_local"]):
                data = ctx.read_local(_as_text(local), (*lpath, j))
                if data is None:
                    continue
                for line in re.split(r"\r?\n", data.decode("utf-8", "surrogateescape")):
                    if line:
                        ctx.exceptions[(*jpath, "sshAuthorizedKeys", len(keys))] = (*lpath, j)
                        keys.append(line)
        if keys:
            out["sshAuthorizedKeys"] = keys
    return out


def translate_base(ctx: Context, cfg: dict[str, Any]) -> dict[str, Any]:
    """Translate the fields of a decoded config (no desugaring); set ``ignition.version``."""
    out = translate_value(ctx, cfg, (), ())
    ign = out.setdefault("ignition", {})
    ign["version"] = ctx.target
    return dict(out)
