"""Whole-process speed of ``coreos-infra`` as a user runs it (``invoke bench``; marker ``bench``).

Targets (issue 11, item 18), each against a baseline measured in the same run, interleaved:
- ``python -m coreos_infra iso customize --dest-device ... --dest-ignition ... -o OUT ISO`` on a 1 GiB ISO
  (``BENCH_ISO_MIB``) within 1.15x of ``cp ISO OUT``: start-up, imports and customization included;
- start-up: ``coreos-infra iso customize --help`` costs less than 50 ms more than ``python -c pass``,
  in CPU time (user + system): on a loaded machine wall time mostly measures waiting for a CPU.

Every run is its own process started from a small launcher (see benchlib), so each figure, peak RSS
included, belongs to that command alone. Bytecode is cached (in a temporary prefix, written by the
warm-up run) as it is for an installed package, even when ``PYTHONDONTWRITEBYTECODE`` is set. Before
each customize or cp run the last output is removed, synced and left 2.5 s to settle: on this VM a run
that reuses memory freed just before (not yet reported to the host) is up to 3x faster than one after a
pause, so back-to-back runs measured the order of the commands more than the commands.

Measured 2026-12-07 on this 2-core machine: back to back ratio 0.97 (pairwise 0.71..1.38); settled
0.91 and 0.95 (pairwise 0.82..1.13; both sides ~1.6-2.2 s, paying the host's faults for fresh memory);
start-up cost 45 ms cpu.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
from pathlib import Path

import pytest
from benchlib import Measured, measure, settle
from test_bench_iso import DATA_MIB, FIXTURE, _make_iso

pytestmark = pytest.mark.bench

CONFIG = json.dumps({"ignition": {"version": "3.4.0"}, "storage": {"files": [{"path": "/etc/x"}]}})


def _env(pycache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


def _run(argv: list[str], env: dict[str, str], before: Path | None = None) -> Measured:
    """``before``: the output of the last such run, removed (untimed) and its writeback and freed memory
    given time to settle, so that no run pays for another's (see test_bench_download's ``prepare``)."""
    if before is not None:
        before.unlink(missing_ok=True)
        settle()
    return measure(argv, env=env)


def _row(name: str, runs: list[Measured]) -> str:
    secs = [m.seconds for m in runs]
    cpu = statistics.median(m.cpu_seconds for m in runs)
    peak = max(m.peak_kib for m in runs) / 1024
    return (f"{name}: wall median {statistics.median(secs):.3f} s (min {min(secs):.3f}), cpu median "
            f"{cpu:.3f} s, peak RSS {peak:.0f} MiB")  # fmt: skip


def _cpu(runs: list[Measured]) -> float:
    return statistics.median(m.cpu_seconds for m in runs)


@pytest.mark.skipif(not FIXTURE.exists(), reason=f"needs the upstream ISO fixture {FIXTURE}")
def test_bench_iso_customize_whole_process_vs_cp(tmp_path: Path) -> None:
    env = _env(tmp_path / "pycache")
    src = _make_iso(tmp_path / "data.iso", DATA_MIB << 20, fill=True)
    ign = tmp_path / "dest.ign"
    ign.write_text(CONFIG)
    out, copy = tmp_path / "out.iso", tmp_path / "copy.iso"
    ours = [sys.executable, "-m", "coreos_infra", "iso", "customize", "--dest-device", "/dev/sda",
            "--dest-ignition", str(ign), "-o", str(out), str(src)]  # fmt: skip
    cp = ["cp", str(src), str(copy)]
    _run(ours, env, out), _run(cp, env, copy)  # warm-up: page cache and bytecode
    t_ours, t_cp = [], []
    for _ in range(7):  # interleaved so both see the same machine load
        t_cp.append(_run(cp, env, copy))
        t_ours.append(_run(ours, env, out))
    ratio = statistics.median(m.seconds for m in t_ours) / statistics.median(m.seconds for m in t_cp)
    pairs = sorted(a.seconds / b.seconds for a, b in zip(t_ours, t_cp, strict=True))
    print(f"\niso customize -o, whole process, {DATA_MIB} MiB ISO, 7 interleaved runs:\n  "
          f"{_row('coreos-infra', t_ours)}\n  {_row('cp', t_cp)}\n  ratio of medians {ratio:.2f} "
          f"(goal <= 1.15), pairwise {pairs[0]:.2f}..{pairs[-1]:.2f}; cpu ratio "
          f"{_cpu(t_ours) / _cpu(t_cp):.2f}")  # fmt: skip
    assert out.stat().st_size == src.stat().st_size
    assert ratio <= 1.15


def test_bench_help_start_up(tmp_path: Path) -> None:
    env = _env(tmp_path / "pycache")
    helps = [sys.executable, "-m", "coreos_infra", "iso", "customize", "--help"]
    bare = [sys.executable, "-c", "pass"]
    _run(helps, env), _run(bare, env)
    t_help, t_bare = [], []
    for _ in range(10):
        t_bare.append(_run(bare, env))
        t_help.append(_run(helps, env))
    extra = _cpu(t_help) - _cpu(t_bare)
    wall = statistics.median(m.seconds for m in t_help) - statistics.median(m.seconds for m in t_bare)
    print(f"\nstart-up, 10 interleaved runs:\n  {_row('iso customize --help', t_help)}\n  "
          f"{_row('python -c pass', t_bare)}\n  start-up cost {extra * 1000:.0f} ms cpu (target < 50 ms), "
          f"{wall * 1000:.0f} ms wall")  # fmt: skip
    assert extra < 0.050
