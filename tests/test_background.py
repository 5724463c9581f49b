"""Work done in a thread while the caller goes on: its result or its error reaches the caller."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from coreos_infra.background import Background
from coreos_infra.errors import CoreosInfraError
from coreos_infra.fsutil import copying_meanwhile


def test_result_and_error_reach_the_caller() -> None:
    started = threading.Event()

    def work() -> int:
        started.set()
        return 42

    with Background(work) as result:
        assert started.wait(10)
        assert result() == 42

    def broken() -> int:
        raise ValueError("no keyring")

    with Background(broken) as failed, pytest.raises(ValueError, match="no keyring"):
        failed()


def test_copying_meanwhile_copies_and_reports_its_error(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.write_bytes(bytes(range(256)) * 4000)
    with open(src, "rb") as opened, open(tmp_path / "dst", "w+b") as dst:
        with copying_meanwhile(src, opened, dst):
            assert opened.read(10) == bytes(range(10))  # the caller's position is its own
        assert opened.tell() == 10
    assert (tmp_path / "dst").read_bytes() == src.read_bytes()
    (tmp_path / "ro").write_bytes(b"")
    with open(src, "rb") as opened, open(tmp_path / "ro", "rb") as read_only:
        with pytest.raises(OSError), copying_meanwhile(src, opened, read_only):
            pass


def test_copying_meanwhile_refuses_a_replaced_input(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.write_bytes(b"first")
    with open(src, "rb") as opened, open(tmp_path / "dst", "w+b") as dst:
        src.unlink()
        src.write_bytes(b"second")  # another file under the same name
        with pytest.raises(CoreosInfraError, match="changed while it was being read"):
            with copying_meanwhile(src, opened, dst):
                pass
