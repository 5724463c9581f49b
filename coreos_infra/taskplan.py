"""What an ``invoke`` task works on, from its command-line options: sources, hosts, build plans, fetch wants.

The tasks in ``tasks/`` only parse options and print; everything they decide lives here, typed and
testable without Invoke.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from coreos_infra.errors import CoreosInfraError
from coreos_infra.fetch import Selection, Want, stream_base_url_default, wants_of_recipe
from coreos_infra.paths import artifacts_dir, cache_dir
from coreos_infra.pipeline import BuildOutcome, BuildPlan, Source, build, offline_source
from coreos_infra.recipes import load_project


def recipe_names(root: Path) -> list[str]:
    """The target recipes of the project (``recipes/<name>.yaml``), for help texts; no YAML is read."""
    return sorted(p.stem for p in (root / "recipes").glob("*.yaml"))


def source_of(
    offline: bool, stream_base_url: str, keyring: str, insecure: bool, firmware_url: str
) -> Source:
    """Where base images come from: the offline fixture mirror, or a server (default: the official one)."""
    if offline:
        given = [f"--{n}" for n, v in (("stream-base-url", stream_base_url), ("keyring", keyring),
                                       ("firmware-url", firmware_url)) if v]  # fmt: skip
        if given:
            raise CoreosInfraError(
                f"--offline uses the built-in fixture mirror and its key; it cannot be combined with "
                f"{', '.join(given)}",
                hint="drop --offline to use your own mirror, or drop the other options",
            )
        return offline_source()
    return Source(
        base_url=stream_base_url or stream_base_url_default(),
        keyring=Path(keyring) if keyring else None,
        insecure=insecure,
        firmware_url=firmware_url or None,
    )


def hosts_of(root: Path, site: str, hosts: Sequence[str] | None, all_hosts: bool) -> list[str | None]:
    """The hosts to build for: the given ones, every host of the site, or one site-wide image (None)."""
    if not all_hosts:
        return list(hosts) if hosts else [None]
    project = load_project(root)
    s = project.site(site) if site else project.default_site()
    return [h.name for h in s.hosts]


def build_plan(
    root: Path, target: str, site: str, host: str | None, source: Source, force: bool
) -> BuildPlan:
    return BuildPlan(
        root=root,
        target=target,
        site=site or None,
        host=host,
        source=source,
        cache_dir=cache_dir(root),
        out_root=artifacts_dir(root) / "build",
        force=force,
        keys_dir=artifacts_dir(root) / "keys",
    )


def build_outcomes(
    root: Path,
    target: str,
    site: str,
    hosts: Sequence[str] | None,
    all_hosts: bool,
    source: Source,
    force: bool,
) -> Iterator[BuildOutcome]:
    """Build (or find up to date) each requested (target, site, host)."""
    for host in hosts_of(root, site, hosts, all_hosts):
        yield build(build_plan(root, target, site, host, source, force))


def fetch_wants(
    root: Path, targets: Sequence[str], stream: str, arch: str, platform: str, fmt: str, release: str
) -> list[Want]:
    """What to fetch: each target's base artifact (every recipe's without targets and format), with the
    options overriding the recipe's stream, release, arch, platform and format."""
    if targets or not fmt:
        project = load_project(root)
        recipes = [project.target(t) for t in targets] if targets else list(project.targets.values())
        wants = [wants_of_recipe(r) for r in recipes]
    else:
        wants = [Want(stream or "stable", None, Selection(arch or "x86_64", platform or "metal", fmt))]
    return [
        Want(
            stream or w.stream,
            release or w.release,
            Selection(arch or w.selection.arch, platform or w.selection.platform, fmt or w.selection.fmt),
        )
        for w in wants
    ]


def mirror_groups(wants: Sequence[Want]) -> dict[tuple[str, str | None], list[Selection]]:
    """The wants by (stream, release), each selection once, in the order first wanted."""
    groups: dict[tuple[str, str | None], list[Selection]] = {}
    for want in wants:
        selections = groups.setdefault((want.stream, want.release), [])
        if want.selection not in selections:
            selections.append(want.selection)
    return groups
