"""The initrd reader works as a stream: from a file, in pieces, with archive boundaries anywhere."""

from __future__ import annotations

import io
import lzma

import pytest
import zstandard

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
