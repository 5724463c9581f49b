"""ISO embedding speed and memory (``invoke bench``; marker ``bench``).

Targets (issue 5):
- in place: the same time for a 10 MiB and a 4 GiB ISO (only the embed areas are written);
- ``-o FILE``: within 1.15x of ``cp`` of the same file, measured in the same run;
- peak memory independent of the ISO size.

The big ISOs are the 2023-07 x86_64 fixture ISO extended to size: sparse for the 4 GiB case (holes
must stay holes, as with ``cp``), filled with incompressible data for the copy-speed case
(``BENCH_ISO_MIB``, default 1024 MiB, the size of a real FCOS live ISO). Ratios are printed (``-s``).
"""

from __future__ import annotations

import json
import lzma
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from benchlib import python_measure

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from shared_fixtures import corpus, needs  # noqa: E402

pytestmark = [pytest.mark.bench, needs("coreos-installer/iso")]

ROOT = Path(__file__).resolve().parent.parent.parent
FIXTURE = corpus("coreos-installer/iso") / "embed-areas-2023-07.x86_64.iso.xz"
DATA_MIB = int(os.environ.get("BENCH_ISO_MIB", "1024"))
CONFIG = json.dumps({"ignition": {"version": "3.3.0"}, "storage": {"files": [{"path": "/x"}]}}).encode()


def _make_iso(path: Path, size: int, *, fill: bool) -> Path:
    base = lzma.decompress(FIXTURE.read_bytes())
    with open(path, "wb") as f:
        f.write(base)
        if fill:
            block = os.urandom(1 << 20)
            while f.tell() < size:
                f.write(block[: size - f.tell()])
        f.truncate(size)
    return path


def _best(fn: Callable[[], None], runs: int = 5) -> float:
    """Best wall time of ``runs`` calls, each started with no dirty pages pending.

    The minimum, not the median: on a shared machine other jobs' I/O and CPU only ever add time, so the
    minimum is the best estimate of what the operation itself costs (both sides measured the same way).
    """
    times = []
    for _ in range(runs):
        os.sync()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


CHILD = """
import sys
from coreos_infra.live.iso.image import LiveIso
src, mode, out = sys.argv[1], sys.argv[2], sys.argv[3]
with LiveIso(src) as iso:
    iso.set_initrd({"config.ign": sys.stdin.buffer.read()})
    iso.set_kargs(iso.default_kargs() + " bench=1")
    iso.save(None if mode == "inplace" else out)
"""


def _child_peak_kib(src: Path, mode: str, out: Path) -> int:
    """Peak RSS of the embedding in its own process (not inherited from pytest; see benchlib)."""
    return python_measure(CHILD, str(src), mode, str(out), input=CONFIG).peak_kib


def _embed(src: Path, out: Path | None) -> None:
    """What ``coreos-infra iso ignition embed [-o OUT] SRC`` does, in-process."""
    from coreos_infra.live.iso.image import LiveIso

    with LiveIso(src) as iso:
        iso.set_initrd({"config.ign": CONFIG}, background=True)
        iso.save(out)


def test_bench_in_place_independent_of_size(tmp_path: Path) -> None:
    small = _make_iso(tmp_path / "small.iso", 10 << 20, fill=False)
    big = _make_iso(tmp_path / "big.iso", 4 << 30, fill=False)
    t_small = _best(lambda: _embed(small, None), runs=7)
    t_big = _best(lambda: _embed(big, None), runs=7)
    ratio = t_big / t_small
    print(
        f"\nin place embed: 10 MiB {t_small * 1000:.1f} ms, 4 GiB {t_big * 1000:.1f} ms, ratio {ratio:.2f}"
    )
    assert ratio < 1.5, "in-place embedding must not depend on the ISO size"


def test_bench_output_vs_cp(tmp_path: Path) -> None:
    src = _make_iso(tmp_path / "data.iso", DATA_MIB << 20, fill=True)
    dst_cp, dst_ours = tmp_path / "cp.iso", tmp_path / "ours.iso"

    def cp() -> None:
        dst_cp.unlink(missing_ok=True)
        subprocess.run(["cp", str(src), str(dst_cp)], check=True)

    def ours() -> None:
        dst_ours.unlink(missing_ok=True)
        _embed(src, dst_ours)

    cp()
    ours()  # warm the page cache for both
    t_cp, t_ours = [], []
    for _ in range(7):  # interleaved so both see the same machine load
        t_cp.append(_best(cp, runs=1))
        t_ours.append(_best(ours, runs=1))
    ratio = min(t_ours) / min(t_cp)
    print(
        f"\n-o FILE vs cp ({DATA_MIB} MiB of data, best of {len(t_cp)}): cp {min(t_cp):.3f} s, "
        f"ours {min(t_ours):.3f} s, ratio {ratio:.2f} (target <= 1.15); medians cp "
        f"{statistics.median(t_cp):.3f} s, ours {statistics.median(t_ours):.3f} s"
    )
    assert dst_ours.stat().st_size == src.stat().st_size
    assert ratio <= 1.15


def test_bench_sparse_output_vs_cp(tmp_path: Path) -> None:
    big = _make_iso(tmp_path / "big.iso", 4 << 30, fill=False)
    dst_cp, dst_ours = tmp_path / "cp.iso", tmp_path / "ours.iso"

    def cp() -> None:
        dst_cp.unlink(missing_ok=True)
        subprocess.run(["cp", str(big), str(dst_cp)], check=True)

    def ours() -> None:
        dst_ours.unlink(missing_ok=True)
        _embed(big, dst_ours)

    t_cp, t_ours = _best(cp, runs=3), _best(ours, runs=3)
    used = dst_ours.stat().st_blocks * 512
    print(
        f"\n-o FILE vs cp (4 GiB sparse): cp {t_cp * 1000:.1f} ms, ours {t_ours * 1000:.1f} ms, "
        f"ratio {t_ours / t_cp:.2f}; output uses {used >> 10} KiB on disk"
    )
    assert used < 64 << 20, "holes must stay holes"


def test_bench_peak_memory_independent_of_size(tmp_path: Path) -> None:
    small = _make_iso(tmp_path / "small.iso", 10 << 20, fill=False)
    big = _make_iso(tmp_path / "big.iso", 4 << 30, fill=False)
    data = _make_iso(tmp_path / "data.iso", min(DATA_MIB, 256) << 20, fill=True)
    peaks = {}
    for label, src in (("10 MiB", small), ("4 GiB sparse", big), (f"{min(DATA_MIB, 256)} MiB data", data)):
        for mode in ("inplace", "output"):
            out = tmp_path / f"out-{mode}.iso"
            out.unlink(missing_ok=True)
            peaks[(label, mode)] = _child_peak_kib(src, mode, out)
            out.unlink(missing_ok=True)
    shutil.rmtree(tmp_path, ignore_errors=True)
    base = peaks[("10 MiB", "inplace")]
    print("\npeak RSS (KiB): " + ", ".join(f"{k[0]} {k[1]}: {v}" for k, v in peaks.items()))
    worst = max(peaks.values()) / base
    print(f"worst peak / 10 MiB in-place peak: {worst:.2f}")
    assert worst < 1.25, "peak memory must not grow with the ISO size"
