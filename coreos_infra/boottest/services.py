"""A site host's metal image built on the systemd fixture root, booted with SSH and every overlay check.

The busybox fixture disks show what Ignition wrote; the ``running`` checks (services, sockets, the
static address NetworkManager applies, chronyd serving the site) need an OS that runs them. Offline that
is the fixture mirror's ``metal-systemd`` disk (format ``systemd.raw.xz``, a Debian root with systemd,
NetworkManager, chrony and OpenSSH): :func:`run_services` builds the project's ``metal`` recipe for the
host on that base — as the ``metal-services`` target, so it never replaces the real metal build — through
the ordinary pipeline, boots it under OVMF with the host's MAC and static address, and runs the
comparison and the checks over SSH. Only the fixture mirror serves ``systemd.raw.xz``: against the
official stream the build fails at the fetch, and real FCOS metal images are tested with
:func:`coreos_infra.boottest.boot_artifact` directly.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from coreos_infra import pipeline
from coreos_infra.boottest import BootTestReport, boot_artifact
from coreos_infra.errors import CoreosInfraError
from coreos_infra.recipes import load_project
from coreos_infra.recipes.model import BaseArtifact

SERVICES_TARGET = "metal-services"
SYSTEMD_BASE = BaseArtifact(platform="metal", format="systemd.raw.xz")


def build_services(
    root: Path,
    *,
    site: str | None,
    host: str | None,
    source: pipeline.Source,
    cache_dir: Path,
    out_root: Path,
    keys_dir: Path,
    recipe: str = "metal",
    force: bool = False,
) -> pipeline.BuildOutcome:
    """Build ``recipe`` (a metal recipe) for the host on the systemd fixture base."""
    project = load_project(root)
    metal = project.target(recipe)
    if metal.kind != "metal" or metal.arch != "x86_64":
        raise CoreosInfraError(
            f"the services boot needs an x86_64 metal recipe, not {recipe} ({metal.kind})"
        )
    project.targets[SERVICES_TARGET] = dataclasses.replace(
        metal,
        name=SERVICES_TARGET,
        base=SYSTEMD_BASE,
        description=f"{metal.description} (on the systemd fixture root, for the services boot test)",
    )
    plan = pipeline.BuildPlan(
        root=root, target=SERVICES_TARGET, site=site, host=host, source=source,
        cache_dir=cache_dir, out_root=out_root, force=force, keys_dir=keys_dir,
    )  # fmt: skip
    return pipeline.build(plan, project)


def run_services(
    root: Path,
    *,
    site: str | None,
    host: str | None,
    source: pipeline.Source,
    cache_dir: Path,
    out_root: Path,
    keys_dir: Path,
    timeout: float = 900.0,
    log_path: Path | None = None,
    real_os: bool | None = None,
    force: bool = False,
) -> BootTestReport:
    """Build the host's metal image on the systemd fixture root and boot-test it with all its checks.

    ``real_os=True`` boots it the way a real FCOS image is booted (no fixture markers: SSH readiness and
    ``systemctl is-system-running --wait``), which tests that path offline.
    """
    outcome = build_services(root, site=site, host=host, source=source, cache_dir=cache_dir,
                             out_root=out_root, keys_dir=keys_dir, force=force)  # fmt: skip
    h = outcome.rendered.host
    return boot_artifact(
        outcome.meta_path,
        ignition_bytes=outcome.request.ignition,
        firmware="uefi",
        timeout=timeout,
        log_path=log_path,
        identity=outcome.identity,
        checks=outcome.rendered.checks,
        mac=h.mac if h is not None else None,
        guest_addr=str(h.address) if h is not None and h.address is not None else None,
        real_os=real_os,
    )
