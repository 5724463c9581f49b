"""PXE initrd tools: wrap/unwrap, pxe customize, with upstream's initrd fixtures and GNU cpio."""

from __future__ import annotations

import hashlib
import json
import lzma
import subprocess
from pathlib import Path

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st
from shared_fixtures import corpus, require

from coreos_infra import xz
from coreos_infra.cpio import Entry, gzip_newc, initrd_cpio, initrd_to_bytes, read_initrd, write_newc
from coreos_infra.errors import CoreosInfraError, InputError
from coreos_infra.live.customize import CustomizeError, CustomizeOptions, InputFile
from coreos_infra.live.pxe import wrap
from coreos_infra.live.pxe.customize import KARGS_NOTICE, customize_initramfs, plan_customization

FIXTURES = corpus("coreos-installer")
INITRD_FIXTURES = FIXTURES / "initrd"
CONFIG_A = b'{"ignition": {"version": "3.0.0"}}\n'
FEATURES = {
    "installer-config": True,
    "installer-config-directives": {"console": True},
    "live-initrd-network": True,
}


def fixture_initrd(name: str) -> bytes:
    require("coreos-installer/initrd")
    data = (INITRD_FIXTURES / name).read_bytes()
    return lzma.decompress(data) if name.endswith(".xz") else data


def fcos_like_initramfs(features: dict[str, object] | None = FEATURES, *, stamp: bool = True) -> bytes:
    """An initramfs shaped like FCOS's: early-microcode cpio + zstd dracut archive + gzip live archive."""
    microcode = write_newc(
        [Entry.directory("kernel"), Entry.file("kernel/x86/microcode/GenuineIntel.bin", b"u" * 9)]
    )
    main = zstandard.ZstdCompressor(level=3).compress(
        write_newc([Entry.directory("usr"), Entry.file("init", b"#!/bin/sh\n", 0o755)] +
                   [Entry.file(f"usr/lib/f{i}", bytes([i]) * (i * 7)) for i in range(50)])
    )  # fmt: skip
    live = []
    if stamp:
        live.append(Entry.file("etc/coreos-live-initramfs", b"40.20240101.3.0\n"))
    if features is not None:
        live.append(Entry.file("etc/coreos/features.json", json.dumps(features, indent=2).encode() + b"\n"))
    live.append(Entry.file("etc/coreos-live-want-rootfs", b"stream-hash sha256 2097152\n"))
    data = microcode + main + gzip_newc(live)
    return data + b"\0" * (-len(data) % 4)


# ---------------------------------------------------------------- wrap / unwrap


def test_wrap_ignition_cpio_matches_test_vector_a() -> None:
    cpio = initrd_cpio({"config.ign": CONFIG_A})
    assert len(cpio) == 284
    assert cpio[:110] == b"070701" + b"".join(
        b"%08x" % v for v in (0, 0o100600, 0, 0, 1, 0, 35, 0, 0, 0, 0, 11, 0)
    )
    # the reference's derivation: one-shot xz (preset 9, CRC32) of this exact cpio
    one_shot = lzma.compress(cpio, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32, preset=9)
    assert (
        hashlib.sha256(one_shot).hexdigest()
        == "8e3d233807e9191e6dc7490c2583ee43b873ab40da204587b4a877e83ef90003"
    )
    wrapped = wrap.wrap_ignition(CONFIG_A)
    assert wrapped[:12] == bytes.fromhex("fd377a585a0000016922de36")  # xz, CRC32 check
    assert xz.parse_stream_tail(wrapped).check == xz.CHECK_CRC32
    assert lzma.decompress(wrapped) == cpio
    # coreos-installer writes it as one xz block: byte-identical to upstream (148 bytes)
    assert len(xz.parse_stream_tail(wrapped).blocks) == 1
    assert wrapped == one_shot and len(wrapped) == 148


def test_network_wrap_is_one_xz_block() -> None:
    # two keyfiles of sizes that need padding: no flush points in a standalone PXE initrd
    wrapped = wrap.wrap_network([("a.nmconnection", b"[connection]\nid=a\n"), ("b.nmconnection", b"x" * 7)])
    info = xz.parse_stream_tail(wrapped)
    assert (len(info.blocks), info.check) == (1, xz.CHECK_CRC32)
    cpio = lzma.decompress(wrapped)
    assert wrapped == lzma.compress(cpio, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32, preset=9)


def test_unwrap_returns_last_config_of_concatenation() -> None:
    base = fcos_like_initramfs()
    first = wrap.wrap_ignition(b'{"first": 1}')
    second = wrap.wrap_ignition(b'{"second": 2}')
    assert wrap.unwrap_ignition(first) == b'{"first": 1}'
    assert wrap.unwrap_ignition(base + first + b"\0" * 512 + second) == b'{"second": 2}'


def test_unwrap_without_config_fails() -> None:
    with pytest.raises(wrap.InitrdContentError, match="couldn't find Ignition config in archive"):
        wrap.unwrap_ignition(fcos_like_initramfs(), source="initramfs.img")


def test_upstream_compressed_fixture_globs_and_round_trip() -> None:
    data = fixture_initrd("compressed.img.xz")
    files = read_initrd(data)
    assert len(files) == 10
    assert len(wrap.read_members(data, ["gzip/*"], source="x")) == 2
    assert len(wrap.read_members(data, ["*/hello"], source="x")) == 5
    assert set(files.values()) == {b"HELLO\n", b"WORLD\n"}
    assert {k.split("/")[0] for k in files} == {"uncompressed-1", "gzip", "xz", "zstd", "uncompressed-2"}
    # round trip through our writer
    assert read_initrd(initrd_to_bytes(files)) == files


def test_upstream_redundant_and_padded_names_fixtures() -> None:
    assert read_initrd(fixture_initrd("redundant.img.xz")) == {"data/file": b"third\n"}
    padded = read_initrd(fixture_initrd("padded-names.img.xz"))
    assert padded == {"dir/hello": b"z" * 5000, "dir/world": b"q" * 4500}
    assert read_initrd(initrd_to_bytes(padded)) == padded
    # a wrapped config appended to the fixtures is still found
    both = fixture_initrd("padded-names.img.xz") + wrap.wrap_ignition(b"{}")
    assert wrap.unwrap_ignition(both) == b"{}"


@pytest.mark.parametrize("name", ["traversal-absolute.img", "traversal-relative.img"])
def test_traversal_fixtures_are_refused(name: str, tmp_path: Path) -> None:
    data = fixture_initrd(name)
    with pytest.raises(InputError, match="escapes the archive root") as e:
        wrap.unwrap_ignition(data, source=name)
    assert name in str(e.value)
    with pytest.raises(InputError, match="escapes"):
        wrap.unwrap_network(data, source=name)
    with pytest.raises(InputError, match="escapes"):
        plan_customization(data, CustomizeOptions(), source=name)


def test_directory_entry_order_matches_upstream() -> None:
    members = ["c/f", "c/a/b/d/f", "d", "c/g", "c/a/c/f", "a/b/c/d/e/f"]
    cpio = initrd_cpio({m: b"x" for m in members})
    names = []
    pos = 0
    while True:
        namesize = int(cpio[pos + 94 : pos + 102], 16)
        size = int(cpio[pos + 54 : pos + 62], 16)
        name = cpio[pos + 110 : pos + 110 + namesize - 1].decode()
        if name == "TRAILER!!!":
            break
        names.append(name)
        pos += (110 + namesize + 3) // 4 * 4 + (size + 3) // 4 * 4
    expected = (
        "a a/b a/b/c a/b/c/d a/b/c/d/e a/b/c/d/e/f c c/a c/a/b c/a/b/d c/a/b/d/f c/a/c c/a/c/f c/f c/g d"
    )
    assert names == expected.split()


def test_network_wrap_unwrap_and_extract(tmp_path: Path) -> None:
    wrapped = wrap.wrap_network([("dir1/b.nmconnection", b"[connection]\nid=b\n"), ("a.nmconnection", b"A")])
    assert set(read_initrd(wrapped)) == {
        "etc/coreos-firstboot-network/a.nmconnection",
        "etc/coreos-firstboot-network/b.nmconnection",
    }
    files = wrap.unwrap_network(wrapped)
    assert list(files) == ["a.nmconnection", "b.nmconnection"]
    assert wrap.format_network(files) == (
        b"########## a.nmconnection ##########\nA\n"
        b"########## b.nmconnection ##########\n[connection]\nid=b\n"
    )
    out = wrap.extract_network(files, tmp_path / "net")
    assert [p.read_bytes() for p in out] == [b"A", b"[connection]\nid=b\n"]
    assert (out[0].stat().st_mode & 0o777) == 0o600
    with pytest.raises(CoreosInfraError, match="refusing to overwrite"):
        wrap.extract_network(files, tmp_path / "net")
    with pytest.raises(InputError, match="multiple input files named 'x.nmconnection'"):
        wrap.wrap_network([("a/x.nmconnection", b""), ("b/x.nmconnection", b"")])
    with pytest.raises(wrap.InitrdContentError, match="No embedded network settings"):
        wrap.unwrap_network(wrap.wrap_ignition(b"{}"))


def _gnu_cpio_extract(archive_xz: bytes, dest: Path) -> str:
    dest.mkdir()
    cpio = lzma.decompress(archive_xz)
    listing = subprocess.run(["cpio", "-itv", "--quiet"], input=cpio, capture_output=True, check=True).stdout
    subprocess.run(["cpio", "-idm", "--quiet"], input=cpio, cwd=dest, check=True)
    return listing.decode()


def test_gnu_cpio_reads_our_archives(tmp_path: Path) -> None:
    listing = _gnu_cpio_extract(wrap.wrap_ignition(CONFIG_A), tmp_path / "ign")
    assert (tmp_path / "ign" / "config.ign").read_bytes() == CONFIG_A
    assert listing.startswith("-rw-------")
    wrapped = wrap.wrap_network([("a.nmconnection", b"A\n"), ("b.nmconnection", b"BB\n")])
    listing = _gnu_cpio_extract(wrapped, tmp_path / "net")
    assert (tmp_path / "net/etc/coreos-firstboot-network/b.nmconnection").read_bytes() == b"BB\n"
    assert [line.split()[0] for line in listing.splitlines()] == ["drwxr-xr-x"] * 2 + ["-rw-------"] * 2


# ---------------------------------------------------------------- pxe customize


def test_pxe_customize_dest_device_test_vector_c(tmp_path: Path) -> None:
    base = fcos_like_initramfs()
    src = tmp_path / "initramfs.img"
    src.write_bytes(base)
    out = tmp_path / "custom.img"
    plan = customize_initramfs(src, out, CustomizeOptions(dest_device="/dev/sda"))
    data = out.read_bytes()
    assert data[: len(base)] == base  # original copied verbatim
    assert data[len(base) + 1 : len(base) + 5] == b"7zXZ"  # appended right after, no padding
    appended = data[len(base) :]
    assert hashlib.sha256(initrd_cpio(read_initrd(appended))).hexdigest().startswith("cca35e37")
    config = wrap.unwrap_ignition(data)
    assert config.startswith(b'{"ignition":{"version":"3.3.0"},"storage":{"files":[{"contents":')
    assert b"H4sIAAAAAAAC/0tJLS7RTUkty0xOtVLQBzL0i1MSuQC8WxEgFgAAAA==" in config
    assert b'"path":"/etc/coreos/installer.d/0000-customize.yaml"' in config
    assert plan.notices == (
        "Boot media will automatically install to /dev/sda without confirmation.",
        KARGS_NOTICE,
    )
    # GNU cpio reads the appended archive
    _gnu_cpio_extract(appended, tmp_path / "x")
    assert (tmp_path / "x" / "config.ign").read_bytes() == config


def test_pxe_customize_no_options_appends_trailer_only_archive(tmp_path: Path) -> None:
    base = fcos_like_initramfs()
    plan = plan_customization(base, CustomizeOptions(), source="i")
    assert lzma.decompress(plan.archive) == initrd_cpio({})
    assert plan.notices == ()
    assert not plan.needs_ignition_kargs


def test_pxe_customize_live_ignition_and_dest(tmp_path: Path) -> None:
    require("coreos-installer/customize")
    cust = FIXTURES / "customize"
    opts = CustomizeOptions.from_paths(
        dest_ignition=[cust / "dest-2.ign"],
        dest_device="/dev/vda",
        dest_console=["ttyS0,115200"],
        network_keyfile=[cust / "installer-test.nmconnection"],
        live_ignition=[cust / "live.ign"],
    )
    plan = plan_customization(fcos_like_initramfs(), opts, source="i")
    members = read_initrd(plan.archive)
    assert set(members) == {"config.ign", "etc/coreos-firstboot-network/installer-test.nmconnection"}
    live = json.loads(members["config.ign"])
    paths = [f["path"] for f in live["storage"]["files"]]
    assert paths == ["/etc/coreos/dest.ign", "/etc/coreos/installer.d/0000-customize.yaml"]
    assert len(live["ignition"]["config"]["merge"]) == 1


def test_pxe_customize_refusals(tmp_path: Path) -> None:
    with pytest.raises(CustomizeError, match="not a CoreOS live initramfs image"):
        plan_customization(wrap.wrap_ignition(b"{}"), CustomizeOptions(), source="w")
    with pytest.raises(CustomizeError, match="not a CoreOS live initramfs image"):
        plan_customization(fcos_like_initramfs(stamp=False), CustomizeOptions(), source="w")
    customized = (
        fcos_like_initramfs()
        + plan_customization(
            fcos_like_initramfs(), CustomizeOptions(dest_device="/dev/sda"), source="i"
        ).archive
    )
    with pytest.raises(CustomizeError, match="input is already customized"):
        plan_customization(customized, CustomizeOptions(), source="c")
    networked = fcos_like_initramfs() + wrap.wrap_network([("a.nmconnection", b"A")])
    with pytest.raises(CustomizeError, match="input is already customized"):
        plan_customization(networked, CustomizeOptions(), source="c")
    with pytest.raises(CustomizeError, match="does not support customizing installer configuration"):
        plan_customization(fcos_like_initramfs(None), CustomizeOptions(dest_device="/dev/sda"), source="old")
    with pytest.raises(CustomizeError, match="does not support customizing network settings"):
        opts = CustomizeOptions(network_keyfile=(InputFile("a.nmconnection", b"A"),))
        plan_customization(fcos_like_initramfs({"installer-config": True}), opts, source="old")
    src = tmp_path / "in.img"
    src.write_bytes(fcos_like_initramfs())
    out = tmp_path / "out.img"
    out.write_bytes(b"keep")
    with pytest.raises(CoreosInfraError, match="refusing to overwrite"):
        customize_initramfs(src, out, CustomizeOptions(dest_device="/dev/sda"))
    assert out.read_bytes() == b"keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.img", "out.img"]  # no temp file left


def test_unwrap_of_customized_initramfs(tmp_path: Path) -> None:
    base = fcos_like_initramfs()
    opts = CustomizeOptions(live_ignition=(InputFile("live.ign", b'{"ignition":{"version":"3.3.0"}}'),))
    plan = plan_customization(base, opts, source="i")
    config = wrap.unwrap_ignition(base + plan.archive)
    merged = json.loads(config)["ignition"]["config"]["merge"][0]["source"]
    assert merged.startswith("data:;base64,H4sI")
    assert plan.needs_ignition_kargs


_segment = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789._-", min_size=1, max_size=12).filter(
    lambda s: s not in (".", "..")
)


_BASE = fcos_like_initramfs()


@settings(max_examples=12, deadline=None)
@given(
    files=st.dictionaries(
        st.lists(_segment, min_size=1, max_size=4).map("/".join),
        st.binary(max_size=300),
        min_size=0,
        max_size=8,
    ).filter(lambda d: not any(a != b and b.startswith(a + "/") for a in d for b in d)),
    prefix=st.sampled_from([b"", b"\0\0\0\0"]),
)
def test_wrap_round_trip_property(files: dict[str, bytes], prefix: bytes) -> None:
    """Any member map survives our writer + reader, also after an FCOS-like initramfs."""
    archive = initrd_to_bytes(files)
    assert read_initrd(archive) == files
    assert read_initrd(_BASE + prefix + archive, list(files) or ["none"]) == files
