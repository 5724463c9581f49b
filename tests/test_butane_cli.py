"""``coreos-infra butane``: stdin/stdout, -o, --files-dir, --strict exit codes, error output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from coreos_infra.cli import main

SIMPLE = (
    b"variant: fcos\nversion: 1.6.0\nstorage:\n  files:\n    - path: /etc/motd\n"
    b"      contents:\n        inline: hi\n"
)
WARN = b"variant: fcos\nversion: 1.6.0\nstorage:\n  files:\n    - path: /z\n      q: z\n"
BAD = b"variant: fcos\nversion: 1.6.0\nstorage:\n  files:\n    - path: z\n"


def cli(args: list[str], stdin: bytes = b"", cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "coreos_infra", "butane", *args],
        input=stdin,
        capture_output=True,
        cwd=cwd,
        timeout=120,
    )


def test_stdin_to_stdout() -> None:
    r = cli([], SIMPLE)
    assert r.returncode == 0, r.stderr
    assert r.stdout == (
        b'{"ignition":{"version":"3.5.0"},"storage":{"files":[{"path":"/etc/motd",'
        b'"contents":{"compression":"","source":"data:,hi"}}]}}\n'
    )
    assert r.stderr == b""


def test_pretty_and_output_file(tmp_path: Path) -> None:
    src = tmp_path / "in.bu"
    src.write_bytes(SIMPLE)
    out = tmp_path / "sub" / "out.ign"
    out.parent.mkdir()  # like butane, -o does not create directories (tests/test_exits.py)
    r = cli(["--pretty", "-o", str(out), str(src)])
    assert r.returncode == 0, r.stderr
    assert r.stdout == b""
    text = out.read_bytes()
    assert text.startswith(b'{\n  "ignition": {\n    "version": "3.5.0"\n  },\n')
    assert json.loads(text)["storage"]["files"][0]["path"] == "/etc/motd"
    assert not [p for p in out.parent.iterdir() if p.name != "out.ign"]  # no temp files left


def test_files_dir(tmp_path: Path) -> None:
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "key.pub").write_text("ssh-ed25519 AAAA one\n\nssh-ed25519 BBBB two\r\n")
    bu = b"variant: fcos\nversion: 1.6.0\npasswd:\n  users:\n    - name: core\n"
    bu += b"      ssh_authorized_keys_local: [key.pub]\n"
    r = cli(["--files-dir", "files"], bu, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    user = json.loads(r.stdout)["passwd"]["users"][0]
    assert user["sshAuthorizedKeys"] == ["ssh-ed25519 AAAA one", "ssh-ed25519 BBBB two"]
    r = cli([], bu, cwd=tmp_path)
    assert r.returncode == 1
    assert b"must be specified with -d/--files-dir" in r.stderr
    assert r.stdout == b""


def test_warnings_exit_zero_and_strict_fails(tmp_path: Path) -> None:
    r = cli(["--raw-errors"], WARN)
    assert r.returncode == 0
    assert r.stderr == b"warning at $.storage.files.0.q, line 6 col 7: unused key q\n"
    assert json.loads(r.stdout)["storage"]["files"] == [{"path": "/z"}]
    out = tmp_path / "out.ign"
    r = cli(["--strict", "--raw-errors", "-o", str(out)], WARN)
    assert r.returncode == 1
    assert r.stderr.decode().splitlines() == [
        "warning at $.storage.files.0.q, line 6 col 7: unused key q",
        "Config produced warnings and --strict was specified",
    ]
    assert not out.exists()


def test_error_output_pretty_names_file_and_line(tmp_path: Path) -> None:
    src = tmp_path / "bad.bu"
    src.write_bytes(BAD)
    out = tmp_path / "out.ign"
    out.write_bytes(b"old")
    r = cli([str(src), "-o", str(out)])
    assert r.returncode == 1
    err = r.stderr.decode()
    assert err.startswith("error[$.storage.files.0.path]:\n  --> " + str(src) + ":5:13\n")
    assert "^ path not absolute" in err
    assert err.endswith("Error translating config: config generated was invalid\n")
    assert out.read_bytes() == b"old"  # untouched on failure


def test_stdin_name_and_check(tmp_path: Path) -> None:
    r = cli([], BAD)
    assert "  --> <stdin>:5:13" in r.stderr.decode()
    r = cli(["--check"], SIMPLE)
    assert r.returncode == 0 and r.stdout == b""


def test_missing_input_file(tmp_path: Path) -> None:
    r = cli([str(tmp_path / "nope.bu")])
    assert r.returncode == 1
    assert b"no such file or directory" in r.stderr


def test_unknown_version() -> None:
    r = cli([], b"variant: fcos\nversion: 1.9.0\n")
    assert r.returncode == 1
    assert (
        r.stderr == b"Error translating config: No translator exists for variant fcos with version 1.9.0\n"
    )


def test_in_process_main(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    src = tmp_path / "a.bu"
    src.write_bytes(b"variant: fcos\nversion: 1.4.0\nkernel_arguments:\n  should_exist: [quiet]\n")
    assert main(["butane", str(src)]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "ignition": {"version": "3.3.0"},
        "kernelArguments": {"shouldExist": ["quiet"]},
    }


def test_help() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "coreos_infra", "butane", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0
    for opt in ("--strict", "--pretty", "--files-dir", "--output"):
        assert opt in r.stdout
