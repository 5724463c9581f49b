"""Helpers for the publish tests: real builds made once by `invoke build --offline`, and running tasks."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INVOKE = str(Path(sys.executable).parent / "invoke")


def task_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.setdefault("COREOS_INFRA_FIXTURES_CACHE", str(ROOT / "artifacts" / "cache" / "fixtures"))
    env.update(extra)
    return env


def invoke(
    *args: str, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run `invoke ARGS` in the project root (a real subprocess, as a user runs it)."""
    return subprocess.run(
        [INVOKE, *args], cwd=ROOT, env=env or task_env(), capture_output=True, text=True, timeout=timeout
    )


def ensure_builds(targets: tuple[str, ...], dest: Path) -> Path:
    """`invoke build --offline --target T --site lab --host dns1` for each target (cached by build ID),
    then a hard-linked copy of the outputs under ``dest`` (tests may add builds there)."""
    for target in targets:
        r = invoke("build", "--offline", "--target", target, "--site", "lab", "--host", "dns1")
        if r.returncode != 0:
            raise AssertionError(f"invoke build --target {target} failed:\n{r.stdout}\n{r.stderr}")
        src = ROOT / "artifacts" / "build" / target
        shutil.copytree(src, dest / target, copy_function=os.link, dirs_exist_ok=True)
    return dest


def fake_build(
    build_root: Path,
    dest_root: Path,
    base_target: str,
    build_id: str,
    *,
    date: str,
    payload: bytes | None = None,
    size: int | None = None,
) -> Path:
    """A second build of a target: a copy of a real one under a new build ID and date (and, if given,
    new artifact bytes), as `invoke build` would leave it after the inputs changed."""  # fmt: skip
    src = next((build_root / base_target).glob("*/meta.json")).parent
    dest = dest_root / base_target / src.name
    shutil.copytree(src, dest, copy_function=os.link)
    meta = json.loads((dest / "meta.json").read_text())
    meta["build_id"] = build_id
    meta["date"] = date
    if payload is not None or size is not None:
        art = meta["artifacts"][0]
        path = dest / art["name"]
        path.unlink()
        h = hashlib.sha256()
        with open(path, "wb") as f:
            if payload is not None:
                f.write(payload)
                h.update(payload)
            else:
                assert size is not None
                block = os.urandom(1 << 20)
                for i in range(size >> 20):
                    chunk = bytes([i & 0xFF]) + block[1:]
                    f.write(chunk)
                    h.update(chunk)
        art["sha256"] = h.hexdigest()
        art["size"] = path.stat().st_size
        meta.get("image", {}).pop("uncompressed_sha256", None)
    (dest / "meta.json").unlink()  # a hard link to the real build's: never write through it
    (dest / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return dest
