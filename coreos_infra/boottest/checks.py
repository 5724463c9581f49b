"""The testinfra checks of a host's overlays (``overlays/*/checks.py``), run against a booted VM over SSH.

The checks run in a pytest subprocess (``checks_pytest_args`` of the render, testinfra's paramiko
backend, the site's boot-test key) with a JUnit report that :func:`parse_junit` turns into one line per
check: passed, failed, or not applicable on this OS. What is not applicable is decided by markers, per
OS (:data:`NOT_APPLICABLE`):

- ``running``: needs the running system (systemd, sudo, services); not on the busybox fixture OS.
- ``podman``: needs podman (its units, volumes); the fixture OSes have none.
- ``registry``: needs container images pulled from registries; not offline (the fixture OSes).

Real FCOS runs every check. This module is also the pytest plugin (``-p coreos_infra.boottest.checks``)
that registers the markers and turns the not-applicable ones into skips whose reason starts with
:data:`NA_PREFIX`; the mapping marker -> reason comes in ``COREOS_INFRA_NOT_APPLICABLE`` (JSON).
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coreos_infra.run import run

NA_ENV = "COREOS_INFRA_NOT_APPLICABLE"
NA_PREFIX = "not applicable: "
MARKERS = {
    "running": "overlay check that needs the running system (systemd, sudo), not only the written files",
    "podman": "overlay check that needs podman (units, volumes), which the fixture OSes do not have",
    "registry": "overlay check that needs container images pulled from registries (not offline)",
}
_REGISTRY = "needs container images pulled from registries (the offline fixture OS has none)"
_PODMAN = "needs podman (not in the fixture OS)"
NOT_APPLICABLE: dict[str, dict[str, str]] = {
    "busybox": {
        "running": "the busybox fixture OS has no systemd (files only)",
        "podman": _PODMAN,
        "registry": _REGISTRY,
    },
    "systemd": {"podman": _PODMAN, "registry": _REGISTRY},
    "fcos": {},
}


@dataclass
class CheckResults:
    passed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    not_applicable: list[str] = field(default_factory=list)  # "overlay::test: reason"


def _name(case: ET.Element) -> str:
    """``<overlay>::<test>``: the overlay is the directory holding checks.py; the host id is dropped."""
    file = case.get("file") or ""
    overlay = posixpath.basename(posixpath.dirname(file)) if file else ""
    if not overlay:
        parts = (case.get("classname") or "").split(".")
        overlay = parts[-2] if len(parts) >= 2 else parts[-1]
    test = re.sub(r"\[.*\]$", "", case.get("name") or "?")
    return f"{overlay}::{test}"


def _message(el: ET.Element) -> str:
    text = el.get("message") or (el.text or "").strip()
    return " ".join(text.split())[:300]


def parse_junit(xml_text: str) -> CheckResults:
    """One entry per testcase of a pytest JUnit report (xunit1: testcases carry ``file``)."""
    results = CheckResults()
    root = ET.fromstring(xml_text)
    for case in root.iter("testcase"):
        name = _name(case)
        bad = case.find("failure")
        if bad is None:
            bad = case.find("error")
        skipped = case.find("skipped")
        if bad is not None:
            results.failed.append(f"{name}: {_message(bad)}")
        elif skipped is not None:
            reason = _message(skipped)
            reason = reason.split(NA_PREFIX, 1)[1] if NA_PREFIX in reason else f"skipped: {reason}"
            results.not_applicable.append(f"{name}: {reason}")
        else:
            results.passed.append(name)
    return results


def run_checks(
    checks: Sequence[Path],
    *,
    host: str,
    identity: Path,
    os_kind: str,
    workdir: Path | None = None,
    timeout: float = 900.0,
) -> CheckResults:
    """Run the overlays' ``checks`` against ``host`` (a testinfra host spec) in a pytest subprocess.

    ``os_kind`` is ``busybox``, ``systemd`` (the fixture OSes) or ``fcos`` (real FCOS: everything runs).
    """
    if not checks:
        return CheckResults()
    na = NOT_APPLICABLE[os_kind]
    with tempfile.TemporaryDirectory(prefix="coreos-infra-checks-", dir=workdir) as tmp:
        junit = Path(tmp) / "checks.xml"
        ini = Path(tmp) / "pytest.ini"
        ini.write_text("[pytest]\n")  # not the project's pytest configuration (addopts, conftest)
        argv: list[str | Path] = [
            sys.executable, "-m", "pytest", "-c", ini, "--rootdir", Path(tmp),
            "-p", "no:cacheprovider", "-p", "coreos_infra.boottest.checks", "--import-mode=importlib",
            f"--hosts={host}", f"--ssh-identity-file={identity}",
            f"--junitxml={junit}", "-o", "junit_family=xunit1", "-q", "-rN",
            "-W", "ignore:Unknown ssh-ed25519 host key", "-W", "ignore::DeprecationWarning",
            *(c.resolve() for c in checks),
        ]  # fmt: skip
        env = {NA_ENV: json.dumps(na), "PYTHONPATH": _import_path()}
        out = run(argv, capture=True, check=False, timeout=timeout, env=env)
        if not junit.is_file():
            tail = (out.stdout + out.stderr).decode(errors="replace").strip().splitlines()[-8:]
            return CheckResults(failed=[f"checks: pytest exited {out.returncode}: {' | '.join(tail)}"])
        results = parse_junit(junit.read_text())
    if out.returncode not in (0, 1) and not results.failed:
        results.failed.append(f"checks: pytest exited {out.returncode}")
    return results


def _import_path() -> str:
    """PYTHONPATH for the subprocess: this coreos_infra first (the plugin), then the caller's."""
    import coreos_infra

    here = str(Path(coreos_infra.__file__).resolve().parents[1])
    return os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")]))


# ------------------------------------------------------------------------------ the pytest plugin
def pytest_configure(config: Any) -> None:
    for name, doc in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {doc}")


def pytest_collection_modifyitems(config: Any, items: list[Any]) -> None:
    import pytest

    na: dict[str, str] = json.loads(os.environ.get(NA_ENV) or "{}")
    for item in items:
        for marker in item.iter_markers():
            if marker.name in na:
                item.add_marker(pytest.mark.skip(reason=NA_PREFIX + na[marker.name]))
                break
