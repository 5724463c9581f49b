"""Interrupted builds leave nothing behind and exit 130 with "interrupted".

Each test really runs ``invoke build --offline --target T --site lab --host dns1`` (in a copy of the
project, with a private TMPDIR), waits until the build's temporary file of interest exists and then
sends Ctrl-C (SIGINT to the whole process group, as a terminal does) or SIGTERM (to the process only, as
``kill`` does).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from coreos_infra.fixtures import FixtureMirror

ROOT = Path(__file__).resolve().parent.parent
MARKERS = {  # a temporary file that exists only in the middle of the build
    "rpi4": ".coreos-infra-blocks-*",  # xzsplice re-encoding changed blocks (worker threads)
    "metal": "*.work.raw",  # the sparse working image
    "pxe": ".*-pxe.tmp-*",  # the bundle tree before its rename
    "usb": ".*.iso.*.tmp",  # the ISO copy before its rename
}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, fixture_mirror: FixtureMirror) -> Path:
    """A copy of the project (outputs in its artifacts/); its verified-base cache is shared by the tests."""
    proj = tmp_path_factory.mktemp("project")
    for d in ("tasks", "recipes", "overlays"):
        shutil.copytree(ROOT / d, proj / d)
    return proj


def _leftovers(root: Path) -> list[str]:
    """Files (not directories) under ``root``."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if not p.is_dir())


def _hidden(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob(".*"))


def _interrupted_build(project: Path, target: str, sig: signal.Signals, tmpdir: Path) -> tuple[int, str]:
    """Run the build until its marker appears, send ``sig``; return (exit code, stderr)."""
    build_dir = project / "artifacts" / "build" / target
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "TMPDIR": str(tmpdir),
        "COREOS_INFRA_FIXTURES_CACHE": os.environ.get(
            "COREOS_INFRA_FIXTURES_CACHE", str(ROOT / "artifacts" / "cache" / "fixtures")
        ),
    }
    cmd = [sys.executable, "-m", "invoke", "build", "--offline", "--target", target, "--site", "lab",
           "--host", "dns1"]  # fmt: skip
    for _attempt in range(3):
        shutil.rmtree(build_dir, ignore_errors=True)
        proc = subprocess.Popen(
            cmd, cwd=project, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 900
        while proc.poll() is None and time.monotonic() < deadline:
            if build_dir.is_dir() and any(build_dir.rglob(MARKERS[target])):
                if sig == signal.SIGINT:
                    os.killpg(proc.pid, sig)  # Ctrl-C: the whole foreground process group
                else:
                    proc.send_signal(sig)  # kill PID
                break
            time.sleep(0.01)
        try:
            _, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if proc.returncode != 0:
            return proc.returncode, err
        # the build finished before the marker was seen: try again
    pytest.fail(f"{target}: the build never showed {MARKERS[target]} long enough to be interrupted")


@pytest.mark.parametrize(
    ("target", "sig"),
    [
        ("rpi4", signal.SIGINT),
        ("metal", signal.SIGTERM),
        ("pxe", signal.SIGINT),
        ("usb", signal.SIGTERM),
    ],
)
def test_interrupted_build_leaves_nothing_and_exits_130(
    project: Path, tmp_path: Path, target: str, sig: signal.Signals
) -> None:
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    code, err = _interrupted_build(project, target, sig, tmpdir)
    assert code == 130, err
    assert err.rstrip().splitlines()[-1] == "interrupted", err
    assert "Traceback" not in err, err
    build = project / "artifacts" / "build"
    assert _leftovers(build) == []  # no .work.raw, .tmp, block files, bundle trees, no empty output dir
    assert not (build / target / f"lab-dns1-{target}").exists()
    assert _hidden(project / "artifacts") == []  # nor in the cache
    assert list((project / "artifacts" / "cache").rglob("*.part")) == []
    assert list(tmpdir.iterdir()) == []  # no /tmp/coreos-infra-keys-*, gpg homes, ...
