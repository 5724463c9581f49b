"""The boot-test step of the nightly, behind one small protocol.

:class:`QemuBootTester` is the real test: it boots the artifact through
:func:`coreos_infra.boottest.boot_build` (what ``invoke boot-test`` runs: the comparison, and with the site's
boot-test key SSH and the overlays' checks) and passes when every file,
unit and user of the delivered Ignition config is on the booted system. :class:`StaticTester` checks
without a VM (artifacts match their meta.json, the delivered Ignition config parses); it is for machines
that cannot run QEMU and for quick runs, never a substitute in a real nightly.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from coreos_infra import boottest
from coreos_infra.errors import CoreosInfraError
from coreos_infra.fsutil import sha256_file
from coreos_infra.pipeline import BuildOutcome

# The installer ISO is boot-tested with SeaBIOS, like `invoke demo`; everything else with UEFI.
FIRMWARE_BY_TARGET = {"usb": "bios"}


@dataclass(frozen=True)
class BootCheck:
    ok: bool
    summary: str  # one line for the report
    failed: tuple[str, ...] = ()  # the checks that failed
    serial_log: Path | None = None


class BootTester(Protocol):
    """Boot-tests one built artifact; ``name`` goes into the record of a pass (see the runner)."""

    @property
    def name(self) -> str: ...

    def __call__(self, outcome: BuildOutcome, log_dir: Path) -> BootCheck: ...


@dataclass(frozen=True)
class QemuBootTester:
    """Boot the artifact in QEMU (KVM when usable, else TCG) and compare the system with its config."""

    timeout: float = 600.0

    @property
    def name(self) -> str:
        return "qemu"

    def __call__(self, outcome: BuildOutcome, log_dir: Path) -> BootCheck:
        log_dir.mkdir(parents=True, exist_ok=True)
        serial = log_dir / f"{outcome.request.name}.serial.log"
        try:
            report = boottest.boot_build(
                outcome,
                firmware=FIRMWARE_BY_TARGET.get(outcome.request.target, "uefi"),
                timeout=self.timeout,
                log_path=serial,
            )
        except CoreosInfraError as e:  # no report: a panic, a timeout, QEMU failing to start
            what = e.message.splitlines()[0]
            return BootCheck(ok=False, summary=f"FAIL {outcome.request.name}", failed=(what,),
                             serial_log=serial if serial.exists() else None)  # fmt: skip
        return BootCheck(
            ok=report.ok,
            summary=report.summary().splitlines()[0],
            failed=tuple(report.failed),
            serial_log=report.serial_log,
        )


@dataclass(frozen=True)
class StaticTester:
    """No VM: every artifact matches its meta.json and the artifact delivers a parseable Ignition config."""

    @property
    def name(self) -> str:
        return "static"

    def __call__(self, outcome: BuildOutcome, log_dir: Path) -> BootCheck:
        start = time.monotonic()
        failed: list[str] = []
        checked = 0
        for art in outcome.meta.get("artifacts", []):
            path = _artifact_path(outcome.meta_path.parent, art["name"])
            checked += 1
            if path is None or path.stat().st_size != art["size"] or sha256_file(path) != art["sha256"]:
                failed.append(f"artifact {art['name']} matches meta.json")
        first = outcome.meta_path.parent / outcome.meta["artifacts"][0]["name"]
        try:
            config = boottest.delivered_config(outcome.meta["kind"], first, outcome.request.ignition)
            if not config.get("ignition", {}).get("version"):
                failed.append("delivered Ignition config has a version")
        except CoreosInfraError as e:
            failed.append(f"delivered Ignition config: {e.message}")
        status = "PASS" if not failed else "FAIL"
        summary = (
            f"{status} {first.name} (static): {checked} artifacts, {len(failed)} failed checks "
            f"({time.monotonic() - start:.1f} s)"
        )
        return BootCheck(ok=not failed, summary=summary, failed=tuple(failed))


def _artifact_path(build_dir: Path, name: str) -> Path | None:
    """Artifacts live in the build directory or (PXE bundles) in a directory below it."""
    direct = build_dir / name
    if direct.is_file():
        return direct
    below = sorted(p for p in build_dir.rglob(name) if p.is_file())
    return below[0] if below else None
