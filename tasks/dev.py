"""Developer tasks: lint, test, bench, and the offline fixture mirror."""

from __future__ import annotations

import sys
from pathlib import Path

from invoke import Context, Exit, task

from coreos_infra.exits import exits_on_errors
from tasks._common import PY


@task(help={"fix": "apply ruff's automatic fixes and formatting instead of only checking"})
@exits_on_errors
def lint(c: Context, fix: bool = False) -> None:
    """Run ruff (lint + format check) and mypy on the library."""
    if fix:
        c.run(f"{PY} -m ruff check --fix .")
        c.run(f"{PY} -m ruff format .")
    c.run(f"{PY} -m ruff check .")
    c.run(f"{PY} -m ruff format --check .")
    c.run(f"{PY} -m mypy")


@task(
    help={
        "k": "only run tests matching this pytest -k expression",
        "marker": "only run tests with this marker expression (e.g. 'not boot')",
        "verbose": "list every test",
    }
)
@exits_on_errors
def test(c: Context, k: str = "", marker: str = "", verbose: bool = False) -> None:
    """Run the whole test suite (unit, linters, boot tests in QEMU); benchmarks are `invoke bench`."""
    # Two workers: the modules that boot QEMU run one after another on one of them (tests/conftest.py)
    # while the other takes the rest; -k/-m runs of a few tests stay in one process.
    args = ["-m", f"'not bench and ({marker})'" if marker else "'not bench'"]
    if not (k or marker):
        args += ["-n", "2", "--dist", "loadgroup"]
    if k:
        args += ["-k", f"'{k}'"]
    if verbose:
        args.append("-v")
    result = c.run(f"{PY} -m pytest {' '.join(args)}", warn=True, pty=sys.stdout.isatty())
    if result is None or result.exited != 0:
        raise Exit(code=result.exited if result is not None else 1)


@task(
    help={
        "cache_dir": "directory for the fixture cache (default artifacts/cache/fixtures)",
        "rebuild": "rebuild the images and the mirror even if the cache entry is current",
        "debug": "log every command run",
    }
)
@exits_on_errors
def fixtures(c: Context, cache_dir: str = "", rebuild: bool = False, debug: bool = False) -> None:
    """Build (or reuse) the offline fixture mirror: FCOS-shaped ISO, PXE set and metal disks from Debian.

    No root needed. Cached by input hash, so a second run is instant. Prints the mirror's location, the
    file:// base URL to pass as --stream-base-url, and the keyring that verifies its signatures.
    """
    import time

    from coreos_infra.fixtures import ensure_mirror
    from coreos_infra.log import setup_logging
    from coreos_infra.summary import fixture_mirror_lines

    setup_logging(debug=debug)
    start = time.monotonic()
    m = ensure_mirror(Path(cache_dir) if cache_dir else None, rebuild=rebuild)
    print("\n".join(fixture_mirror_lines(m, time.monotonic() - start)))


@task(help={"k": "only run benchmarks matching this pytest -k expression"})
@exits_on_errors
def bench(c: Context, k: str = "") -> None:
    """Run the speed and memory benchmarks (tests/bench); each prints its ratio against a baseline."""
    args = f"-k '{k}'" if k else ""
    c.run(f"{PY} -m pytest tests/bench -m bench -s {args}", pty=sys.stdout.isatty())
