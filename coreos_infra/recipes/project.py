"""A project checkout: ``overlays/<name>/``, ``recipes/<target>.yaml``, ``recipes/sites/<site>.yaml``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coreos_infra.errors import InputError, Location
from coreos_infra.recipes.model import Overlay, Site, TargetRecipe
from coreos_infra.recipes.overlay import load_overlay
from coreos_infra.recipes.site import load_site
from coreos_infra.recipes.target import load_target


@dataclass(frozen=True)
class Project:
    root: Path
    sites: dict[str, Site]
    targets: dict[str, TargetRecipe]
    overlays: dict[str, Overlay]
    # Jinja2 environments by overlay name: compiled templates are reused across renders of this project.
    jinja_envs: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def overlays_dir(self) -> Path:
        return self.root / "overlays"

    def site(self, name: str) -> Site:
        try:
            return self.sites[name]
        except KeyError:
            raise InputError(
                f"unknown site {name!r}",
                hint=f"sites: {', '.join(sorted(self.sites)) or 'none'} "
                f"(files in {self.root / 'recipes' / 'sites'})",
            ) from None

    def target(self, name: str) -> TargetRecipe:
        try:
            return self.targets[name]
        except KeyError:
            raise InputError(
                f"unknown target {name!r}",
                hint=f"targets: {', '.join(sorted(self.targets)) or 'none'}"
                f" (files in {self.root / 'recipes'})",
            ) from None

    def overlay(self, name: str) -> Overlay:
        try:
            return self.overlays[name]
        except KeyError:
            raise InputError(
                f"unknown overlay {name!r}", hint=f"overlays: {', '.join(sorted(self.overlays)) or 'none'}"
            ) from None

    def default_site(self) -> Site:
        """The only site, for commands where ``--site`` may be left out."""
        if len(self.sites) == 1:
            return next(iter(self.sites.values()))
        raise InputError(
            "more than one site: choose one with --site",
            hint=f"sites: {', '.join(sorted(self.sites)) or 'none'}",
        )


def _display(root: Path, path: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def load_project(root: Path) -> Project:
    """Load and validate every overlay, target recipe and site under ``root``; the first error is raised."""
    root = Path(root)
    overlays: dict[str, Overlay] = {}
    odir = root / "overlays"
    if odir.is_dir():
        for d in sorted(p for p in odir.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))):
            overlays[d.name] = load_overlay(d, _display(root, d))
    targets: dict[str, TargetRecipe] = {}
    rdir = root / "recipes"
    if not rdir.is_dir():
        raise InputError("no recipes/ directory", Location(str(root)))
    for f in sorted(rdir.glob("*.yaml")):
        t = load_target(f, _display(root, f), overlays)
        targets[t.name] = t
    sites: dict[str, Site] = {}
    for f in sorted((rdir / "sites").glob("*.yaml")):
        s = load_site(f, _display(root, f), overlays)
        sites[s.name] = s
    return Project(root=root, sites=sites, targets=targets, overlays=overlays)
