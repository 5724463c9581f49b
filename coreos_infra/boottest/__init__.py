"""Boot a built artifact in QEMU and check that the system applied its Ignition config.

The expectations come from the Ignition config the artifact delivers to the first boot: the site's config
for live and disk targets, the generated live config for installer targets (whose files include the
installer settings and the destination config). Every file, directory, link, unit and user the config
declares is compared with what the booted system reports: content (SHA-256 of the decoded source), mode,
owner where numeric, link targets, unit files and presets.

Offline, the booted system is the project's fixture OS (the real ``ignition`` binary in a busybox
initramfs, :mod:`coreos_infra.fixtures`), which reports on its serial console (:func:`qemu.parse_log`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import posixpath
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coreos_infra import ignition, qemu
from coreos_infra.targets import target as target_class

LOG = logging.getLogger("coreos_infra.boottest")


@dataclass(frozen=True)
class Expected:
    files: dict[str, tuple[str | None, int]]  # path -> (sha256 of content or None if remote, mode)
    dirs: dict[str, int]  # path -> mode
    links: dict[str, str]  # path -> target
    users: tuple[str, ...]


@dataclass
class BootTestReport:
    artifact: str
    machine: str
    elapsed: float
    passed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    not_applicable: list[str] = field(default_factory=list)  # checks the fixture OS cannot run (and why)
    serial_log: Path | None = None

    @property
    def ok(self) -> bool:
        return not self.failed and bool(self.passed)

    def summary(self) -> str:
        status = "PASS" if self.ok else "FAIL"
        lines = [f"{status} {self.artifact} on {self.machine}: {len(self.passed)} checks passed, "
                 f"{len(self.failed)} failed, {len(self.not_applicable)} not applicable on the fixture OS "
                 f"({self.elapsed:.1f} s)"]  # fmt: skip
        lines += [f"  FAILED {f}" for f in self.failed]
        lines += [f"  not applicable: {n}" for n in self.not_applicable]
        return "\n".join(lines)


def _norm(path: str) -> str:
    return posixpath.normpath(path)


def expected_state(config: dict[str, Any]) -> Expected:
    """What a system that applied ``config`` must contain (only what Ignition itself writes)."""
    files: dict[str, tuple[str | None, int]] = {}
    storage = config.get("storage") or {}
    for f in storage.get("files") or []:
        contents = f.get("contents") or {}
        source = contents.get("source")
        data: bytes | None = b""
        if source is not None:
            data = (
                ignition.decode_source(source, contents.get("compression"))
                if source.startswith("data:")
                else None
            )
        for app in f.get("append") or []:
            asrc = app.get("source")
            if data is not None and asrc is not None and asrc.startswith("data:"):
                data += ignition.decode_source(asrc, app.get("compression"))
            else:
                data = None
        mode = f.get("mode")
        digest = hashlib.sha256(data).hexdigest() if data is not None else None
        files[_norm(f["path"])] = (digest, 0o644 if mode is None else mode)
    dirs = {_norm(d["path"]): d.get("mode") or 0o755 for d in storage.get("directories") or []}
    links = {_norm(lk["path"]): lk["target"] for lk in storage.get("links") or [] if not lk.get("hard")}
    for unit in (config.get("systemd") or {}).get("units") or []:
        base = "/etc/systemd/system"
        if unit.get("contents") is not None and not unit.get("mask"):
            files[f"{base}/{unit['name']}"] = (hashlib.sha256(unit["contents"].encode()).hexdigest(), 0o644)
        for dropin in unit.get("dropins") or []:
            if dropin.get("contents") is not None:
                digest = hashlib.sha256(dropin["contents"].encode()).hexdigest()
                files[f"{base}/{unit['name']}.d/{dropin['name']}"] = (digest, 0o644)
        if unit.get("mask"):
            links[f"{base}/{unit['name']}"] = "/dev/null"
    users = tuple(u["name"] for u in (config.get("passwd") or {}).get("users") or [])
    return Expected(files, dirs, links, users)


def compare(expected: Expected, result: qemu.FixtureResult) -> tuple[list[str], list[str]]:
    """(passed, failed) check descriptions."""
    passed: list[str] = []
    failed: list[str] = []

    def check(ok: bool, what: str) -> None:
        (passed if ok else failed).append(what)

    check(result.booted, "system booted")
    check(
        result.ignition_ok,
        f"Ignition succeeded{': ' + result.ignition_failed if result.ignition_failed else ''}",
    )
    for path, (digest, mode) in sorted(expected.files.items()):
        info = result.files.get(path)
        if info is None:
            check(False, f"file {path} exists")
            continue
        if digest is not None:
            check(info.sha256 == digest, f"file {path} has the configured content")
        check(info.mode & 0o7777 == mode, f"file {path} has mode {mode:04o} (got {info.mode & 0o7777:04o})")
    for path, mode in sorted(expected.dirs.items()):
        got = result.dirs.get(path)
        check(got is not None and got[0] & 0o7777 == mode, f"directory {path} with mode {mode:04o}")
    for path, target in sorted(expected.links.items()):
        check(result.links.get(path) == target, f"link {path} -> {target}")
    users = result.users
    for name in expected.users:
        check(name in users, f"user {name} exists")
    return passed, failed


# ------------------------------------------------------------------ delivered configs and machines


def delivered_config(kind: str, artifact: Path, fallback: bytes) -> dict[str, Any]:
    """The Ignition config the artifact hands to its first boot (``fallback``: the site's config)."""
    data = target_class(kind)().delivered_config(artifact, fallback)
    return ignition.parse(data, filename=str(artifact))


def boot_artifact(
    meta_path: Path,
    *,
    ignition_bytes: bytes,
    firmware: str = "uefi",
    timeout: float = 600.0,
    log_path: Path | None = None,
    vm: qemu.VmConfig | None = None,
    config: dict[str, Any] | None = None,
) -> BootTestReport:
    """Boot the artifact described by ``meta_path`` and compare the system with its config.

    ``vm`` boots another way than the target's default (a firmware path of the boot matrix, an installed
    disk); ``config`` is the Ignition config that boot must have applied (default: the one the artifact
    delivers to its first boot).
    """
    meta = json.loads(meta_path.read_text())
    kind, arch = meta["kind"], meta["arch"]
    artifact = meta_path.parent / meta["artifacts"][0]["name"]
    if config is None:
        config = delivered_config(kind, artifact, ignition_bytes)
    expected = expected_state(config)
    spec = target_class(kind)()
    allowed = ("uefi",) if arch == "aarch64" else spec.boot.firmware
    machine = qemu.Machine(
        arch, firmware if firmware in allowed else allowed[0], memory_mb=spec.boot.memory_mb
    )
    if vm is not None:
        machine = vm.machine
    log_path = log_path or meta_path.parent / f"boot-test-{machine.arch}-{machine.firmware}.log"
    with tempfile.TemporaryDirectory(prefix="coreos-infra-boottest-") as tmp:
        log = qemu.boot(vm or spec.boot_vm(artifact, machine, Path(tmp)), timeout=timeout, log_path=log_path)
    result = qemu.parse_log(log.text)
    passed, failed = compare(expected, result)
    return BootTestReport(
        artifact=artifact.name,
        machine=f"{arch} {machine.firmware}",
        elapsed=log.elapsed,
        passed=passed,
        failed=failed,
        serial_log=log_path,
    )
