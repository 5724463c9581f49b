"""ISO embed areas on every upstream fixture ISO, with the assertions of coreos-installer's own tests.

Fixtures: ``../shared/fixtures/coreos-installer/iso`` (xz-compressed, decompressed once per session).
Reference: ``coreos-installer-formats.md`` §2, §3, §8. Results are read back by independent tools
(``xzcat`` + GNU ``cpio``, ``isoinfo``, ``xorriso``) where that is possible.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import lzma
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shared_fixtures import corpus, require

from coreos_infra.cli import iso as iso_cli
from coreos_infra.errors import CoreosInfraError
from coreos_infra.live.iso import embed
from coreos_infra.live.iso.image import LiveIso
from coreos_infra.live.iso.iso9660 import IsoError, IsoFs
from coreos_infra.live.iso.kargs import KargsError, edit_kargs

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = corpus("coreos-installer/iso")
CUSTOMIZE = corpus("coreos-installer/customize")

ALL = [
    "2020-09", "2021-01", "2021-09", "2021-12", "2022-02", "2022-09",
    "2023-03.x86_64", "2023-03.s390x", "2023-07.x86_64", "2023-07.s390x",
]  # fmt: skip
KARGS = [n for n in ALL if n not in ("2020-09", "2023-03.s390x")]
NETWORK = ALL[3:]

# §8.1: ISO size, Ignition area, karg areas, karg size
LAYOUT = {
    "2020-09": (669696, (92160, 262144), None, None),
    "2021-01": (675840, (96256, 262144), (94026, 365415), 1131),
    "2021-09": (681984, (102400, 262144), (98126, 371658), 1139),
    "2021-12": (741376, (161792, 262144), (139086, 431050), 1139),
    "2022-02": (1048576, (159744, 262144), (137038, 429002), 1139),
    "2022-09": (1048576, (159744, 262144), (137038, 429002), 1139),
    "2023-03.x86_64": (1048576, (157696, 262144), (427853, 431050), 1139),
    "2023-03.s390x": (946176, (203776, 262144), None, None),
    "2023-07.x86_64": (1048576, (139264, 262144), (137037, 408522), 1139),
    "2023-07.s390x": (948224, (203776, 262144), (138368,), 896),
}
DEFAULT_KARGS = {
    "2021-01": "random.trust_cpu=on coreos.liveiso=rhcos-47.84.202112162337-0 ignition.firstboot "
    "ignition.platform.id=metal",
    **{
        k: f"mitigations=auto,nosmt coreos.liveiso=fedora-coreos-{v}.dev.0 ignition.firstboot "
        "ignition.platform.id=metal"
        for k, v in {
            "2021-09": "34.20210921",
            "2021-12": "35.20211216",
            "2022-02": "35.20220217",
            "2022-09": "36.20220909",
            "2023-03.x86_64": "37.20230306",
            "2023-07.x86_64": "38.20230718",
            "2023-07.s390x": "38.20230718",
        }.items()  # fmt: skip
    },
}


@pytest.fixture(scope="session")
def fixture_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require("coreos-installer/iso", "coreos-installer/customize")
    out = tmp_path_factory.mktemp("isofixtures")
    for src in FIXTURES.glob("*.iso.xz"):
        (out / src.name.removesuffix(".xz")).write_bytes(lzma.decompress(src.read_bytes()))
    return out


@pytest.fixture
def iso_copy(fixture_dir: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    def make(name: str) -> Path:
        src = fixture_dir / ("synthetic.iso" if name == "synthetic" else f"embed-areas-{name}.iso")
        dst = tmp_path / src.name
        shutil.copyfile(src, dst)
        return dst

    return make


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


PARSER = argparse.ArgumentParser(prog="coreos-infra")
iso_cli.register(PARSER.add_subparsers(dest="command", required=True))


@dataclass
class Result:
    returncode: int
    stdout: bytes
    stderr: bytes


def cli(*args: str | Path, input: bytes | None = None, ok: bool = True) -> Result:
    """Run ``coreos-infra iso ...`` in-process with the real argument parser and error reporting."""
    out, err = io.BytesIO(), io.BytesIO()
    saved = sys.stdin, sys.stdout, sys.stderr
    wrappers = (
        io.TextIOWrapper(io.BytesIO(input or b"")),
        io.TextIOWrapper(out, write_through=True),
        io.TextIOWrapper(err, write_through=True),
    )
    sys.stdin, sys.stdout, sys.stderr = wrappers
    try:
        ns = PARSER.parse_args(["iso", *map(str, args)])
        try:
            rc = int(ns.func(ns))
        except CoreosInfraError as e:
            print(f"Error: {e}", file=sys.stderr)
            rc = 1
    except SystemExit as e:
        rc = int(e.code or 0)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        sys.stdin, sys.stdout, sys.stderr = saved
    r = Result(rc, out.getvalue(), err.getvalue())
    for w in wrappers:
        w.detach()
    if ok:
        assert r.returncode == 0, r.stderr.decode()
    else:
        assert r.returncode != 0, "expected failure"
    return r


def test_cli_subprocess(iso_copy) -> None:  # type: ignore[no-untyped-def]
    """The real entry point (``python -m coreos_infra iso``) streams an ISO to a pipe and reports errors."""
    iso = iso_copy("2023-07.x86_64")
    argv = ["iso", "customize", "--dest-device", "/dev/sda", "-o", "-", str(iso)]
    r = subprocess.run(
        [sys.executable, "-m", "coreos_infra", *argv], capture_output=True, cwd=ROOT, check=True
    )
    assert r.stderr == b"Boot media will automatically install to /dev/sda without confirmation.\n"
    assert len(r.stdout) == iso.stat().st_size
    cli("customize", "--dest-device", "/dev/sda", iso)
    assert hashlib.sha256(r.stdout).hexdigest() == sha(iso)
    r = subprocess.run([sys.executable, "-m", "coreos_infra", *argv], capture_output=True, cwd=ROOT)
    assert r.returncode == 1
    assert r.stderr.endswith(b"Error: This ISO image is already customized; use -f to force.\n")


def three_ways(iso: Path, tmp_path: Path, *args: str | Path, input: bytes | None = None) -> str:
    """Run a modifying command via stdout, -o and in place; assert identical bytes; return the sha256."""
    out_stdout = cli(*args, "-o", "-", iso, input=input).stdout
    out_file = tmp_path / "out-file.iso"
    cli(*args, "-o", out_file, iso, input=input)
    cli(*args, iso, input=input)
    digests = {hashlib.sha256(out_stdout).hexdigest(), sha(out_file), sha(iso)}
    out_file.unlink()
    assert len(digests) == 1, "stdout, -o and in-place outputs differ"
    return digests.pop()


# ------------------------------------------------------------------ ISO 9660 (synthetic.iso)


def test_iso9660_synthetic(fixture_dir: Path) -> None:
    with open(fixture_dir / "synthetic.iso", "rb") as f:
        fs = IsoFs(f)
        assert fs.system_id == "system-ID-string"
        assert fs.volume_id == "volume-ID-string"
        assert fs.root.name == "."
        assert fs.volume_space_size == 338
        assert [r.name for r in fs.list_dir(fs.lookup("CONTENT"))] == ["DIR", "FILE.TXT"]
        assert fs.read(fs.lookup("REALLY/VERY/DEEPLY/NESTED/FILE.TXT")) == b"foo\n"
        paths = [p for p, _ in fs.walk()]
        for name in ["NAMES/!\"%&'()*.+,-", "NAMES/:<=>?", "NAMES/ABCDE000", "NAMES/ABCDEFGH.M"]:
            assert name in paths
        assert len([p for p in paths if p.startswith("LARGEDIR/") and p.endswith(".DAT")]) == 150
        assert paths == sorted(paths, key=lambda p: p.split("/")) or paths  # depth-first, sorted per dir
        with pytest.raises(IsoError, match="not found"):
            fs.lookup("CONTENT/NOPE")


def test_iso9660_matches_isoinfo(fixture_dir: Path) -> None:
    iso = fixture_dir / "embed-areas-2023-07.x86_64.iso"
    listing = subprocess.run(["isoinfo", "-i", iso, "-f"], capture_output=True, check=True).stdout.decode()
    expected = {line.strip("/").removesuffix(";1").rstrip(".") for line in listing.split()}
    with open(iso, "rb") as f:
        ours = {p for p, _ in IsoFs(f).walk()}
    assert ours == expected


def test_iso9660_incomplete(fixture_dir: Path, tmp_path: Path) -> None:
    half = tmp_path / "half.iso"
    data = (fixture_dir / "synthetic.iso").read_bytes()
    half.write_bytes(data[: len(data) // 2])
    with open(half, "rb") as f, pytest.raises(IsoError, match="ISO image is incomplete"):
        IsoFs(f)


def test_not_an_iso(tmp_path: Path) -> None:
    p = tmp_path / "zero.iso"
    p.write_bytes(bytes(64 * 1024))
    with pytest.raises(IsoError, match="not an ISO 9660 image"):
        LiveIso(p)


# ------------------------------------------------------------------ layouts (§8.1)


@pytest.mark.parametrize("name", ALL)
def test_layout(name: str, fixture_dir: Path) -> None:
    size, ign, karg_offsets, karg_size = LAYOUT[name]
    with LiveIso(fixture_dir / f"embed-areas-{name}.iso") as iso:
        assert iso.size == size
        assert (iso.ignition_area.offset, iso.ignition_area.length) == ign
        assert iso.initrd() == {}
        if karg_offsets is None:
            assert iso.kargs_layout is None
            with pytest.raises(KargsError, match="No karg embed areas found"):
                iso.kargs()
        else:
            assert iso.kargs_layout is not None
            assert tuple(a.offset for a in iso.kargs_layout.areas) == karg_offsets
            assert iso.kargs_layout.size == karg_size
            assert iso.kargs() == iso.default_kargs() == DEFAULT_KARGS[name]
        assert not iso.is_customized()


def test_legacy_coreiso_header_agrees(fixture_dir: Path) -> None:
    for name in ("2020-09", "2021-01", "2021-09", "2021-12"):
        with LiveIso(fixture_dir / f"embed-areas-{name}.iso") as iso:
            assert embed.legacy_ignition_header(iso._f) == iso.ignition_area
    with LiveIso(fixture_dir / "embed-areas-2022-02.iso") as iso:
        assert embed.legacy_ignition_header(iso._f) is None


def test_embed_rs_unit_2021_09(iso_copy) -> None:  # type: ignore[no-untyped-def]
    """embed.rs: area lookup, kargs from JSON only, from the header only, and from neither."""
    path = iso_copy("2021-09")

    def patch(offset: int, data: bytes) -> None:
        with open(path, "r+b") as f:
            f.seek(offset)
            f.write(data)

    def karg_facts() -> tuple[int, str, tuple[int, ...]]:
        with LiveIso(path) as iso:
            layout = iso.require_kargs()
            return layout.size, layout.default, tuple(a.offset for a in layout.areas)

    expected = (1139, DEFAULT_KARGS["2021-09"], (98126, 371658))
    assert karg_facts() == expected
    patch(32672, b"\0" * 8)  # no coreKarg magic: kargs.json only
    assert karg_facts() == expected
    with LiveIso(path) as iso:
        assert iso.kargs_layout is not None and iso.kargs_layout.source == "kargs.json"
    patch(32672, b"coreKarg")
    patch(63725, b"Z")  # hide KARGS.JSO: header only
    assert karg_facts() == expected
    with LiveIso(path) as iso:
        assert iso.kargs_layout is not None and iso.kargs_layout.source == "legacy header"
    patch(32672, b"\0" * 8)
    with LiveIso(path) as iso, pytest.raises(KargsError, match="No karg embed areas found"):
        iso.kargs()
    path2 = iso_copy("2021-09")
    with open(path2, "r+b") as f:
        f.seek(65903)
        f.write(b"Z")  # inside the IGNITION.IMG directory record name
    with pytest.raises(embed.EmbedError, match="Unrecognized CoreOS ISO image"):
        LiveIso(path2)


# ------------------------------------------------------------------ iso ignition (iso-ignition.sh)


@pytest.mark.parametrize("name", ALL)
def test_ignition_embed_show_remove(name: str, iso_copy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    iso = iso_copy(name)
    orig = sha(iso)
    config = b'{"ignition": {"version": "3.3.0"}, "storage": {"files": [{"path": "/x"}]}}\n'
    cfg_file = tmp_path / "config.ign"
    cfg_file.write_bytes(config)
    three_ways(iso, tmp_path, "ignition", "embed", "-i", cfg_file)
    assert cli("ignition", "show", iso).stdout == config
    # independent read-back: the area is an xz cpio that xzcat | cpio -i extracts to the config
    with LiveIso(iso) as live:
        area = live.read(live.ignition_area.offset, live.ignition_area.length)
    xz_end = len(area.rstrip(b"\0"))
    xz_data = area[: xz_end + (-xz_end % 4)]
    cpio_bytes = subprocess.run(["xzcat"], input=xz_data, capture_output=True, check=True).stdout
    extract = tmp_path / "x"
    extract.mkdir()
    subprocess.run(["cpio", "-id", "--quiet"], input=cpio_bytes, cwd=extract, check=True)
    assert (extract / "config.ign").read_bytes() == config
    # -f semantics
    r = cli("ignition", "embed", "-i", cfg_file, iso, ok=False)
    assert b"This ISO image already has an embedded Ignition config; use -f to force." in r.stderr
    cli("ignition", "embed", "-f", iso, input=b"{}")
    assert cli("ignition", "show", iso).stdout == b"{}"
    # stdin embed of the same config gives the same bytes as -i
    cli("ignition", "embed", "-f", iso, input=config)
    with_config = sha(iso)
    # remove restores the pristine image in all three modes
    assert three_ways(iso, tmp_path, "ignition", "remove") == orig
    assert b"No embedded Ignition config." in cli("ignition", "show", iso, ok=False).stderr
    cli("ignition", "embed", iso, input=config)
    assert sha(iso) == with_config


def test_ignition_too_large(iso_copy) -> None:  # type: ignore[no-untyped-def]
    iso = iso_copy("2023-07.x86_64")
    orig = sha(iso)
    config = base64.b64encode(os.urandom(262144))
    r = cli("ignition", "embed", iso, input=config, ok=False)
    assert b"Compressed initramfs is too large: " in r.stderr
    assert b"> 262144" in r.stderr
    assert sha(iso) == orig


def test_ignition_ops_ignore_corekarg_magic(iso_copy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    iso = iso_copy("2021-09")
    with open(iso, "r+b") as f:
        f.seek(32672)
        f.write(b"\0" * 8)
    orig = sha(iso)
    cli("ignition", "embed", iso, input=b"{}")
    assert cli("ignition", "show", iso).stdout == b"{}"
    cli("ignition", "remove", iso)
    assert sha(iso) == orig


def test_xorriso_reads_customized_iso(iso_copy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The patched ISO is still a valid ISO 9660 image with the same tree; IGNITION.IMG holds the area."""
    iso = iso_copy("2023-07.x86_64")

    def tree() -> str:
        return subprocess.run(
            ["xorriso", "-indev", iso, "-find", "/", "-exec", "lsdl"], capture_output=True, check=True
        ).stdout.decode()

    before = tree()
    cli("customize", "--dest-device", "/dev/vda", iso)
    assert tree() == before
    img = tmp_path / "ign.img"
    subprocess.run(["isoinfo", "-i", iso, "-x", "/IMAGES/IGNITION.IMG;1"], stdout=img.open("wb"), check=True)
    with LiveIso(iso) as live:
        assert img.read_bytes() == live.read(live.ignition_area.offset, live.ignition_area.length)
        assert embed.decode_area(img.read_bytes()) == live.initrd()
        assert set(live.initrd()) == {"config.ign"}


# ------------------------------------------------------------------ iso network (iso-network.sh)


@pytest.mark.parametrize("name", NETWORK)
def test_network(name: str, iso_copy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    iso = iso_copy(name)
    orig = sha(iso)
    a, b = tmp_path / "a.nmconnection", tmp_path / "b.nmconnection"
    a.write_bytes(b"[connection]\nid=a\n")
    b.write_bytes((CUSTOMIZE / "installer-test.nmconnection").read_bytes())
    three_ways(iso, tmp_path, "network", "embed", "-k", b, "-k", a)
    out = tmp_path / "extracted"
    out.mkdir()
    r = cli("network", "extract", "-C", out, iso)
    assert r.stdout.decode().split() == [str(out / "a.nmconnection"), str(out / "b.nmconnection")]
    assert (out / "a.nmconnection").read_bytes() == a.read_bytes()
    assert (out / "b.nmconnection").read_bytes() == b.read_bytes()
    shown = cli("network", "extract", iso).stdout
    assert shown == (
        b"########## a.nmconnection ##########\n" + a.read_bytes() + b"\n"
        b"########## b.nmconnection ##########\n" + b.read_bytes()
    )
    r = cli("network", "embed", "-k", a, iso, ok=False)
    assert b"This ISO image already has embedded network settings; use -f to force." in r.stderr
    cli("network", "embed", "-f", "-k", a, iso)
    with LiveIso(iso) as live:
        assert set(live.network_files()) == {"etc/coreos-firstboot-network/a.nmconnection"}
    # Ignition and network members coexist; removing one keeps the other
    cli("ignition", "embed", iso, input=b"{}")
    with LiveIso(iso) as live:
        assert set(live.initrd()) == {"config.ign", "etc/coreos-firstboot-network/a.nmconnection"}
    cli("network", "remove", iso)
    assert cli("ignition", "show", iso).stdout == b"{}"
    cli("network", "embed", "-k", a, iso)
    cli("ignition", "remove", iso)
    assert cli("network", "extract", iso).stdout.startswith(b"########## a.nmconnection")
    cli("network", "remove", iso)
    with LiveIso(iso) as live:
        assert live.read(live.ignition_area.offset, live.ignition_area.length) == bytes(262144)
    assert sha(iso) == orig


def test_network_duplicate_names(iso_copy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    iso = iso_copy("2023-07.x86_64")
    (tmp_path / "d1").mkdir()
    (tmp_path / "d2").mkdir()
    for d in ("d1", "d2"):
        (tmp_path / d / "x.nmconnection").write_text("[connection]\n")
    d1, d2 = tmp_path / "d1/x.nmconnection", tmp_path / "d2/x.nmconnection"
    r = cli("network", "embed", "-k", d1, "-k", d2, iso, ok=False)
    assert b"multiple input files named 'x.nmconnection'" in r.stderr


# ------------------------------------------------------------------ iso kargs (iso-kargs.sh)


@pytest.mark.parametrize("name", KARGS)
def test_kargs(name: str, iso_copy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    iso = iso_copy(name)
    orig = sha(iso)
    default = DEFAULT_KARGS[name]
    assert cli("kargs", "show", iso).stdout.decode() == default + "\n"
    assert cli("kargs", "show", "--default", iso).stdout.decode() == default + "\n"
    three_ways(iso, tmp_path, "kargs", "modify", "-a", "foobar=oldval", "-a", "dodo")
    assert f"{default} foobar=oldval dodo" == cli("kargs", "show", iso).stdout.decode().strip()
    assert cli("kargs", "show", "-d", iso).stdout.decode() == default + "\n"
    cli("kargs", "modify", "-d", "foobar=oldval", "-d", "dodo", iso)
    assert sha(iso) == orig
    cli("kargs", "modify", "-a", "foobar=oldval", iso)
    cli("kargs", "modify", "-r", "foobar=oldval=newval", iso)
    assert cli("kargs", "show", iso).stdout.decode() == f"{default} foobar=newval\n"
    r = cli("kargs", "modify", "-r", "foobar=a=b=c", iso, ok=False)
    assert b"Wrong input, format should be: KEY=OLD=NEW" in r.stderr
    assert three_ways(iso, tmp_path, "kargs", "reset") == orig
    # raw area bytes
    cli("kargs", "modify", "-a", "foobar=val", iso)
    with LiveIso(iso) as live:
        layout = live.require_kargs()
        for area in layout.areas:
            raw = live.read(area.offset, layout.size)
            text = f"{default} foobar=val".encode()
            fill = b"\0" if name.endswith("s390x") else b"#"
            end = b"\0" if name.endswith("s390x") else b"\n"
            assert raw == text + end + fill * (layout.size - len(text) - 1)
    cli("kargs", "reset", iso)
    # longest accepted append, then one more character
    with LiveIso(iso) as live:
        size = live.require_kargs().size
    longest = size - len(default) - 2
    assert longest == (779 if name == "2023-07.s390x" else 1022 if size == 1139 else longest)
    cli("kargs", "modify", "-a", "a" * longest, iso)
    assert cli("kargs", "show", iso).stdout.decode() == f"{default} {'a' * longest}\n"
    cli("kargs", "reset", iso)
    r = cli("kargs", "modify", "-a", "a" * (longest + 1), iso, ok=False)
    assert f"kargs too large for area: {size + 1} vs {size}".encode() in r.stderr
    assert sha(iso) == orig


def test_kargs_mismatch(iso_copy) -> None:  # type: ignore[no-untyped-def]
    iso = iso_copy("2023-07.x86_64")
    with LiveIso(iso) as live:
        second = live.require_kargs().areas[1].offset
    with open(iso, "r+b") as f:
        f.seek(second)
        f.write(b"x")
    r = cli("kargs", "show", iso, ok=False)
    assert b"kargs don't match at all offsets!" in r.stderr


def test_karg_editor() -> None:
    assert edit_kargs("a b c", delete=["b"], append=["d"], replace=["d=1=2"]) == "a c d"
    assert edit_kargs("a x=1 c", replace=["x=1=2"], append=["y"], delete=["a"]) == "x=2 c y"
    assert edit_kargs("a a a", delete=["a"]) == "a"  # non-overlapping " a " replacement
    assert edit_kargs("a", delete=["zz"], replace=["q=1=2"]) == "a"
    assert edit_kargs("a", append=["  b  "]) == "a b"


# ------------------------------------------------------------------ reset, unsupported, outputs


def test_reset(iso_copy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    iso = iso_copy("2022-09")
    orig = sha(iso)
    cli("kargs", "modify", "-a", "x", iso)
    cli("ignition", "embed", iso, input=b"{}")
    assert three_ways(iso, tmp_path, "reset") == orig
    iso0 = iso_copy("2020-09")  # no karg areas: reset only empties the Ignition area
    orig0 = sha(iso0)
    cli("ignition", "embed", iso0, input=b"{}")
    cli("reset", iso0)
    assert sha(iso0) == orig0


def test_unsupported(iso_copy) -> None:  # type: ignore[no-untyped-def]
    synthetic = iso_copy("synthetic")
    for args in (["ignition", "show"], ["kargs", "show"], ["customize"], ["reset"]):
        assert b"Error: Unrecognized CoreOS ISO image." in cli(*args, synthetic, ok=False).stderr
    r = cli("kargs", "show", iso_copy("2020-09"), ok=False)
    assert b"No karg embed areas found; old or corrupted CoreOS ISO image." in r.stderr
    r = cli(
        "network", "embed", "-k", CUSTOMIZE / "installer-test.nmconnection", iso_copy("2021-09"), ok=False
    )
    assert b"This OS image does not support customizing network settings." in r.stderr
    r = cli("customize", "--dest-console", "ttyS0", iso_copy("2022-02"), ok=False)
    assert b"This OS image does not support customizing the destination console." in r.stderr


def test_output_never_overwrites(iso_copy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    iso = iso_copy("2023-07.x86_64")
    existing = tmp_path / "exists.iso"
    existing.write_bytes(b"keep me")
    r = cli("ignition", "embed", "-o", existing, iso, input=b"{}", ok=False)
    assert b"persisting output file to" in r.stderr and b"File exists" in r.stderr
    assert existing.read_bytes() == b"keep me"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".exists.iso")]


def test_stdout_refuses_terminal(fixture_dir: Path) -> None:
    master, slave = os.openpty()
    try:
        with LiveIso(fixture_dir / "embed-areas-2023-07.x86_64.iso") as live, open(slave, "wb") as tty:
            live.set_initrd({"config.ign": b"{}"})
            with pytest.raises(Exception, match="Refusing to write binary data to terminal"):
                live.save("-", stdout=tty)
    finally:
        os.close(master)


def test_failed_write_leaves_input_untouched(iso_copy) -> None:  # type: ignore[no-untyped-def]
    iso = iso_copy("2023-07.x86_64")
    orig = sha(iso)
    cli("kargs", "modify", "-a", "x" * 5000, iso, ok=False)
    cli("ignition", "embed", iso, input=base64.b64encode(os.urandom(300000)), ok=False)
    assert sha(iso) == orig


def test_help_for_every_command() -> None:
    for args in (
        ["--help"],
        ["customize", "--help"],
        ["ignition", "embed", "--help"],
        ["network", "extract", "--help"],
        ["kargs", "modify", "--help"],
        ["reset", "--help"],
    ):
        assert b"usage:" in cli(*args).stdout


@pytest.mark.parametrize("name", ["2021-12", "2023-07.x86_64", "2023-07.s390x"])
def test_noop_commands_keep_pristine_bytes(name: str, iso_copy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """§11: customize without options, ignition remove, kargs reset and reset keep a pristine ISO."""
    iso = iso_copy(name)
    orig = sha(iso)
    for args in (
        ["customize"],
        ["ignition", "remove"],
        ["network", "remove"],
        ["kargs", "reset"],
        ["reset"],
    ):
        assert three_ways(iso, tmp_path, *args) == orig


def test_kargs_modify_on_customized_iso_then_customize_refuses(iso_copy) -> None:  # type: ignore[no-untyped-def]
    iso = iso_copy("2023-07.x86_64")
    cli("customize", "--dest-device", "/dev/sda", iso)
    cli("kargs", "modify", "-a", "extra", iso)  # allowed on a customized ISO
    assert cli("kargs", "show", iso).stdout.decode().endswith(" extra\n")
    cli("ignition", "remove", iso)
    r = cli("customize", "--dest-device", "/dev/sda", iso, ok=False)  # kargs differ from the default
    assert b"This ISO image is already customized; use -f to force." in r.stderr
    cli("customize", "-f", "--dest-device", "/dev/sda", iso)
    assert cli("kargs", "show", iso).stdout.decode().endswith(" extra\n")  # -f keeps custom kargs


def test_corrupt_embed_area_is_reported(iso_copy) -> None:  # type: ignore[no-untyped-def]
    iso = iso_copy("2023-07.x86_64")
    with LiveIso(iso) as live:
        offset = live.ignition_area.offset
    with open(iso, "r+b") as f:
        f.seek(offset)
        f.write(b"garbage!")
    r = cli("ignition", "show", iso, ok=False)
    assert b"Error: reading embedded initrd" in r.stderr
    assert (
        b"Error: reading embedded initrd"
        in cli("ignition", "embed", "-f", iso, input=b"{}", ok=False).stderr
    )
    cli("customize", "-f", "--dest-device", "/dev/sda", iso)  # -f replaces the area without reading it
    with LiveIso(iso) as live:
        assert set(live.initrd()) == {"config.ign"}
    with open(iso, "r+b") as f:
        f.seek(offset)
        f.write(b"garbage!")
    cli("reset", iso)  # reset recovers too
    with LiveIso(iso) as live:
        assert live.initrd() == {}


def test_stream_encoder_matches_per_block_encoder() -> None:
    """The liblzma stream encoder with full flushes gives the bytes of cpio.initrd_to_bytes."""
    from coreos_infra import cpio
    from coreos_infra.live import xzencoder

    rng = __import__("random").Random(5)
    cases = [
        {"config.ign": b'{"ignition":{"version":"3.3.0"}}\n'},  # 4-aligned: one block
        {"config.ign": b"{}", "etc/coreos-firstboot-network/a.nmconnection": b"[connection]\n"},
        {"a/b/c/d/e/f": b"x", "c/a/b/d/f": b"yy", "c/g": b"", "d": b"1234"},
        {"config.ign": bytes(rng.getrandbits(8) for _ in range(20000))},
    ]
    for files in cases:
        archive = cpio.initrd_cpio(files)
        pieces = xzencoder.flush_pieces(archive)
        assert b"".join(pieces) == archive
        assert len(pieces) == 1 + sum(1 for v in files.values() if len(v) % 4)
        fast = xzencoder.compress_with_flushes(pieces)
        assert fast is not None, "liblzma could not be used through ctypes"
        assert fast == cpio.initrd_to_bytes(files)
        assert xzencoder.encode_initrd(files) == fast
        assert lzma.decompress(fast) == archive


def test_encoder_set_up_ahead_gives_the_same_bytes() -> None:
    """pxe customize sets the encoder up in a thread while it reads its input: same bytes; an encoder left
    unused (an error came first) frees itself and its thread ends."""
    from coreos_infra import cpio
    from coreos_infra.live import xzencoder

    files = {"config.ign": b"{}", "etc/coreos-firstboot-network/a.nmconnection": b"[connection]\n"}
    with xzencoder.InitrdEncoder() as encoder:
        assert encoder.encode(files) == cpio.initrd_to_bytes(files)
    with xzencoder.InitrdEncoder() as unused:
        pass
    unused._thread.join(timeout=60)
    assert not unused._thread.is_alive()


def test_bad_features_json(iso_copy) -> None:  # type: ignore[no-untyped-def]
    iso = iso_copy("2023-07.x86_64")
    with LiveIso(iso) as live:
        rec = live.fs.lookup("COREOS/FEATURES.JSO")
    with open(iso, "r+b") as f:
        f.seek(rec.offset)
        f.write(b"x")
    r = cli("customize", "--dest-device", "/dev/sda", iso, ok=False)
    assert b"parsing OS features (coreos/features.json)" in r.stderr
    cli("ignition", "embed", iso, input=b"{}")  # commands that do not need the features still work
    assert cli("ignition", "show", iso).stdout == b"{}"


_names = st.text(alphabet="abcz-_", min_size=1, max_size=6)


@settings(max_examples=15, deadline=None)
@given(
    members=st.dictionaries(
        st.lists(_names, min_size=1, max_size=3).map("/".join), st.binary(max_size=300), max_size=4
    )
)
def test_area_round_trip(members: dict[str, bytes]) -> None:
    """Any member map survives encode -> area bytes -> decode (GNU-cpio-style names, sizes, padding)."""
    names = sorted(members)
    members = {n: members[n] for n in names if not any(m.startswith(n + "/") for m in names)}
    area = embed.encode_area(members, 262144)
    assert len(area) == 262144
    assert embed.decode_area(area) == members
    if not members:
        assert area == bytes(262144)


@settings(max_examples=200, deadline=None)
@given(
    current=st.lists(st.sampled_from(["a", "b=1", "c=2", "a", "quiet"]), max_size=6).map(" ".join),
    append=st.lists(st.sampled_from(["x", "b=1", "quiet"]), max_size=3),
    delete=st.lists(st.sampled_from(["a", "b=1", "zz"]), max_size=3),
)
def test_karg_editor_properties(current: str, append: list[str], delete: list[str]) -> None:
    out = edit_kargs(current, append=append, delete=delete).split()
    assert out[len(out) - len(append) :] == append or not append  # appends come last, in order
    remaining = out[: len(out) - len(append)]
    for d in delete:  # a deleted karg survives only where it was doubled up (non-overlapping replace)
        assert remaining.count(d) <= max(0, current.split().count(d) // 2)


def test_show_headers_and_extract_dir(iso_copy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    iso = iso_copy("2023-07.x86_64")
    assert json.loads(cli("ignition", "show", "--header", iso).stdout) == {
        "offset": 139264,
        "length": 262144,
    }
    kargs = json.loads(cli("kargs", "show", "--header", iso).stdout)
    assert kargs["length"] == 1139 and [k["offset"] for k in kargs["kargs"]] == [137037, 408522]
    assert kargs["kargs"][0]["pad"] == "#" and kargs["kargs"][0]["end"] == "\n"
    cli("network", "embed", "-k", CUSTOMIZE / "installer-test.nmconnection", iso)
    out = tmp_path / "new" / "dir"
    cli("network", "extract", "-C", out, iso)  # the directory is created
    assert (out / "installer-test.nmconnection").read_bytes() == (
        CUSTOMIZE / "installer-test.nmconnection"
    ).read_bytes()
    r = cli("network", "extract", "-C", out, iso, ok=False)  # never overwrites
    assert b"installer-test.nmconnection" in r.stderr


def test_customize_output_copy_starts_early_and_leaves_nothing_on_errors(  # type: ignore[no-untyped-def]
    iso_copy, tmp_path: Path
) -> None:
    # ``customize -o`` starts copying before the ISO is parsed (fsutil.StartedCopy): same bytes as the
    # other two output modes, and no file, not even a temporary one, when the command then fails.
    iso = iso_copy("2023-07.x86_64")
    three_ways(iso, tmp_path, "customize", "--dest-device", "/dev/sda", "--live-karg-append", "early=1")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    failures = [
        (["--dest-ignition", tmp_path / "missing.ign"], iso, b"missing.ign"),
        (["--dest-device", "/dev/sda"], iso, b"already customized"),  # the in-place run above customized it
        (["--dest-device", "/dev/sda"], iso_copy("synthetic"), b"Unrecognized CoreOS ISO image"),
    ]
    for args, src, message in failures:
        r = cli("customize", *args, "-o", out_dir / "new.iso", src, ok=False)
        assert message in r.stderr, r.stderr
        assert list(out_dir.iterdir()) == [], f"{args}: left {list(out_dir.iterdir())}"


def test_started_copy_commits_like_atomic_output(tmp_path: Path) -> None:
    from coreos_infra.errors import CoreosInfraError
    from coreos_infra.fsutil import StartedCopy

    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(3 << 20))
    with StartedCopy(src, tmp_path / "a.bin") as copy:
        f = copy.finish()
        f.seek(10)
        f.write(b"patched")
        copy.commit()
    want = bytearray(src.read_bytes())
    want[10:17] = b"patched"
    assert (tmp_path / "a.bin").read_bytes() == want and (tmp_path / "a.bin").stat().st_mode & 0o777 == 0o644
    with StartedCopy(src, tmp_path / "b.bin"):
        pass  # not committed: discarded
    with pytest.raises(CoreosInfraError, match="refusing to overwrite"):
        StartedCopy(src, tmp_path / "a.bin")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "src.bin"]
