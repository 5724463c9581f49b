"""A directory publisher for the nightly tests, until coreos_infra.publish ([publish]) is wired in.

It implements :class:`coreos_infra.nightly.publisher.Publisher` with real file copies in the store
layout of the publish spec (``sites/<site>/<host>/<target>/<build_id>/<file>``, meta.json last, so a
build counts as published only when complete) and records every upload, so tests can assert what was
(not) uploaded.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class DirectoryPublisher:
    root: Path
    uploads: list[str] = field(default_factory=list)
    indexes_written: int = 0

    def _build_dirs(self) -> list[Path]:
        return sorted(p.parent for p in self.root.glob("sites/*/*/*/*/meta.json"))

    def already_published(self, build_id: str) -> bool:
        return any(d.name == build_id for d in self._build_dirs())

    def publish(self, build_dir: Path) -> str:
        meta = json.loads((build_dir / "meta.json").read_text())
        dest = self.root / "sites" / meta["site"] / meta["host"] / meta["target"] / meta["build_id"]
        dest.mkdir(parents=True, exist_ok=True)
        for art in meta["artifacts"]:
            src = next(p for p in [build_dir / art["name"], *build_dir.rglob(art["name"])] if p.is_file())
            shutil.copyfile(src, dest / art["name"])
            self.uploads.append(f"{dest.relative_to(self.root)}/{art['name']}")
        shutil.copyfile(build_dir / "meta.json", dest / "meta.json")
        self.uploads.append(f"{dest.relative_to(self.root)}/meta.json")
        return (dest / meta["artifacts"][0]["name"]).as_uri()

    def write_indexes(self) -> None:
        self.indexes_written += 1
        index = [str(d.relative_to(self.root)) for d in self._build_dirs()]
        (self.root / "index.json").write_text(json.dumps(index, indent=2) + "\n")

    def prune(self, keep: int) -> Sequence[str]:
        return []

    def published_items(self) -> set[str]:
        """``site/host/target`` of every complete build in the store."""
        return {"/".join(d.relative_to(self.root / "sites").parts[:3]) for d in self._build_dirs()}
