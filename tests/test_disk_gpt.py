"""GPT reader: upstream coreos-installer fixtures (512 and 4096-byte sectors) and damaged tables."""

from __future__ import annotations

import lzma
import struct
import uuid
from pathlib import Path

import pytest
from rawdisk_helpers import make_disk
from shared_fixtures import corpus, require

from coreos_infra.disk.gpt import TYPE_ESP, TYPE_LINUX_FS, GptError, read_gpt, verify_gpt

FIX = corpus("coreos-installer")


def _unxz(name: str, tmp_path: Path) -> Path:
    out = tmp_path / name.removesuffix(".xz")
    require("coreos-installer")
    out.write_bytes(lzma.decompress((FIX / name).read_bytes()))
    return out


def test_gpt_512_fixture(tmp_path: Path) -> None:
    gpt = verify_gpt(_unxz("gpt-512.xz", tmp_path))
    assert gpt.sector_size == 512
    assert len(gpt.partitions) == 1
    p = gpt.partitions[0]
    assert (p.first_lba, p.last_lba) == (2048, 20446)
    assert p.offset == 2048 * 512 and p.size == (20446 - 2048 + 1) * 512
    assert p.type_guid == TYPE_LINUX_FS
    assert gpt.backup is not None and gpt.backup.current_lba == 20479


def test_gpt_4096_fixture(tmp_path: Path) -> None:
    gpt = verify_gpt(_unxz("gpt-4096.xz", tmp_path))
    assert gpt.sector_size == 4096
    assert [(p.first_lba, p.last_lba) for p in gpt.partitions] == [(256, 2554)]
    assert gpt.partitions[0].offset == 256 * 4096
    assert gpt.backup is not None and gpt.backup.current_lba == 10 * 1024 * 1024 // 4096 - 1


def test_duplicate_partition_guids_are_a_problem(tmp_path: Path) -> None:
    image = _unxz("gpt-512-duplicate-partition-guids.xz", tmp_path)
    gpt = read_gpt(image)
    assert len(gpt.partitions) == 2
    assert any("share one unique partition GUID" in p for p in gpt.problems)
    with pytest.raises(GptError, match="share one unique"):
        verify_gpt(image)


def test_no_gpt(tmp_path: Path) -> None:
    with pytest.raises(GptError, match="no GPT found"):
        read_gpt(_unxz("empty.xz", tmp_path))


def _corrupt(image: Path, offset: int) -> None:
    with open(image, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0xFF]))


def test_corrupt_primary_header_and_entries(tmp_path: Path) -> None:
    image = _unxz("gpt-512.xz", tmp_path)
    good = image.read_bytes()
    _corrupt(image, 512 + 40)  # first usable LBA field
    with pytest.raises(GptError, match=r"gpt-512: primary GPT header: header CRC32 mismatch"):
        read_gpt(image)
    image.write_bytes(good)
    _corrupt(image, 1024 + 60)  # inside the first entry's name
    with pytest.raises(GptError, match="partition entry array CRC32 mismatch"):
        read_gpt(image)


def test_damaged_backup_is_reported(tmp_path: Path) -> None:
    image = _unxz("gpt-512.xz", tmp_path)
    _corrupt(image, 20479 * 512 + 8)  # backup header
    gpt = read_gpt(image)  # the primary is fine: still readable
    assert gpt.partitions and gpt.problems
    with pytest.raises(GptError, match="backup GPT header"):
        verify_gpt(image)


def test_truncated_image_is_reported(tmp_path: Path) -> None:
    image = _unxz("gpt-512.xz", tmp_path)
    with open(image, "r+b") as f:
        f.truncate(5 * 1024 * 1024)
    with pytest.raises(GptError, match="beyond the end of the image"):
        verify_gpt(image)


def test_fcos_like_layout_lookup(tmp_path: Path) -> None:
    image = tmp_path / "disk.raw"
    offsets = make_disk(image, arch="x86_64", esp_mb=8, boot_mb=16, root_mb=8, random_mb=1)
    gpt = verify_gpt(image)
    assert [p.label for p in gpt.partitions] == ["BIOS-BOOT", "EFI-SYSTEM", "boot", "root"]
    assert gpt.disk_guid == uuid.UUID("00000000-0000-4000-a000-000000000001")
    assert gpt.by_label("boot").offset == offsets["boot"]
    assert [p.number for p in gpt.by_type(TYPE_ESP)] == [2]
    assert gpt.containing(offsets["boot"] + 4096) == gpt.by_label("boot")
    with pytest.raises(GptError, match="no partition labelled 'nope'"):
        gpt.by_label("nope")
    # overlapping partitions are refused even with valid CRCs
    raw = bytearray(image.read_bytes())
    entries_off = 1024
    last = struct.unpack_from("<Q", raw, entries_off + 128 * 1 + 40)[0]
    struct.pack_into("<Q", raw, entries_off + 128 * 2 + 32, last)  # p3 starts where p2 ends
    import zlib

    struct.pack_into("<I", raw, 512 + 88, zlib.crc32(bytes(raw[entries_off : entries_off + 128 * 128])))
    hdr = bytearray(raw[512 : 512 + 92])
    hdr[16:20] = b"\0\0\0\0"
    struct.pack_into("<I", raw, 512 + 16, zlib.crc32(bytes(hdr)))
    bad = tmp_path / "overlap.raw"
    bad.write_bytes(bytes(raw))
    with pytest.raises(GptError, match="overlap"):
        read_gpt(bad)
