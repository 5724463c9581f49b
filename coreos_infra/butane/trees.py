"""``storage.trees``: local directory trees turned into files, links (and, in fcos 1.7+, directories)."""

from __future__ import annotations

import os
import posixpath
import stat
from typing import Any

from coreos_infra.butane.resource import ERR_NO_FILES_DIR, data_url
from coreos_infra.butane.translate import Context
from coreos_infra.ignition.report import PathT

ERR_COLLISION = "matching filesystem node has existing contents or different type"


def _os_reason(e: OSError) -> str:
    return {2: "no such file or directory", 13: "permission denied", 20: "not a directory"}.get(
        e.errno or 0, (e.strerror or str(e)).lower()
    )


def _walk(root: str, rel: str = "") -> list[tuple[str, os.stat_result | str]]:
    """Go ``filepath.Walk`` order: pre-order, entries sorted by name (bytewise), symlinks not followed.

    Entries are (relative path, lstat result) or (relative path, error message) for unreadable directories.
    """
    out: list[tuple[str, os.stat_result | str]] = []
    full = os.path.join(root, rel) if rel else root
    try:
        names = sorted(os.listdir(full), key=lambda n: n.encode("utf-8", "surrogateescape"))
    except OSError as e:
        return [(rel, f"open {full}: {_os_reason(e)}")]
    for name in names:
        r = f"{rel}/{name}" if rel else name
        try:
            st = os.lstat(os.path.join(root, r))
        except OSError as e:
            out.append((r, f"lstat {os.path.join(root, r)}: {_os_reason(e)}"))
            continue
        out.append((r, st))
        if stat.S_ISDIR(st.st_mode):
            out.extend(_walk(root, r))
    return out


def _owner(tree: dict[str, Any]) -> dict[str, Any]:
    node: dict[str, Any] = {}
    if tree.get("group"):
        node["group"] = dict(tree["group"])
    if tree.get("user"):
        node["user"] = dict(tree["user"])
    return node


def _tree_file(ctx: Context, tree: dict[str, Any], tpath: PathT, local: str, dest: str, est: os.stat_result,
               storage: dict[str, Any], origins: dict[PathT, PathT]) -> None:  # fmt: skip
    """A regular file of a tree: a new file entry, or the contents of one the config declares."""
    files: list[dict[str, Any]] = storage["files"]
    links: list[dict[str, Any]] = storage["links"]
    dirs: list[dict[str, Any]] = storage["directories"]
    existing = next((f for f in files if f.get("path") == dest), None)
    if (existing is not None and (existing.get("contents") or {}).get("source")) or any(
        n.get("path") == dest for n in links + dirs
    ):
        ctx.error(tpath, ERR_COLLISION)
        return
    if existing is None:
        existing = {"path": dest, **(_owner(tree) if ctx.fcos_minor >= 7 else {})}
        origins[("storage", "files", len(files))] = tpath
        files.append(existing)
    try:
        with open(local, "rb") as f:
            data = f.read()
    except OSError as e:
        ctx.error(tpath, f"open {local}: {_os_reason(e)}")
        return
    contents = existing.setdefault("contents", {})
    source, comp = data_url(data, contents.get("compression"))
    contents["source"] = source
    if comp is not None:
        contents["compression"] = comp
    if existing.get("mode") is None:
        if ctx.fcos_minor >= 7 and tree.get("file_mode") is not None:
            existing["mode"] = tree["file_mode"]
        else:
            existing["mode"] = 0o755 if est.st_mode & 0o111 else 0o644


def _tree_link(ctx: Context, tree: dict[str, Any], tpath: PathT, local: str, dest: str,
               storage: dict[str, Any], origins: dict[PathT, PathT]) -> None:  # fmt: skip
    """A symlink of a tree: a new link entry, or the target of one the config declares."""
    files: list[dict[str, Any]] = storage["files"]
    links: list[dict[str, Any]] = storage["links"]
    dirs: list[dict[str, Any]] = storage["directories"]
    existing = next((lk for lk in links if lk.get("path") == dest), None)
    if (existing is not None and existing.get("target") is not None) or any(
        n.get("path") == dest for n in files + dirs
    ):
        ctx.error(tpath, ERR_COLLISION)
        return
    if existing is None:
        existing = {"path": dest, **(_owner(tree) if ctx.fcos_minor >= 7 else {})}
        origins[("storage", "links", len(links))] = tpath
        links.append(existing)
    existing["target"] = os.readlink(local)


def add_trees(ctx: Context, cfg: dict[str, Any], out: dict[str, Any]) -> dict[PathT, PathT]:
    """Append the trees of ``cfg`` to ``out`` (an Ignition config); returns origins of new entries."""
    trees = (cfg.get("storage") or {}).get("trees") or []
    origins: dict[PathT, PathT] = {}
    if not trees:
        return origins
    storage = out.setdefault("storage", {})
    files: list[dict[str, Any]] = storage.setdefault("files", [])
    links: list[dict[str, Any]] = storage.setdefault("links", [])
    dirs: list[dict[str, Any]] = storage.setdefault("directories", [])
    for i, tree in enumerate(trees):
        tpath: PathT = ("storage", "trees", i)
        local = tree.get("local") or ""
        if ctx.files_dir is None:
            ctx.error(
                tpath,
                ERR_NO_FILES_DIR,
            )
            break
        base = ctx.resolve_local(local, tpath)
        if base is None:
            continue
        try:
            st = os.stat(base)
        except OSError as e:
            reason = "no such file or directory" if e.errno == 2 else (e.strerror or str(e)).lower()
            ctx.error(tpath, f"stat {base}: {reason}")
            continue
        if not stat.S_ISDIR(st.st_mode):
            ctx.error(tpath, "root of tree must be a directory")
            continue
        dest_root = tree.get("path") or "/"
        with_dirs = ctx.fcos_minor >= 7 and (
            tree.get("dir_mode") is not None or tree.get("user") or tree.get("group")
        )
        entries: list[tuple[str, os.stat_result | str]] = [("", st)] if with_dirs else []
        entries += _walk(base)
        for rel, est in entries:
            if isinstance(est, str):
                ctx.error(tpath, est)
                continue
            dest = posixpath.join(dest_root, rel) if rel else dest_root
            if stat.S_ISDIR(est.st_mode):
                if not with_dirs:
                    continue
                if any(n.get("path") == dest for n in files + links + dirs):
                    ctx.error(tpath, ERR_COLLISION)
                    continue
                node = {"path": dest, **_owner(tree), "mode": tree.get("dir_mode", 0o755)}
                origins[("storage", "directories", len(dirs))] = tpath
                dirs.append(node)
            elif stat.S_ISREG(est.st_mode):
                _tree_file(ctx, tree, tpath, os.path.join(base, rel), dest, est, storage, origins)
            elif stat.S_ISLNK(est.st_mode):
                _tree_link(ctx, tree, tpath, os.path.join(base, rel), dest, storage, origins)
            else:
                ctx.error(tpath, "trees may only contain files, directories, and symlinks")
    return origins
