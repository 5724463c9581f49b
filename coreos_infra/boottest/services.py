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
from coreos_infra.boottest import BootTestReport, boot_build
from coreos_infra.errors import CoreosInfraError
from coreos_infra.recipes import load_project
from coreos_infra.recipes.model import BaseArtifact

SERVICES_TARGET = "metal-services"
SYSTEMD_BASE = BaseArtifact(platform="metal", format="systemd.raw.xz")


def build_services(plan: pipeline.BuildPlan) -> pipeline.BuildOutcome:
    """Build ``plan`` (its target: an x86_64 metal recipe) as ``metal-services``, on the systemd root."""
    project = load_project(plan.root)
    metal = project.target(plan.target)
    if metal.kind != "metal" or metal.arch != "x86_64":
        raise CoreosInfraError(
            f"the services boot needs an x86_64 metal recipe, not {plan.target} ({metal.kind})"
        )
    project.targets[SERVICES_TARGET] = dataclasses.replace(
        metal,
        name=SERVICES_TARGET,
        base=SYSTEMD_BASE,
        description=f"{metal.description} (on the systemd fixture root, for the services boot test)",
    )
    return pipeline.build(dataclasses.replace(plan, target=SERVICES_TARGET), project)


def run_services(
    plan: pipeline.BuildPlan,
    *,
    timeout: float = 900.0,
    log_path: Path | None = None,
    real_os: bool | None = None,
) -> BootTestReport:
    """Build the host's metal image on the systemd fixture root and boot-test it with all its checks.

    ``real_os=True`` boots it the way a real FCOS image is booted (no fixture markers: SSH readiness and
    ``systemctl is-system-running --wait``), which tests that path offline.
    """
    return boot_services(build_services(plan), timeout=timeout, log_path=log_path, real_os=real_os)


def boot_services(
    outcome: pipeline.BuildOutcome,
    *,
    timeout: float = 900.0,
    log_path: Path | None = None,
    real_os: bool | None = None,
) -> BootTestReport:
    """Boot a :func:`build_services` image under OVMF with SSH, the comparison and every check."""
    return boot_build(outcome, firmware="uefi", timeout=timeout, log_path=log_path, real_os=real_os)
