"""The offline fixture mirror: layout, metadata, signatures, image formats, caching (no VM boots here)."""

from __future__ import annotations

import hashlib
import json
import lzma
import shutil
import struct
import subprocess
import uuid
from pathlib import Path

import pytest

from coreos_infra.cpio import read_archives, read_initrd
from coreos_infra.fixtures import FixtureMirror, ensure_mirror, metal
from coreos_infra.fixtures import elf as elfmod
from coreos_infra.fixtures.iso import KARGS_AREA_SIZE, live_configs
from coreos_infra.fixtures.mirror import RELEASES, xz_compress
from coreos_infra.xz import parse_stream_tail

OFFICIAL = "https://builds.coreos.fedoraproject.org/"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


# ---------------------------------------------------------------- pure units


def test_elf_reader_matches_the_dynamic_section_of_a_host_binary() -> None:
    data = Path("/usr/sbin/useradd").read_bytes()
    assert elfmod.machine(data) == "x86_64"
    assert "libc.so.6" in elfmod.needed(data)
    assert elfmod.interpreter(data) == "/lib64/ld-linux-x86-64.so.2"
    assert elfmod.interpreter(Path("/bin/busybox").read_bytes()) is None  # busybox-static
    with pytest.raises(elfmod.ElfError, match="not an ELF"):
        elfmod.needed(b"#!/bin/sh\n")


def test_karg_area_layout_follows_the_fcos_build() -> None:
    default = "mitigations=auto,nosmt coreos.liveiso=X ignition.firstboot ignition.platform.id=metal"
    cfgs = live_configs(default, "ttyS0,115200n8")
    kargs = json.loads(cfgs.kargs_json)
    assert cfgs.kargs_json.endswith(b"}\n") and kargs["size"] == KARGS_AREA_SIZE == 1139
    assert [f["path"] for f in kargs["files"]] == ["EFI/fedora/grub.cfg", "isolinux/isolinux.cfg"]
    for f in kargs["files"]:
        text = (cfgs.grub_cfg if f["path"].startswith("EFI") else cfgs.isolinux_cfg).decode()
        area = text[f["offset"] : f["offset"] + kargs["size"]]
        assert area == default + "\n" + "#" * (kargs["size"] - len(default) - 1)
        # the area is followed by the marker, whose own "#" is not part of it
        assert text[f["offset"] + kargs["size"] :].startswith("# COREOS_KARG_EMBED_AREA\n")
        assert (f["pad"], f["end"]) == ("#", "\n")
        # the serial console is outside the area: editing kargs cannot silence the console
        assert "console=ttyS0,115200n8 " in text[: f["offset"]]


def test_gpt_writer_output_is_accepted_by_sgdisk(tmp_path: Path) -> None:
    disk = tmp_path / "d.raw"
    size = metal.disk_size_mib("aarch64") * metal.MIB
    primary, backup = metal.gpt_bytes(metal.layout("aarch64"), size, 512, "t")
    with open(disk, "wb") as f:
        f.truncate(size)
        f.write(primary)
        f.seek(size - len(backup))
        f.write(backup)
    out = subprocess.run(
        ["sgdisk", "-v", "-p", str(disk)], capture_output=True, text=True, check=True
    ).stdout
    assert "No problems found" in out
    assert "00000000-0000-4000-A000-000000000001" in out
    for name in ("reserved", "EFI-SYSTEM", "boot", "root"):
        assert name in out
    info = subprocess.run(
        ["sgdisk", "-i", "1", str(disk)], capture_output=True, text=True, check=True
    ).stdout
    assert "8DA63339-0007-60C0-C436-083AC8230908" in info


def test_xz_compress_is_multi_block_and_round_trips(tmp_path: Path) -> None:
    src = tmp_path / "img"
    with open(src, "wb") as f:
        f.truncate(5 * 1024 * 1024)
        f.seek(1024 * 1024 + 17)
        f.write(b"payload" * 1000)
    out = xz_compress(src, tmp_path / "img.xz", block_size=1024 * 1024)
    data = out.read_bytes()
    info = parse_stream_tail(data[-4096:])
    assert len(info.blocks) == 5 and info.check == 4  # CRC64
    assert lzma.decompress(data) == src.read_bytes()


# ---------------------------------------------------------------- the built mirror


def test_stream_metadata_points_at_signed_artifacts_with_real_sums(fixture_mirror: FixtureMirror) -> None:
    m = fixture_mirror
    assert m.base_url.startswith("file://") and m.root.is_dir()
    assert m.keyring.read_bytes()[:1] != b"-" and m.keyring_asc.read_bytes().startswith(b"-----BEGIN PGP")
    for stream, releases in RELEASES.items():
        doc = m.stream_json(stream)
        assert doc["stream"] == stream and doc["metadata"]["last-modified"].endswith("Z")
        seen = set()
        for arch, a in doc["architectures"].items():
            metal_ = a["artifacts"]["metal"]
            assert metal_["release"] == releases[-1]
            for fmt, kinds in metal_["formats"].items():
                for kind, e in kinds.items():
                    seen.add((arch, fmt, kind))
                    assert e["location"].startswith(
                        f"{OFFICIAL}prod/streams/{stream}/builds/{releases[-1]}/{arch}/"
                    )
                    assert e["signature"] == e["location"] + ".sig"
                    path = m.root / e["location"].removeprefix(OFFICIAL)
                    assert path.stat().st_size == e["size"]
                    assert _sha256(path) == e["sha256"]
                    assert ("uncompressed-sha256" in e) == fmt.endswith(".xz")
                    sig = path.with_name(path.name + ".sig")
                    subprocess.run(
                        ["gpgv", "--keyring", str(m.keyring), str(sig), str(path)],
                        check=True,
                        capture_output=True,
                    )
        assert {
            ("x86_64", "iso", "disk"),
            ("x86_64", "raw.xz", "disk"),
            ("aarch64", "raw.xz", "disk"),
            ("x86_64", "4k.raw.xz", "disk"),
            ("x86_64", "pxe", "kernel"),
            ("x86_64", "pxe", "initramfs"),
            ("x86_64", "pxe", "rootfs"),
            ("aarch64", "pxe", "kernel"),
        } <= seen
    iso = m.artifact("stable", "x86_64", "iso")
    assert iso.name == f"fedora-coreos-{m.release}-live-iso.x86_64.iso"


def test_signatures_are_detached_over_the_compressed_file(
    fixture_mirror: FixtureMirror, tmp_path: Path
) -> None:
    xzfile = fixture_mirror.artifact("stable", "aarch64", "raw.xz")
    tampered = tmp_path / xzfile.name
    shutil.copyfile(xzfile, tampered)
    with open(tampered, "ab") as f:
        f.write(b"\0")
    sig = xzfile.with_name(xzfile.name + ".sig")
    r = subprocess.run(
        ["gpgv", "--keyring", str(fixture_mirror.keyring), str(sig), str(tampered)], capture_output=True
    )
    assert r.returncode != 0


def test_release_index_and_release_metadata(fixture_mirror: FixtureMirror) -> None:
    m = fixture_mirror
    index = json.loads((m.root / "prod/streams/stable/releases.json").read_text())
    assert index["stream"] == "stable" and "note" in index
    assert [r["version"] for r in index["releases"]] == list(RELEASES["stable"])
    for r in index["releases"]:
        assert {c["architecture"] for c in r["commits"]} == {"x86_64", "aarch64"}
        rel = json.loads((m.root / r["metadata"].removeprefix(OFFICIAL)).read_text())
        assert rel["release"] == r["version"] and rel["stream"] == "stable"
        disk = rel["architectures"]["x86_64"]["media"]["metal"]["artifacts"]["raw.xz"]["disk"]
        assert (m.root / disk["location"].removeprefix(OFFICIAL)).is_file()
        assert r["version"] in disk["location"]


def test_metal_xz_is_multi_block_and_matches_the_raw_image(fixture_mirror: FixtureMirror) -> None:
    m = fixture_mirror
    for arch in ("x86_64", "aarch64"):
        e = m.artifact_entry("stable", arch, "raw.xz")
        path = m.artifact("stable", arch, "raw.xz")
        with open(path, "rb") as f:
            f.seek(max(0, path.stat().st_size - 65536))
            info = parse_stream_tail(f.read())
        assert len(info.blocks) > 10
        assert {b.uncompressed_size for b in info.blocks[:-1]} == {8 * 1024 * 1024}
        assert e["uncompressed-sha256"] == _sha256(m.metal[arch])
        assert sum(b.uncompressed_size for b in info.blocks) == m.metal[arch].stat().st_size


def test_metal_disk_layout(fixture_mirror: FixtureMirror, tmp_path: Path) -> None:
    for arch, first in (("x86_64", "BIOS-BOOT"), ("aarch64", "reserved")):
        disk = fixture_mirror.metal[arch]
        out = subprocess.run(
            ["sgdisk", "-v", "-p", str(disk)], capture_output=True, text=True, check=True
        ).stdout
        assert "No problems found" in out
        rows = [line.split() for line in out.split("Number")[1].splitlines()[1:] if line.strip()]
        names = [row[-1] for row in rows]
        assert names == [first, "EFI-SYSTEM", "boot", "root"]
        boot = f"{disk}?offset={(2 + metal.ESP_MIB) * metal.MIB}"
        sb = subprocess.run(["dumpe2fs", "-h", boot], capture_output=True, text=True, check=True).stdout
        assert "Filesystem volume name:   boot" in sb and metal.BOOT_UUID in sb
        bls = subprocess.run(
            ["debugfs", "-R", f"cat /loader/entries/{metal.BLS_NAME}", boot],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        options = [line for line in bls.splitlines() if line.startswith("options ")]
        assert len(options) == 1 and "$ignition_firstboot" in options[0]
        assert "ignition.platform.id=metal" in options[0]
        listing = subprocess.run(["debugfs", "-R", "ls -l /", boot], capture_output=True, text=True).stdout
        assert "ignition.firstboot" in listing
        esp = f"{disk}@@{2 * metal.MIB}"
        efi = "BOOTX64.EFI" if arch == "x86_64" else "BOOTAA64.EFI"
        mdir = subprocess.run(
            ["mdir", "-i", esp, "::/EFI/BOOT"], capture_output=True, text=True, check=True
        ).stdout
        assert efi.split(".")[0] in mdir
    # the 4Kn image: GPT header in LBA 1 of 4096-byte sectors
    with open(fixture_mirror.metal4k["x86_64"], "rb") as f:
        f.seek(512)
        assert f.read(8) != b"EFI PART"
        f.seek(4096)
        head = f.read(92)
    assert head[:8] == b"EFI PART"
    assert uuid.UUID(bytes_le=head[56:72]) == uuid.UUID(metal.DISK_GUID)
    assert struct.unpack_from("<Q", head, 72)[0] == 2  # partition entries at LBA 2


def test_live_iso_layout(fixture_mirror: FixtureMirror) -> None:
    iso = fixture_mirror.iso
    listing = subprocess.run(
        ["isoinfo", "-i", str(iso), "-l"], capture_output=True, text=True, check=True
    ).stdout
    for name in (
        "IGNINFO.JSO;1",
        "KARGS.JSO;1",
        "FEATURES.JSO;1",
        "IGNITION.IMG;1",
        "ROOTFS.IMG;1",
        "INITRD.IMG;1",
        "VMLINUZ.;1",
        "ISOLINUX.CFG;1",
        "GRUB.CFG;1",
        "EFIBOOT.IMG;1",
    ):
        assert name in listing, name
    lba = subprocess.run(
        ["xorriso", "-indev", str(iso), "-find", "/images/ignition.img", "-exec", "report_lba", "--"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    fields = lba.split("File data lba:")[1].split(",")
    start, size = int(fields[1]) * 2048, int(fields[3])
    with open(iso, "rb") as f:
        f.seek(start)
        assert size == 262144 and f.read(size) == bytes(size)
    # El Torito: a BIOS (isolinux) and a UEFI (FAT image) boot entry
    report = subprocess.run(
        ["xorriso", "-indev", str(iso), "-report_el_torito", "plain"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "BIOS" in report and "UEFI" in report


def test_live_iso_is_understood_by_the_iso_module(fixture_mirror: FixtureMirror) -> None:
    from coreos_infra.live.iso.image import LiveIso

    with LiveIso(fixture_mirror.iso) as iso:
        assert iso.ignition() is None
        vol = f"fedora-coreos-{fixture_mirror.release}"
        default = (
            f"mitigations=auto,nosmt coreos.liveiso={vol} ignition.firstboot ignition.platform.id=metal"
        )
        assert iso.default_kargs() == default
        assert iso.kargs() == default


def test_live_initramfs_and_rootfs_carry_the_fcos_live_stamps(fixture_mirror: FixtureMirror) -> None:
    o = fixture_mirror.os["x86_64"]
    files = read_initrd(o.live_initramfs.read_bytes(), "etc/*")
    rootfs = o.rootfs.read_bytes()
    assert files["etc/coreos-live-initramfs"] == f"{fixture_mirror.release}\n".encode()
    assert json.loads(files["etc/coreos/features.json"])["live-initrd-network"] is True
    want = files["etc/coreos-live-want-rootfs"].decode().splitlines()
    assert (
        want[0] == "stream-hash sha256 2097152" and want[1] == hashlib.sha256(rootfs[: 2 << 20]).hexdigest()
    )
    assert rootfs[124:128] == b"hsqs"
    assert read_initrd(rootfs)["etc/coreos-live-rootfs"] == files["etc/coreos-live-initramfs"]
    # the metal initramfs has no live stamp; both have /init, busybox, the real ignition binary
    metal_names = {e.name for e in read_archives(o.initramfs.read_bytes())}
    assert "etc/coreos-live-initramfs" not in metal_names
    assert {
        "init",
        "bin/busybox",
        "usr/bin/ignition",
        "usr/sbin/useradd",
        "usr/sbin/dropbear",
        "dev/console",
        "sysroot/etc/passwd",
        "lib/modules/fixture.base",
        "lib/modules/fixture.ext4",
    } <= metal_names


def test_second_ensure_mirror_is_a_cache_hit(fixture_mirror: FixtureMirror) -> None:
    cache = fixture_mirror.entry.parent
    again = ensure_mirror(cache)
    assert again.rebuilt is False
    assert again.entry == fixture_mirror.entry
    assert again.fingerprint == fixture_mirror.fingerprint
    assert not list(cache.glob(".mirror-*")), "no half-built entry left behind"


def test_qemu_platform_qcow2_is_the_metal_disk(fixture_mirror: FixtureMirror, tmp_path: Path) -> None:
    m = fixture_mirror
    e = m.artifact_entry("stable", "x86_64", "qcow2.xz", platform="qemu")
    path = m.artifact("stable", "x86_64", "qcow2.xz", platform="qemu")
    assert path.name == f"fedora-coreos-{m.release}-qemu.x86_64.qcow2.xz"
    assert _sha256(path) == e["sha256"] and e["uncompressed-sha256"] == _sha256(m.qcow2["x86_64"])
    subprocess.run(
        ["gpgv", "--keyring", str(m.keyring), f"{path}.sig", str(path)], check=True, capture_output=True
    )
    info = json.loads(
        subprocess.run(
            ["qemu-img", "info", "--output=json", str(m.qcow2["x86_64"])],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert info["format"] == "qcow2" and info["virtual-size"] == m.metal["x86_64"].stat().st_size
    same = subprocess.run(["qemu-img", "compare", "-q", str(m.metal["x86_64"]), str(m.qcow2["x86_64"])])
    assert same.returncode == 0
