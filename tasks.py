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


_FETCH_HELP = {
    "stream": "FCOS stream (stable, testing, next); default: the recipe's, else stable",
    "arch": "architecture (x86_64, aarch64); default: the recipe's, else x86_64",
    "platform": "platform in the stream metadata; default: the recipe's, else metal",
    "format": "artifact format: iso, pxe, raw.xz, 4k.raw.xz, qcow2.xz, ...; default: the recipe's",
    "release": "pin this FCOS release (found in the release index); default: the recipe's or newest",
    "stream_base_url": "official server or a mirror laid out like it (http://, https://, file://, a path); "
    "default: $COREOS_INFRA_STREAM_BASE_URL or https://builds.coreos.fedoraproject.org",
    "cache_dir": "verified artifact cache; default: artifacts/cache/",
    "keyring": "extra trusted OpenPGP key file or directory of them (rotation; see README 'Trusted keys')",
    "insecure": "accept artifacts WITHOUT a signature (a bad signature is still rejected)",
}


def _fetch_wants(
    target: list[str], stream: str, arch: str, platform: str, format: str, release: str
) -> list:  # list[coreos_infra.fetch.Want]
    """What to fetch: each --target's base artifact (all recipes if no --target/--format), overridable."""
    from coreos_infra.fetch import Selection, Want, wants_of_recipe
    from coreos_infra.paths import project_root
    from coreos_infra.recipes import load_project

    if target or not format:
        project = load_project(project_root())
        recipes = [project.target(t) for t in target] if target else list(project.targets.values())
        wants = [wants_of_recipe(r) for r in recipes]
    else:
        wants = [Want(stream or "stable", None, Selection(arch or "x86_64", platform or "metal", format))]
    return [
        Want(
            stream or w.stream,
            release or w.release,
            Selection(arch or w.selection.arch, platform or w.selection.platform, format or w.selection.fmt),
        )
        for w in wants
    ]


@task(
    iterable=["target"],
    help={"target": "target recipe(s) whose base image to fetch (repeatable)"} | _FETCH_HELP,
)
def fetch(
    c: Context,
    target: list[str] | None = None,
    stream: str = "",
    arch: str = "",
    platform: str = "",
    format: str = "",
    release: str = "",
    stream_base_url: str = "",
    cache_dir: str = "",
    keyring: str = "",
    insecure: bool = False,
) -> None:
    """Download the official FCOS artifacts a target builds from into the verified cache (artifacts/cache/).

    Each file is checked against the SHA-256 in the stream metadata and its detached OpenPGP signature
    (pinned Fedora keys) before it enters the cache; a second run is a cache hit with no download.
    """
    from pathlib import Path

    from coreos_infra.errors import CoreosInfraError
    from coreos_infra.fetch import fetch_artifacts, stream_base_url_default
    from coreos_infra.log import setup_logging
    from coreos_infra.paths import cache_dir as default_cache

    setup_logging()
    try:
        for want in _fetch_wants(target or [], stream, arch, platform, format, release):
            sel = want.selection
            got = fetch_artifacts(
                base_url=stream_base_url or stream_base_url_default(),
                stream=want.stream,
                arch=sel.arch,
                platform=sel.platform,
                fmt=sel.fmt,
                release=want.release,
                cache_dir=Path(cache_dir) if cache_dir else default_cache(),
                keyring=Path(keyring) if keyring else None,
                insecure=insecure,
            )
            print(f"{want.stream} {got.release} {sel.arch} {sel.platform} {sel.fmt}:")
            for role, path in got.files.items():
                print(f"  {role:<10} {path}  ({got.artifacts[role].name})")
    except CoreosInfraError as e:
        print(f"Error: {e}", file=sys.stderr)
        raise Exit(code=1) from None


@task(
    iterable=["target"],
    help={
        "dest": "directory of the mirror to create or update (required)",
        "target": "only these target recipes (repeatable); default: every recipe in recipes/",
        "mirror_url": "URL the mirror will be served from, written into its metadata; default: the official "
        "URL, which coreos-infra rewrites to wherever it reads the mirror from",
        **_FETCH_HELP,
    },
)
def mirror(
    c: Context,
    dest: str = "",
    target: list[str] | None = None,
    stream: str = "",
    arch: str = "",
    platform: str = "",
    format: str = "",
    release: str = "",
    stream_base_url: str = "",
    cache_dir: str = "",
    keyring: str = "",
    insecure: bool = False,
    mirror_url: str = "",
) -> None:
    """Copy the verified artifacts the recipes need into a local mirror laid out like the official server.

    The mirror gets the files with their .sig, streams/<stream>.json, releases.json and release.json, so
    an air-gapped site can use it with --stream-base-url (http://, https:// or file://).
    """
    from pathlib import Path

    from coreos_infra.errors import CoreosInfraError
    from coreos_infra.fetch import mirror_artifacts, stream_base_url_default
    from coreos_infra.log import setup_logging
    from coreos_infra.paths import cache_dir as default_cache
    from coreos_infra.stream import DEFAULT_BASE_URL

    if not dest:
        print("Error: --dest is required", file=sys.stderr)
        raise Exit(code=2)
    setup_logging()
    groups: dict[tuple[str, str | None], list] = {}
    try:
        for want in _fetch_wants(target or [], stream, arch, platform, format, release):
            groups.setdefault((want.stream, want.release), [])
            if want.selection not in groups[(want.stream, want.release)]:
                groups[(want.stream, want.release)].append(want.selection)
        for (stream_name, rel), selections in groups.items():
            path = mirror_artifacts(
                Path(dest),
                selections,
                base_url=stream_base_url or stream_base_url_default(),
                stream=stream_name,
                release=rel,
                cache_dir=Path(cache_dir) if cache_dir else default_cache(),
                keyring=Path(keyring) if keyring else None,
                insecure=insecure,
                mirror_url=mirror_url or DEFAULT_BASE_URL,
            )
            what = ", ".join(f"{s.arch}/{s.platform}/{s.fmt}" for s in selections)
            print(f"{path}: {stream_name} {rel or '(newest)'}: {what}")
    except CoreosInfraError as e:
        print(f"Error: {e}", file=sys.stderr)
        raise Exit(code=1) from None


@task(
    help={
        "cache_dir": "directory for the fixture cache (default artifacts/cache/fixtures)",
        "rebuild": "rebuild the images and the mirror even if the cache entry is current",
        "debug": "log every command run",
    }
)
def fixtures(c: Context, cache_dir: str = "", rebuild: bool = False, debug: bool = False) -> None:
    """Build (or reuse) the offline fixture mirror: FCOS-shaped ISO, PXE set and metal disks from Debian.

    No root needed. Cached by input hash, so a second run is instant. Prints the mirror's location, the
    file:// base URL to pass as --stream-base-url, and the keyring that verifies its signatures.
    """
    import time
    from pathlib import Path

    from coreos_infra.errors import CoreosInfraError
    from coreos_infra.fixtures import ensure_mirror
    from coreos_infra.log import setup_logging

    setup_logging(debug=debug)
    start = time.monotonic()
    try:
        m = ensure_mirror(Path(cache_dir) if cache_dir else None, rebuild=rebuild)
    except CoreosInfraError as e:
        print(f"Error: {e}", file=sys.stderr)
        raise Exit(code=1) from None
    state = "built" if m.rebuilt else "cached"
    print(f"fixture mirror ({state} in {time.monotonic() - start:.1f} s): {m.root}")
    print(f"  --stream-base-url {m.base_url}")
    print(f"  keyring {m.keyring}  (fingerprint {m.fingerprint})")
    print(f"  streams: {', '.join(f'{s}={r}' for s, r in sorted(m.streams.items()))}")
    print(f"  live ISO {m.iso}")
    for arch, path in sorted(m.metal.items()):
        print(f"  metal {arch} {path}")
