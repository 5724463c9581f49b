"""Errors at the CLI and task boundary: one line naming the path, exit 1; interrupts exit 130.

File-system faults are real: a full tmpfs (ENOSPC), a read-only tmpfs (EROFS) and a missing directory.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fs_faults import entries, fill, tmpfs
from test_pxe import fcos_like_initramfs

from coreos_infra.errors import CoreosInfraError, WriteError
from coreos_infra.exits import exit_on_errors, exit_status
from coreos_infra.fixtures import FixtureMirror
from coreos_infra.live.pxe.bundle import BundleFile, write_bundle

ROOT = Path(__file__).resolve().parent.parent
BUTANE = b"variant: fcos\nversion: 1.5.0\n"
IGNITION = b'{"ignition":{"version":"3.4.0"}}'


def _cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "coreos_infra", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def _one_line(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, r.stderr
    return lines[0]


# ------------------------------------------------------------------ the helper itself


def test_exit_status_maps_errors_to_codes_and_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    def user_error() -> int:
        raise CoreosInfraError("bad site")

    def os_error() -> int:
        raise PermissionError(13, "Permission denied", "/srv/out.iso")

    def interrupt() -> int:
        raise KeyboardInterrupt

    assert exit_status(lambda: 0) == 0
    assert exit_status(user_error) == 1
    assert capsys.readouterr().err == "Error: bad site\n"
    assert exit_status(os_error) == 1
    assert capsys.readouterr().err == "Error: /srv/out.iso: Permission denied\n"
    assert exit_status(interrupt) == 130
    assert capsys.readouterr().err == "interrupted\n"
    with pytest.raises(ValueError):  # a bug keeps its traceback
        exit_status(lambda: int("x"))
    with pytest.raises(CoreosInfraError):  # --debug keeps the traceback of user errors too
        exit_status(user_error, debug=True)


def test_sigterm_becomes_an_interrupt_inside_the_block_only(capsys: pytest.CaptureFixture[str]) -> None:
    before = signal.getsignal(signal.SIGTERM)
    cleaned = []
    with pytest.raises(SystemExit) as exc:
        with exit_on_errors():
            try:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(10)
            finally:
                cleaned.append(True)
    assert exc.value.code == 130 and cleaned == [True]
    assert capsys.readouterr().err == "interrupted\n"
    assert signal.getsignal(signal.SIGTERM) is before


# ------------------------------------------------------------------ coreos-infra butane


def test_butane_output_into_a_missing_directory_fails_like_butane(tmp_path: Path) -> None:
    src = tmp_path / "in.bu"
    src.write_bytes(BUTANE)
    out = tmp_path / "missing" / "sub" / "out.ign"
    line = _one_line(_cli("butane", str(src), "-o", str(out)))
    assert line == f"failed to open {out}: open {out}: no such file or directory"
    assert not (tmp_path / "missing").exists()  # the path is not created


def test_butane_output_on_read_only_and_full_file_systems(tmp_path: Path) -> None:
    src = tmp_path / "in.bu"
    src.write_bytes(BUTANE)
    with tmpfs(tmp_path / "ro", read_only=True) as ro:
        out = ro / "out.ign"
        assert _one_line(_cli("butane", str(src), "-o", str(out))) == (
            f"failed to open {out}: open {out}: read-only file system"
        )
    with tmpfs(tmp_path / "full", size="256k") as full:
        fill(full)
        out = full / "out.ign"
        assert _one_line(_cli("butane", str(src), "-o", str(out))) == (
            f"failed to write config to {out}: write {out}: no space left on device"
        )
        assert entries(full) == {"filler"}  # no temporary file left


# ------------------------------------------------------------------ coreos-infra iso


def test_iso_output_errors_name_the_path(fixture_mirror: FixtureMirror, tmp_path: Path) -> None:
    iso = str(fixture_mirror.iso)
    missing = tmp_path / "missing" / "out.iso"
    cmd = ("iso", "kargs", "modify", "-a", "x=1")
    assert (
        _one_line(_cli(*cmd, "-o", str(missing), iso))
        == f"Error: writing {missing}: No such file or directory"
    )
    assert not missing.parent.exists()
    with tmpfs(tmp_path / "ro", read_only=True) as ro:
        out = ro / "out.iso"
        assert _one_line(_cli(*cmd, "-o", str(out), iso)) == f"Error: writing {out}: Read-only file system"
    with tmpfs(tmp_path / "full", size="4m") as full:  # the 25 MiB ISO cannot fit
        out = full / "out.iso"
        assert _one_line(_cli(*cmd, "-o", str(out), iso)) == f"Error: writing {out}: No space left on device"
        assert entries(full) == set()


# ------------------------------------------------------------------ coreos-infra pxe


def test_pxe_output_errors_name_the_path(tmp_path: Path) -> None:
    cfg = tmp_path / "config.ign"
    cfg.write_bytes(IGNITION)
    initramfs = tmp_path / "initramfs.img"
    initramfs.write_bytes(fcos_like_initramfs())
    missing = tmp_path / "missing" / "ign.img"
    line = _one_line(_cli("pxe", "ignition", "wrap", "-i", str(cfg), "-o", str(missing)))
    assert line == f"Error: writing {missing}: No such file or directory"
    line = _one_line(
        _cli("pxe", "customize", "--dest-device", "/dev/vda", "-o", str(missing), str(initramfs))
    )
    assert line == f"Error: writing {missing}: No such file or directory"
    assert not missing.parent.exists()
    with tmpfs(tmp_path / "ro", read_only=True) as ro:
        out = ro / "ign.img"
        line = _one_line(_cli("pxe", "ignition", "wrap", "-i", str(cfg), "-o", str(out)))
        assert line == f"Error: writing {out}: Read-only file system"
    with tmpfs(tmp_path / "full", size="256k") as full:
        fill(full)
        out = full / "out.img"
        line = _one_line(_cli("pxe", "ignition", "wrap", "-i", str(cfg), "-o", str(out)))
        assert line == f"Error: writing {out}: No space left on device"
        line = _one_line(
            _cli("pxe", "customize", "--dest-device", "/dev/vda", "-o", str(out), str(initramfs))
        )
        assert line == f"Error: writing {out}: No space left on device"
        assert entries(full) == {"filler"}


def test_pxe_bundle_on_a_full_disk_names_the_file_and_leaves_no_tree(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "full", size="1m") as full:
        files = [
            BundleFile("a.img", data=b"\x01" * (600 << 10)),
            BundleFile("b.img", data=b"\x02" * (600 << 10)),
        ]
        with pytest.raises(WriteError) as exc:
            write_bundle(files, full / "bundle", tarball=full / "bundle.tar")
        assert str(exc.value) == f"writing {full / 'bundle' / 'b.img'}: No space left on device"
        assert entries(full) == set()


# ------------------------------------------------------------------ invoke tasks


def _invoke(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "invoke", *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_render_task_on_read_only_and_full_file_systems(tmp_path: Path) -> None:
    render = ("render", "--target", "rpi4", "--site", "lab", "--host", "dns1", "--out")
    with tmpfs(tmp_path / "ro", read_only=True) as ro:
        line = _one_line(_invoke(*render, str(ro / "r")))
        assert line == f"Error: {ro / 'r'}: Read-only file system" or (
            line.startswith(f"Error: writing {ro}/") and line.endswith(": Read-only file system")
        ), line
    with tmpfs(tmp_path / "full", size="256k") as full:
        fill(full)
        line = _one_line(_invoke(*render, str(full)))
        assert line.startswith(f"Error: writing {full}/") and line.endswith(": No space left on device"), (
            line
        )
        assert entries(full) == {"filler"}


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_cli_interrupted_prints_interrupted_and_exits_130(sig: signal.Signals) -> None:
    # butane waiting on its stdin, like a user who forgot the input file
    proc = subprocess.Popen(
        [sys.executable, "-m", "coreos_infra", "butane"], cwd=ROOT, stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(3)  # past start-up, blocked in read(0)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and err == "interrupted\n", (proc.returncode, err)
