"""Measuring one operation in its own process: wall time and its own peak RSS.

``ru_maxrss`` of a process started from pytest is useless: a forked (or vforked) child starts with the
parent's pages mapped, and Linux carries that high-water mark across ``exec``, so every child reports at
least the pytest process's peak. :func:`measure` starts a small launcher first; the launcher runs the
command and reads ``RUSAGE_CHILDREN`` — the largest peak of the command or any process it waited for,
counted from the launcher's own small footprint (about 10 MiB), not from pytest's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent

LAUNCHER = """
import json, resource, subprocess, sys, time
report, argv = sys.argv[1], sys.argv[2:]
start = time.perf_counter()
code = subprocess.call(argv)
seconds = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(report, "w") as f:
    json.dump({"seconds": seconds, "cpu_seconds": usage.ru_utime + usage.ru_stime,
               "peak_kib": usage.ru_maxrss, "returncode": code}, f)
"""


def settle() -> None:
    """Before a timed run, after the last run's output was removed: its writeback done and its memory
    settled. On a VM with free page reporting (virtio-balloon, as here) the kernel hands freed memory back
    to the host 2 s after it was freed, and whoever touches it next pays the host's faults (up to 3x the
    system time); waiting that out gives every run the same memory state, so a run is not fast or slow
    by what ran just before it."""
    os.sync()
    time.sleep(2.5)


def interleaved_min(
    fns: list[Callable[[], None]], prepare: Callable[[], None], rounds: int = 5
) -> list[float]:
    """Best time of each function over ``rounds`` rounds that run them in turn.

    On a shared machine other jobs only ever add time, and taking turns gives both sides the same load:
    the minimum of interleaved runs is the fairest estimate of each operation's own cost. Before each run
    (untimed) ``prepare`` removes every earlier output, then a ``sync`` and a 2.5 s pause: on a VM whose
    balloon reports freed memory to the host (2 s after it is freed), a run that touches such pages pays
    the host's faults, so a run that freed its own last output just before writing a new one (reusing
    pages not yet reported) was faster than one writing to a fresh place.
    """
    best = [float("inf")] * len(fns)
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            prepare()
            settle()
            start = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - start)
    return best


@dataclass(frozen=True)
class Measured:
    seconds: float  # wall time of the command alone (the launcher's start-up is not counted)
    cpu_seconds: float  # user + system time of the command and every process it waited for
    peak_kib: int  # peak RSS of the largest process of the command, KiB
    stdout: bytes


def measure(argv: Sequence[str], *, input: bytes | None = None, cwd: Path = ROOT,
            env: Mapping[str, str] | None = None) -> Measured:  # fmt: skip
    """Run ``argv`` in a fresh process tree; fail (with its stderr) unless it exits 0."""
    with tempfile.NamedTemporaryFile(suffix=".json") as report:
        r = subprocess.run([sys.executable, "-c", LAUNCHER, report.name, *argv], input=input,
                           capture_output=True, cwd=cwd, env=env)  # fmt: skip
        data = json.loads(Path(report.name).read_text() or "{}")
    if r.returncode != 0 or data.get("returncode") != 0:
        raise AssertionError(
            f"{argv} failed ({data.get('returncode')}): {r.stderr.decode(errors='replace')}"
        )
    return Measured(float(data["seconds"]), float(data["cpu_seconds"]), int(data["peak_kib"]), r.stdout)


def python_measure(code: str, *args: str, input: bytes | None = None) -> Measured:
    """:func:`measure` for a Python snippet run with this interpreter from the project root."""
    return measure([sys.executable, "-c", code, *args], input=input)
