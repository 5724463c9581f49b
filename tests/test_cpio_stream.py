"""The initrd reader works as a stream: from a file, in pieces, with archive boundaries anywhere."""

from __future__ import annotations

import io
import lzma

import pytest
import zstandard
from hypothesis import given
from hypothesis import strategies as st

from coreos_infra import cpio
from coreos_infra.cpio import CpioError, Entry, gzip_newc, read_archives, read_initrd, write_newc


def _initrd() -> bytes:
    microcode = write_newc([Entry.file("kernel/x86/microcode/GenuineIntel.bin", b"u" * 9)])
    big = [Entry.file(f"usr/lib/m{i}.ko", bytes([i]) * (70_000 + i)) for i in range(40)]
    main = zstandard.ZstdCompressor(level=1).compress(write_newc(big) + b"\0" * 512)
    xz = lzma.compress(write_newc([Entry.file("etc/x.conf", b"x=1\n")]), format=lzma.FORMAT_XZ)
    live = gzip_newc([Entry.file("etc/coreos-live-initramfs", b"40\n")])
    return microcode + b"\0" * 3 + main + xz + b"\0" * 8 + live


@pytest.mark.parametrize("read_size,decode_size", [(1 << 20, 128 << 10), (7, 5), (4096, 1)])
def test_same_entries_whatever_the_piece_sizes(
    monkeypatch: pytest.MonkeyPatch, read_size: int, decode_size: int
) -> None:
    data = _initrd()
    expected = [(e.name, len(e.data)) for e in read_archives(data)]
    monkeypatch.setattr(cpio, "READ_SIZE", read_size)
    monkeypatch.setattr(cpio, "DECODE_SIZE", decode_size)
    got = [(e.name, len(e.data)) for e in read_archives(io.BytesIO(data))]
    assert got == expected
    assert len(got) == 43
    files = read_initrd(io.BytesIO(data), ["etc/*", "usr/lib/m3.ko"])
    assert files == {"etc/x.conf": b"x=1\n", "etc/coreos-live-initramfs": b"40\n",
                     "usr/lib/m3.ko": bytes([3]) * 70_003}  # fmt: skip


def test_unwanted_bodies_are_not_kept() -> None:
    entries = read_archives(io.BytesIO(_initrd()), lambda name, mode: name.startswith("etc/"))
    assert {e.name for e in entries if e.data} == {"etc/x.conf", "etc/coreos-live-initramfs"}


@pytest.mark.parametrize("cut", [10, 200, -30])
def test_truncated_archives_are_errors(cut: int) -> None:
    data = _initrd()
    zst_start = data.index(b"\x28\xb5\x2f\xfd")
    broken = data[: zst_start + cut] if cut > 0 else data[:cut]
    with pytest.raises(CpioError, match="truncated"):
        read_archives(io.BytesIO(broken))


def test_garbage_inside_a_compressed_archive() -> None:
    payload = write_newc([Entry.file("a", b"1")]) + b"\0\0\0\0\x1f\x8bjunk"  # not a cpio archive
    with pytest.raises(CpioError, match="trailing garbage inside compressed archive"):
        read_archives(io.BytesIO(lzma.compress(payload, format=lzma.FORMAT_XZ)))


def _normalized_the_long_way(name: str) -> str:
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if name.startswith("/") or ".." in parts:
        raise CpioError("escapes")
    return "/".join(parts)


@given(st.text(alphabet="a./", max_size=12))
def test_member_names_normalize_as_the_long_way_does(name: str) -> None:
    """The shortcut for names that are already normal gives what splitting every name gives."""
    try:
        expected = _normalized_the_long_way(name)
    except CpioError:
        with pytest.raises(CpioError, match="escapes the archive root"):
            cpio.safe_member_name(name)
    else:
        assert cpio.safe_member_name(name) == expected


def test_header_fields_are_hex_in_either_case_and_nothing_else() -> None:
    entry = write_newc([Entry.file("etc/x.conf", b"x=1\n")])
    upper = entry[:6] + entry[6:110].upper() + entry[110:]  # GNU cpio writes upper-case hex
    assert read_initrd(upper) == {"etc/x.conf": b"x=1\n"}
    blank = entry[:14] + b"0000  a4" + entry[22:]  # blanks inside the mode field (fromhex skips them)
    with pytest.raises(CpioError, match="bad cpio header at offset 0"):
        read_archives(blank)
