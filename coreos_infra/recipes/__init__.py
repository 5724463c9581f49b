"""Site profiles, target recipes and service overlays, rendered into Butane and Ignition.

Public API::

    project = load_project(root)                 # validates recipes/, recipes/sites/, overlays/
    project.site("lab"), project.target("usb")
    r = render(project, target="usb", site="lab", host="dns1", base_release="40.20240519.3.0")
    r.butane, r.ignition, r.build_id, r.checks, r.contains_secrets

Bad input raises :class:`coreos_infra.errors.InputError` as ``file:line:col: path: message``.
"""

from __future__ import annotations

from coreos_infra.recipes.model import (
    AdminUser,
    BaseArtifact,
    Host,
    Network,
    Overlay,
    OverlayUse,
    OverlayVar,
    Site,
    TargetRecipe,
    UpdateWindow,
)
from coreos_infra.recipes.project import Project, load_project
from coreos_infra.recipes.render import BUTANE_VERSION, ButaneRender, Rendered, render, render_butane

__all__ = [
    "BUTANE_VERSION",
    "AdminUser",
    "BaseArtifact",
    "ButaneRender",
    "Host",
    "Network",
    "Overlay",
    "OverlayUse",
    "OverlayVar",
    "Project",
    "Rendered",
    "Site",
    "TargetRecipe",
    "UpdateWindow",
    "load_project",
    "render",
    "render_butane",
]
