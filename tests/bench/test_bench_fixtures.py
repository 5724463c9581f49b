"""Fixture build speed (``invoke bench``; marker ``bench``). Run with ``-s`` to see the numbers.

Target: the fixture mirror build stays well under two minutes. Its dominant step is compressing the
three metal disks (578 MiB each, sparse, ~25 MiB of incompressible kernel/initramfs) as multi-block xz.
Measured in the same run on the same images:

- baseline: ``xz -0 -T2 --block-size=8MiB --check=crc64`` per disk (what a plain FCOS-like build does);
- ours: :func:`coreos_infra.fixtures.mirror.xz_compress` with one shared block cache for all disks
  (all-zero and already-seen blocks are compressed once).

Asserts ours is at most 0.6x the baseline and that both outputs decompress to the same bytes.
"""

from __future__ import annotations

import hashlib
import lzma
import subprocess
import time
from pathlib import Path

import pytest

from coreos_infra.fixtures import FixtureMirror
from coreos_infra.fixtures.mirror import BlockCache, xz_compress

pytestmark = pytest.mark.bench


def _digest_xz(path: Path) -> str:
    h = hashlib.sha256()
    d = lzma.LZMADecompressor()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(d.decompress(chunk))
    return h.hexdigest()


def test_bench_metal_disk_compression(fixture_mirror: FixtureMirror, tmp_path: Path) -> None:
    disks = [
        fixture_mirror.metal["x86_64"],
        fixture_mirror.metal4k["x86_64"],
        fixture_mirror.metal["aarch64"],
    ]
    start = time.monotonic()
    for i, disk in enumerate(disks):
        with open(tmp_path / f"base{i}.xz", "wb") as out:
            subprocess.run(
                ["xz", "-c", "-0", "-T2", "--block-size=8MiB", "--check=crc64", str(disk)],
                stdout=out,
                check=True,
            )
    baseline = time.monotonic() - start
    start = time.monotonic()
    cache: BlockCache = {}
    for i, disk in enumerate(disks):
        xz_compress(disk, tmp_path / f"ours{i}.xz", cache=cache)
    ours = time.monotonic() - start
    ratio = ours / baseline
    print(f"\nmetal disk xz: baseline {baseline:.1f} s, ours {ours:.1f} s, ratio {ratio:.2f}")
    for i in range(len(disks)):
        assert _digest_xz(tmp_path / f"ours{i}.xz") == _digest_xz(tmp_path / f"base{i}.xz")
    assert ratio <= 0.6
