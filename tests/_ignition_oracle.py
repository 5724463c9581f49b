"""Debian's real ``ignition-validate`` (2.14.0) as an oracle for Ignition configs."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from typing import Any

IGNITION_VALIDATE = shutil.which("ignition-validate")


def oracle_can_check(config: dict[str, Any]) -> bool:
    """ignition-validate 2.14.0 knows 3.0.0-3.3.0 and, relabelled, 3.4.0/3.5.0; not 3.6.0."""
    return IGNITION_VALIDATE is not None and config["ignition"]["version"] != "3.6.0"


def run_ignition_validate(config: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    """Run ignition-validate on ``config`` (3.4.0/3.5.0 relabelled ``3.4.0-experimental``)."""
    assert IGNITION_VALIDATE is not None
    relabelled = json.loads(json.dumps(config))
    if relabelled["ignition"]["version"] in ("3.4.0", "3.5.0"):
        relabelled["ignition"]["version"] = "3.4.0-experimental"
    with tempfile.NamedTemporaryFile("w", suffix=".ign") as f:
        json.dump(relabelled, f)
        f.flush()
        return subprocess.run([IGNITION_VALIDATE, f.name], capture_output=True, text=True, timeout=60)
