"""Start-up cost of ``coreos-infra``: the CLI imports a command's modules only when it runs it.

Structural, not timed (speed is measured in tests/bench/test_bench_cli.py): what ``--help`` and the parser
import is checked in a fresh interpreter through ``sys.modules``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

HEAVY = (
    "coreos_infra.butane",
    "coreos_infra.ignition",
    "coreos_infra.fetch",
    "coreos_infra.transport",
    "coreos_infra.cache",
    "coreos_infra.stream",
    "coreos_infra.gpg",
    "coreos_infra.live.customize",
    "coreos_infra.live.iso.image",
    "coreos_infra.live.pxe.customize",
    "coreos_infra.cpio",
    "yaml",
    "urllib.request",
)

PROBE = """
import contextlib, io, json, sys
from coreos_infra.cli import main
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    try:
        main(sys.argv[1:])
    except SystemExit:
        pass
print(json.dumps(sorted(sys.modules)))
"""


def _imported(*argv: str) -> set[str]:
    r = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, cwd=ROOT,
                       check=True)  # fmt: skip
    return set(json.loads(r.stdout.splitlines()[-1]))


def _heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["iso", "customize", "--help"],
        ["pxe", "customize", "--help"],
        ["butane", "--help"],
        ["download", "--help"],
        ["iso", "customize"],  # a usage error (missing ISO) imports no more than --help
    ],
)
def test_parsing_imports_no_engine(argv: list[str]) -> None:
    assert _heavy(_imported(*argv)) == []


def test_only_the_named_area_builds_its_parsers(capsys: pytest.CaptureFixture[str]) -> None:
    from coreos_infra.cli import build_parser

    assert build_parser().parse_args(["pxe", "customize", "-o", "out", "in"]).initramfs == "in"
    only_iso = build_parser(full=["iso"])
    assert only_iso.parse_args(["iso", "customize", "in.iso"]).input == "in.iso"
    with pytest.raises(SystemExit):
        only_iso.parse_args(["pxe", "customize", "-o", "out", "in"])  # listed, not built
    assert "unrecognized arguments" in capsys.readouterr().err


def test_running_a_command_still_imports_what_it_needs(tmp_path: Path) -> None:
    src = tmp_path / "in.bu"
    src.write_text("variant: fcos\nversion: 1.5.0\n")
    modules = _imported("butane", str(src), "-o", str(tmp_path / "out.ign"))
    assert "coreos_infra.butane.engine" in modules
    assert json.loads((tmp_path / "out.ign").read_text())["ignition"]["version"] == "3.4.0"
    assert "coreos_infra.fetch" not in modules
