"""Invoke tasks for coreos-infra: thin wrappers that parse options and call the library.

`invoke --list` shows them all; `invoke TASK --help` documents every option.
"""

from __future__ import annotations

import sys

from invoke import Context, Exit, task

PY = sys.executable


@task(help={"fix": "apply ruff's automatic fixes and formatting instead of only checking"})
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
def test(c: Context, k: str = "", marker: str = "", verbose: bool = False) -> None:
    """Run the whole test suite (unit, linters, boot tests in QEMU); benchmarks are `invoke bench`."""
    args = ["-m", f"'not bench and ({marker})'" if marker else "'not bench'"]
    if k:
        args += ["-k", f"'{k}'"]
    if verbose:
        args.append("-v")
    result = c.run(f"{PY} -m pytest {' '.join(args)}", warn=True, pty=sys.stdout.isatty())
    if result is None or result.exited != 0:
        raise Exit(code=result.exited if result is not None else 1)
