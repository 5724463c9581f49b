"""``coreos-infra download`` (coreos-installer download compatible options) through the verified cache."""

from __future__ import annotations

import json
import lzma
import os
import shutil
import urllib.parse
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


@pytest.mark.parametrize(
    "evil",
    [
        "{abs}%2Fescaped.raw.xz",  # an absolute name after decoding
        "x%2F..%2F..%2Fescaped.raw.xz",  # traversal hidden behind %2F
        "..",
        "a%00b.raw.xz",  # NUL
        "a%5C..%5Cescaped.raw.xz",  # backslash separators
    ],
)
def test_download_refuses_names_escaping_the_directory(
    mirror: MirrorFixture, tmp_path: Path, capsys: pytest.CaptureFixture[str], evil: str
) -> None:
    """Stream metadata is unsigned: a file name from it must never leave ``-C DIR``."""
    root = tmp_path / "mirror"
    shutil.copytree(mirror.root, root)
    stream_json = root / "streams" / "stable.json"
    doc = json.loads(stream_json.read_text())
    disk = doc["architectures"]["x86_64"]["artifacts"]["metal"]["formats"]["raw.xz"]["disk"]
    outside = tmp_path / "outside"
    outside.mkdir()
    name = evil.format(abs=urllib.parse.quote(str(outside), safe=""))
    disk["location"] = disk["location"].rsplit("/", 1)[0] + "/" + name
    if "signature" in disk:
        disk["signature"] = disk["location"] + ".sig"
    stream_json.write_text(json.dumps(doc))
    # serve the real file under the decoded name too, so that only the name check stops the escape
    src = root / mirror.url_path("x86_64", "metal", "raw.xz").lstrip("/")
    served = Path(os.path.normpath(f"{src.parent}/{urllib.parse.unquote(name)}"))
    if "\0" not in str(served) and not served.is_dir():
        served.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, served)
        shutil.copyfile(f"{src}.sig", f"{served}.sig")
    out = tmp_path / "a" / "b" / "out"
    args = ["download", "-a", "x86_64", "--stream-base-url", str(root), "--keyring", str(mirror.public_key),
            "--cache-dir", str(tmp_path / "cache"), "-C", str(out)]  # fmt: skip
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "refusing artifact file name" in err
    assert "architectures.x86_64.artifacts.metal.formats.raw.xz.disk.location" in err
    assert list(outside.iterdir()) == []
    assert not (tmp_path / "a").exists()
    assert not list((tmp_path / "cache").rglob("*.raw.xz"))


def test_artifact_ref_name_is_checked_on_use() -> None:
    from coreos_infra.errors import CoreosInfraError
    from coreos_infra.stream import ArtifactRef

    assert ArtifactRef("https://x/a/f%20g.raw.xz", None, None).name == "f g.raw.xz"
    for location in ("https://x/a/%2Fetc%2Fpasswd", "https://x/a/..%2F..%2Fx", "https://x/a/"):
        with pytest.raises(CoreosInfraError, match="refusing artifact file name"):
            _ = ArtifactRef(location, None, None).name
