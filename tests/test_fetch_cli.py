"""``coreos-infra download`` (coreos-installer download compatible options) through the verified cache."""

from __future__ import annotations

import lzma
from collections.abc import Iterator
from pathlib import Path

import pytest
from fetch_testlib import MirrorFixture, build_mirror

from coreos_infra import gpg
from coreos_infra.cli import main


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MirrorFixture]:
    work = tmp_path_factory.mktemp("cli-mirror")
    with gpg.throwaway_key(work) as key:
        yield build_mirror(work / "mirror", key, work / "files")


def test_download_copies_verified_file_and_signature(
    mirror: MirrorFixture, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["download", "-a", "x86_64", "--stream-base-url", str(mirror.root), "--keyring",
              str(mirror.public_key), "--cache-dir", str(tmp_path / "cache")]  # fmt: skip
    assert main([*common, "-C", str(tmp_path / "out")]) == 0
    src = mirror.path_of("x86_64", "metal", "raw.xz")
    out = tmp_path / "out" / src.name
    assert capsys.readouterr().out.strip() == str(out)
    assert out.read_bytes() == src.read_bytes()
    assert (tmp_path / "out" / f"{src.name}.sig").read_bytes() == src.with_name(
        src.name + ".sig"
    ).read_bytes()
    assert out.stat().st_mode & 0o200, "a writable copy, not the read-only cache blob"
    # -d: decompressed, no .sig (like coreos-installer)
    assert main([*common, "-d", "-C", str(tmp_path / "raw")]) == 0
    raw = tmp_path / "raw" / src.name.removesuffix(".xz")
    assert raw.read_bytes() == lzma.decompress(src.read_bytes())
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == [raw.name]
    # pxe: three files
    assert main([*common, "-f", "pxe", "-C", str(tmp_path / "pxe")]) == 0
    assert len(list((tmp_path / "pxe").iterdir())) == 6


def test_download_errors(mirror: MirrorFixture, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["download", "-a", "x86_64", "--stream-base-url", str(mirror.root), "--cache-dir", str(tmp_path),
            "-C", str(tmp_path / "out")]  # fmt: skip
    assert main(args) == 1
    assert "not a trusted key" in capsys.readouterr().err
    assert main([*args, "-a", "riscv64"]) == 1
    assert "no architecture 'riscv64'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
