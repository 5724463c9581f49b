"""Rendering, fetching, mirroring and building images."""

from __future__ import annotations

import sys
from pathlib import Path

from invoke import Context, Exit, task

from coreos_infra.exits import exits_on_errors
from tasks._common import ROOT, SOURCE_HELP, outcomes, recipes


@task(
    help={
        "target": f"target recipe to render for (recipes/<target>.yaml): {recipes()}",
        "site": "site profile (recipes/sites/<site>.yaml); may be left out when there is only one",
        "host": "host of the site to render for; left out: a site-wide config (admins, updates, DHCP)",
        "base_release": "FCOS release the build will use (part of the build ID); default: none yet",
        "firmware_version": "firmware version the build will use (part of the build ID); default: none",
        "out": "output directory; default: artifacts/render/<site>/<host>/<target>/",
        "all": "render every target for the site and each of its hosts (a quick check of a site change)",
    }
)
@exits_on_errors
def render(
    c: Context,
    target: str = "",
    site: str = "",
    host: str = "",
    base_release: str = "",
    firmware_version: str = "",
    out: str = "",
    all: bool = False,
) -> None:
    """Render a site's Butane and Ignition for a target (and host); print the paths and the build ID."""
    from coreos_infra.paths import artifacts_dir, project_root
    from coreos_infra.recipes import load_project
    from coreos_infra.recipes import render as render_config
    from coreos_infra.recipes.output import render_all, render_dir, write_render
    from coreos_infra.summary import render_all_lines, render_lines

    if all:
        project = load_project(project_root())
        results = render_all(project, site or project.default_site().name, artifacts_dir())
        print("\n".join(render_all_lines(results)))
        return
    if not target:
        print("Error: --target is required (see `invoke list`)", file=sys.stderr)
        raise Exit(code=2)
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
    print("\n".join(render_lines(rendered, files)))
    if rendered.contains_secrets:
        print("note: the Ignition config contains secrets; the files are mode 0600", file=sys.stderr)


@task(name="list", help={"overlays": "also list every overlay variable with its default and documentation"})
@exits_on_errors
def list_(c: Context, overlays: bool = False) -> None:
    """List the sites (with their hosts, roles and update windows), target recipes and overlays."""
    from coreos_infra.paths import project_root
    from coreos_infra.recipes import load_project
    from coreos_infra.recipes.output import describe

    text = describe(load_project(project_root()))
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


@task(
    iterable=["target"],
    help={"target": "target recipe(s) whose base image to fetch (repeatable)"} | _FETCH_HELP,
)
@exits_on_errors
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
    from coreos_infra.fetch import fetch_artifacts, stream_base_url_default
    from coreos_infra.log import setup_logging
    from coreos_infra.paths import cache_dir as default_cache
    from coreos_infra.summary import fetch_lines
    from coreos_infra.taskplan import fetch_wants

    setup_logging()
    for want in fetch_wants(ROOT, target or [], stream, arch, platform, format, release):
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
        print("\n".join(fetch_lines(want, got)))


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
@exits_on_errors
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
    from coreos_infra.fetch import mirror_artifacts, stream_base_url_default
    from coreos_infra.log import setup_logging
    from coreos_infra.paths import cache_dir as default_cache
    from coreos_infra.stream import DEFAULT_BASE_URL
    from coreos_infra.taskplan import fetch_wants, mirror_groups

    if not dest:
        print("Error: --dest is required", file=sys.stderr)
        raise Exit(code=2)
    setup_logging()
    wants = fetch_wants(ROOT, target or [], stream, arch, platform, format, release)
    for (stream_name, rel), selections in mirror_groups(wants).items():
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


@task(
    iterable=["host"],
    help={
        "target": f"target recipe to build ({recipes()}; see `invoke list`)",
        "site": "site profile (default: the only/first site in recipes/sites/)",
        "host": "host of the site to build for (repeatable); default: a site-wide image",
        "all_hosts": "build one image per host of the site",
        **SOURCE_HELP,
    },
)
@exits_on_errors
def build(
    c: Context,
    target: str = "",
    site: str = "",
    host: list[str] | None = None,
    all_hosts: bool = False,
    offline: bool = False,
    stream_base_url: str = "",
    keyring: str = "",
    insecure: bool = False,
    firmware_url: str = "",
    force: bool = False,
) -> None:
    """Build a ready-to-flash artifact: fetch the verified FCOS base, render the site, customize, meta.json.

    Outputs go to artifacts/build/<target>/<site>-<host>-<target>/ with a meta.json (sha256, size, build ID,
    base release). A build whose inputs did not change (same build ID) is not redone.
    """
    from coreos_infra.summary import build_lines

    source_args = (offline, stream_base_url, keyring, insecure, firmware_url)
    for outcome in outcomes(target, site, host, all_hosts, source_args, force):
        print("\n".join(build_lines(outcome)))
