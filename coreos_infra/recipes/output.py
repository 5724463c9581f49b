"""Writing renders to disk and describing a project (for ``invoke render`` and ``invoke list``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from coreos_infra.fsutil import write_atomic
from coreos_infra.recipes.project import Project
from coreos_infra.recipes.render import Rendered


@dataclass(frozen=True)
class RenderFiles:
    butane: Path
    ignition: Path
    info: Path


def render_dir(artifacts: Path, rendered: Rendered) -> Path:
    site = rendered.site.name if rendered.site is not None else "site"
    host = rendered.host.name if rendered.host is not None else "_site"
    return artifacts / "render" / site / host / rendered.target.name


def write_render(rendered: Rendered, out_dir: Path) -> RenderFiles:
    """Write ``<name>.bu``, ``<name>.ign`` and ``render.json`` atomically; secret-bearing files get 0600."""
    mode = 0o600 if rendered.contains_secrets else 0o644
    butane = out_dir / f"{rendered.name}.bu"
    ignition = out_dir / f"{rendered.name}.ign"
    info = out_dir / "render.json"
    write_atomic(butane, rendered.butane.encode(), mode=mode)
    write_atomic(ignition, rendered.ignition, mode=mode)
    doc = {
        "build_id": rendered.build_id,
        "site": rendered.site.name if rendered.site else None,
        "host": rendered.host.name if rendered.host else None,
        "target": rendered.target.name,
        "kind": rendered.target.kind,
        "overlays": list(rendered.overlays),
        "contains_secrets": rendered.contains_secrets,
        "checks": [str(p) for p in rendered.checks],
        "butane": butane.name,
        "ignition": ignition.name,
    }
    write_atomic(info, (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode())
    return RenderFiles(butane=butane, ignition=ignition, info=info)


def describe(project: Project) -> str:
    """A human-readable listing of sites (with hosts), targets and overlays."""
    lines = ["Sites:"]
    for site in project.sites.values():
        lines.append(f"  {site.name}  ({site.domain}, {site.timezone}, updates: {site.updates.strategy})")
        for h in site.hosts:
            addr = str(h.address) if h.address is not None else "dhcp"
            window = f"  window {h.update_window}" if h.update_window is not None else ""
            roles = ",".join(h.roles) or "-"
            lines.append(f"    {h.name:<12} {roles:<24} {addr:<16} {h.mac or '-':<18}{window}")
    if not project.sites:
        lines.append("  (none)")
    lines.append("Targets:")
    for t in project.targets.values():
        pin = t.release or t.stream
        base = f"{t.base.platform}/{t.base.format}"
        lines.append(f"  {t.name:<8} {t.kind:<6} {t.arch:<8} {pin:<8} {base:<14} {t.description}")
    lines.append("Target kinds:")
    lines += target_kinds()
    lines.append("Overlays:")
    for o in project.overlays.values():
        roles = f" [roles: {', '.join(o.roles)}]" if o.roles else ""
        first = o.description.split(". ")[0].rstrip(".")
        lines.append(f"  {o.name:<11} {first}{roles}")
        for v in o.variables:
            default = json.dumps(v.default) if not v.required else "(required)"
            lines.append(f"      {v.name} ({v.type}) = {default}: {v.doc}")
    return "\n".join(lines)


def target_kinds() -> list[str]:
    """One line per registered target kind: architectures, base artifacts (default first), output."""
    from coreos_infra.targets import REGISTRY

    lines = []
    for kind, t in sorted(REGISTRY.items()):
        bases = ", ".join(str(b) for b in t.bases)
        out = f"{t.output.platform}/{t.output.format}"
        lines.append(f"  {kind:<6} {t.title:<28} {'/'.join(t.arches):<15} from {bases:<30} -> {out}")
    return lines


def checks_pytest_args(rendered: Rendered, hosts: str, *, running: bool = True) -> list[str]:
    """pytest arguments that run the overlay checks of a render against a booted host.

    ``hosts`` is a testinfra host spec (``ssh://core@127.0.0.1:2222`` or ``paramiko://...``, with
    ``--ssh-identity-file`` etc. added by the caller). ``running=False`` runs only the checks that need
    nothing but the files Ignition wrote (what the offline fixture OS can show); ``True`` runs them all.
    """
    # every overlay's file is called checks.py: importlib mode keeps them apart
    args = ["-p", "no:cacheprovider", "--import-mode=importlib", f"--hosts={hosts}"]
    if not running:
        args += ["-m", "not running"]
    return args + [str(p) for p in rendered.checks]


def render_all(project: Project, site: str, artifacts: Path) -> list[tuple[Rendered, RenderFiles]]:
    """Render and write every target for the site as a whole and for each of its hosts."""
    from coreos_infra.recipes.render import render

    s = project.site(site)
    out = []
    for target in sorted(project.targets):
        for host in [None, *(h.name for h in s.hosts)]:
            rendered = render(project, target=target, site=s.name, host=host)
            out.append((rendered, write_render(rendered, render_dir(artifacts, rendered))))
    return out
