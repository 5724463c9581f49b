"""Real file-system faults for tests: a tiny tmpfs (to fill up: ENOSPC) or a read-only one (EROFS).

Needs root and mount(2) (as in the CI container); tests skip with the reason otherwise.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def _mount(args: list[str]) -> None:
    r = subprocess.run(["mount", *args], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {r.stderr.strip()}")


@contextlib.contextmanager
def tmpfs(path: Path, *, size: str = "1m", read_only: bool = False) -> Iterator[Path]:
    """Mount a tmpfs of ``size`` on ``path`` (created) for the block; ``read_only`` remounts it ro."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    path.mkdir(parents=True, exist_ok=True)
    _mount(["-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)])
    try:
        if read_only:
            _mount(["-o", "remount,ro", str(path)])
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(directory: Path) -> None:
    """Write a filler file into ``directory`` until the file system is full."""
    chunk = b"\xa5" * 65536
    with open(directory / "filler", "wb", buffering=0) as f:
        while True:
            try:
                f.write(chunk)
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
                break
        # also the last few bytes, so that not even a small file fits
        with contextlib.suppress(OSError):
            while f.write(b"\xa5" * 512):
                pass


def entries(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir()}
