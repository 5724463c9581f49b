"""The nightly matrix: every (site, host, target) of the project, narrowed by ``--sites/--hosts/...``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from coreos_infra.errors import CoreosInfraError
from coreos_infra.recipes import Project


@dataclass(frozen=True, order=True)
class Item:
    """One image the nightly builds."""

    site: str
    host: str
    target: str

    @property
    def key(self) -> str:
        """``site/host/target``: what sharding hashes and reports are keyed by."""
        return f"{self.site}/{self.host}/{self.target}"

    @property
    def name(self) -> str:
        """A file-name-safe name (``lab-dns1-pxe``, like the build directory)."""
        return f"{self.site}-{self.host}-{self.target}"


def split_names(text: str) -> tuple[str, ...]:
    """``"a, b,c"`` → ``("a", "b", "c")``; empty entries are dropped."""
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _unknown(what: str, names: Sequence[str], known: Sequence[str]) -> None:
    missing = [n for n in names if n not in known]
    if missing:
        raise CoreosInfraError(
            f"unknown {what} {', '.join(repr(m) for m in missing)}",
            hint=f"{what}s: {', '.join(sorted(known)) or 'none'} (see `invoke list`)",
        )


def select_items(
    project: Project,
    *,
    sites: Sequence[str] = (),
    hosts: Sequence[str] = (),
    targets: Sequence[str] = (),
) -> list[Item]:
    """Every (site, host, target) in scope, sorted; an empty filter means all.

    A name in a filter that the project does not have is an error (a typo must not silently shrink the
    nightly). Sites without hosts have no per-host images and contribute nothing.
    """
    _unknown("site", sites, list(project.sites))
    _unknown("target", targets, list(project.targets))
    chosen_sites = [project.sites[s] for s in sorted(sites or project.sites)]
    _unknown("host", hosts, [h.name for s in chosen_sites for h in s.hosts])
    chosen_targets = sorted(targets or project.targets)
    return sorted(
        Item(site.name, host.name, target)
        for site in chosen_sites
        for host in site.hosts
        if not hosts or host.name in hosts
        for target in chosen_targets
    )
