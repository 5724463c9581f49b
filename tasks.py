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


@task(
    help={
        "target": "target recipe to render for (recipes/<target>.yaml), e.g. usb, live, pxe, rpi4, metal",
        "site": "site profile (recipes/sites/<site>.yaml); may be left out when there is only one",
        "host": "host of the site to render for; left out: a site-wide config (admins, updates, DHCP)",
        "base_release": "FCOS release the build will use (part of the build ID); default: none yet",
        "firmware_version": "firmware version the build will use (part of the build ID); default: none",
        "out": "output directory; default: artifacts/render/<site>/<host>/<target>/",
    }
)
def render(
    c: Context,
    target: str = "",
    site: str = "",
    host: str = "",
    base_release: str = "",
    firmware_version: str = "",
    out: str = "",
) -> None:
    """Render a site's Butane and Ignition for a target (and host); print the paths and the build ID."""
    from pathlib import Path

    from coreos_infra.errors import CoreosInfraError
    from coreos_infra.paths import artifacts_dir, project_root
    from coreos_infra.recipes import load_project
    from coreos_infra.recipes import render as render_config
    from coreos_infra.recipes.output import render_dir, write_render

    if not target:
        print("Error: --target is required (see `invoke list`)", file=sys.stderr)
        raise Exit(code=2)
    try:
        project = load_project(project_root())
        site_name = site or project.default_site().name
        rendered = render_config(
            project,
            target=target,
            site=site_name,
            host=host or None,
            base_release=base_release,
            firmware_version=firmware_version,
        )
        files = write_render(rendered, Path(out) if out else render_dir(artifacts_dir(), rendered))
    except CoreosInfraError as e:
        print(f"Error: {e}", file=sys.stderr)
        raise Exit(code=1) from None
    print(f"butane:   {files.butane}")
    print(f"ignition: {files.ignition}")
    print(f"overlays: {', '.join(rendered.overlays)}")
    print(f"build ID: {rendered.build_id}")
    if rendered.contains_secrets:
        print("note: the Ignition config contains secrets; the files are mode 0600", file=sys.stderr)


@task(name="list", help={"overlays": "also list every overlay variable with its default and documentation"})
def list_(c: Context, overlays: bool = False) -> None:
    """List the sites (with their hosts, roles and update windows), target recipes and overlays."""
    from coreos_infra.errors import CoreosInfraError
    from coreos_infra.paths import project_root
    from coreos_infra.recipes import load_project
    from coreos_infra.recipes.output import describe

    try:
        text = describe(load_project(project_root()))
    except CoreosInfraError as e:
        print(f"Error: {e}", file=sys.stderr)
        raise Exit(code=1) from None
    if not overlays:
        text = "\n".join(line for line in text.splitlines() if not line.startswith("      "))
    print(text)
