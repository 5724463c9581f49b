"""Block-splicing xz rewrite, single-block decoding, sparse decompression."""

from __future__ import annotations

import hashlib
import lzma
import os
import random
import signal
import subprocess
from pathlib import Path

import pytest
from rawdisk_helpers import MIB, compress

from coreos_infra import xz, xzsplice


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """12 MiB: holes, text and random data; 1 MiB xz blocks (12 blocks)."""
    d = tmp_path_factory.mktemp("xz")
    raw = d / "img.raw"
    rnd = random.Random(7)
    with open(raw, "wb") as f:
        f.truncate(12 * MIB)
        for i in range(0, 12, 2):
            f.seek(i * MIB + 4096)
            f.write(rnd.randbytes(50000) + b"coreos " * 30000)
    return raw, compress(raw, d / "img.raw.xz", block_mb=1, preset=1)


def _expected(raw: Path, edits: dict[int, bytes]) -> bytes:
    data = bytearray(raw.read_bytes())
    for off, b in edits.items():
        data[off : off + len(b)] = b
    return bytes(data)


def test_layout(image: tuple[Path, Path]) -> None:
    raw, xzf = image
    layout = xzsplice.read_layout(xzf)
    assert layout is not None
    assert len(layout.blocks) == 12 and layout.uncompressed_size == 12 * MIB
    assert layout.check == xz.CHECK_CRC64
    assert layout.blocks_covering([(MIB - 1, MIB + 1)]) == [0, 1]
    assert layout.blocks_covering([(5 * MIB, 5 * MIB + 10)]) == [5]
    assert b"".join(xzsplice.iter_block(layout, 3)) == raw.read_bytes()[3 * MIB : 4 * MIB]


def test_splice_reencodes_only_changed_blocks(image: tuple[Path, Path], tmp_path: Path) -> None:
    raw, xzf = image
    layout = xzsplice.read_layout(xzf)
    assert layout is not None
    work = tmp_path / "work.raw"
    with open(work, "w+b") as wf:
        fd = wf.fileno()
        os.ftruncate(fd, layout.uncompressed_size)
        hashes = xzsplice.decode_blocks(layout, [0, 2, 3, 11], fd, threads=2)
        assert hashes[2] == hashlib.sha256(raw.read_bytes()[2 * MIB : 3 * MIB]).hexdigest()
        edits = {2 * MIB + 100: b"EDITED", 3 * MIB - 3: b"xyzzy"}  # the second spans blocks 2 and 3
        for off, b in edits.items():
            os.pwrite(fd, b, off)
        changed = [i for i in hashes if xzsplice.hash_range(fd, *layout.raw_range(i)) != hashes[i]]
        assert changed == [2, 3]
        out = tmp_path / "out.raw.xz"
        with open(out, "wb") as f:
            res = xzsplice.splice(layout, fd, changed, f, preset=6, threads=2, decoded=hashes)
    want = _expected(raw, edits)
    assert lzma.decompress(out.read_bytes()) == want
    assert res.reencoded == (2, 3) and len(res.copied) == 10
    assert res.uncompressed_sha256 == hashlib.sha256(want).hexdigest()
    assert res.sha256 == hashlib.sha256(out.read_bytes()).hexdigest() and res.size == out.stat().st_size
    subprocess.run(["xz", "-t", str(out)], check=True)
    new = xzsplice.read_layout(out)
    assert new is not None and len(new.blocks) == 12 and new.check == layout.check
    old_bytes, new_bytes = xzf.read_bytes(), out.read_bytes()
    for i in range(12):
        if i in (2, 3):
            continue
        # copied blocks are byte-identical
        a = old_bytes[layout.offsets[i] : layout.offsets[i] + layout.padded_size(i)]
        b = new_bytes[new.offsets[i] : new.offsets[i] + new.padded_size(i)]
        assert a == b
    # re-encoded blocks record their sizes in the header, as xz -T does (threaded decoding works)
    listing = subprocess.run(
        ["xz", "-lvv", "--robot", str(out)], capture_output=True, text=True, check=True
    ).stdout
    block_lines = [line.split("\t") for line in listing.splitlines() if line.startswith("block")]
    assert all(fields[12] == "cu" for fields in block_lines), block_lines
    assert subprocess.run(["xz", "-dc", "-T2", str(out)], capture_output=True, check=True).stdout == want


def test_corrupt_block_is_detected(image: tuple[Path, Path], tmp_path: Path) -> None:
    _, xzf = image
    layout = xzsplice.read_layout(xzf)
    assert layout is not None
    bad = tmp_path / "bad.xz"
    data = bytearray(xzf.read_bytes())
    data[layout.offsets[4] + 200] ^= 0x55
    bad.write_bytes(bytes(data))
    bad_layout = xzsplice.read_layout(bad)
    assert bad_layout is not None
    with pytest.raises(xzsplice.XzError, match="block 4"):
        b"".join(xzsplice.iter_block(bad_layout, 4))
    # splicing re-verifies every copied block while hashing: corruption never passes silently
    with open(tmp_path / "w", "w+b") as wf, open(tmp_path / "o", "wb") as out:
        os.ftruncate(wf.fileno(), bad_layout.uncompressed_size)
        with pytest.raises(xzsplice.XzError, match="block 4"):
            xzsplice.splice(bad_layout, wf.fileno(), [], out, preset=1)


def test_not_spliceable_inputs(image: tuple[Path, Path], tmp_path: Path) -> None:
    raw, xzf = image
    two = tmp_path / "two.xz"
    two.write_bytes(xzf.read_bytes() + lzma.compress(b"more"))
    assert xzsplice.read_layout(two) is None  # concatenated streams
    padded = tmp_path / "padded.xz"
    padded.write_bytes(xzf.read_bytes() + b"\0" * 4)
    assert xzsplice.read_layout(padded) is None
    with pytest.raises(xzsplice.XzError, match="not an xz file"):
        xzsplice.read_layout(raw)
    single = tmp_path / "single.xz"
    single.write_bytes(lzma.compress(raw.read_bytes(), preset=0))
    lay = xzsplice.read_layout(single)
    assert lay is not None and len(lay.blocks) == 1


def test_decompress_to_sparse_keeps_holes(image: tuple[Path, Path], tmp_path: Path) -> None:
    raw, xzf = image
    for src in (xzf, tmp_path / "single.xz"):
        if src.name == "single.xz":
            src.write_bytes(lzma.compress(raw.read_bytes(), preset=0))
        out = tmp_path / f"{src.name}.raw"
        size = xzsplice.decompress_to_sparse(src, out, threads=2)
        assert size == 12 * MIB
        assert out.read_bytes() == raw.read_bytes()
        # 6 MiB of the 12 MiB are zeros in 1 MiB runs: they must stay holes
        assert out.stat().st_blocks * 512 <= 7 * MIB, out.stat().st_blocks
    truncated = tmp_path / "trunc.xz"
    truncated.write_bytes(xzf.read_bytes()[:-100])
    with pytest.raises(xzsplice.XzError):
        xzsplice.decompress_to_sparse(truncated, tmp_path / "t.raw")


def test_sparse_writer_grains(tmp_path: Path) -> None:
    p = tmp_path / "s"
    with open(p, "wb") as f:
        f.truncate(4 * MIB)
        w = xzsplice.SparseWriter(f.fileno(), 0)
        chunk = bytearray(MIB)
        chunk[5000] = 1
        chunk[MIB - 1] = 2
        w.write(bytes(chunk))
        w.write(bytes(MIB))
        w.write(b"\x03" * 10)
    data = p.read_bytes()
    assert data[5000] == 1 and data[MIB - 1] == 2 and data[2 * MIB : 2 * MIB + 10] == b"\x03" * 10
    assert p.stat().st_blocks * 512 <= 3 * 4096 * 2


def test_big_changed_block_is_split_across_cores(tmp_path: Path) -> None:
    raw = tmp_path / "big.raw"
    rnd = random.Random(3)
    with open(raw, "wb") as f:
        f.truncate(64 * MIB)
        f.seek(10 * MIB)
        f.write(rnd.randbytes(MIB))
    xzf = compress(raw, tmp_path / "big.raw.xz", block_mb=32, preset=1)
    layout = xzsplice.read_layout(xzf)
    assert layout is not None and len(layout.blocks) == 2
    with open(tmp_path / "w", "w+b") as wf, open(tmp_path / "out.xz", "wb") as out:
        fd = wf.fileno()
        os.ftruncate(fd, layout.uncompressed_size)
        xzsplice.decode_blocks(layout, [0], fd)
        os.pwrite(fd, b"NEW", 17 * MIB)
        res = xzsplice.splice(layout, fd, [0], out, preset=1, threads=2, decoded=[0])
    assert res.reencoded == (0,)
    new = xzsplice.read_layout(tmp_path / "out.xz")
    assert new is not None
    # block 0 (32 MiB) was re-encoded as two 16 MiB blocks in parallel; block 1 copied as is
    assert [b.uncompressed_size for b in new.blocks] == [16 * MIB, 16 * MIB, 32 * MIB]
    assert lzma.decompress((tmp_path / "out.xz").read_bytes()) == _expected(raw, {17 * MIB: b"NEW"})


def test_interrupted_splice_leaves_no_block_files(image: tuple[Path, Path], tmp_path: Path) -> None:
    """Ctrl-C while the workers re-encode: KeyboardInterrupt propagates at once and every encoded block
    (also the one of a worker that finishes after the main thread gave up) is removed."""
    _, xzf = image
    layout = xzsplice.read_layout(xzf)
    assert layout is not None
    blocks = tmp_path / "blocks"
    blocks.mkdir()
    sent = []

    def ctrl_c(n: int) -> None:  # called from a worker thread: the signal goes to the main thread
        if not sent:
            sent.append(n)
            os.kill(os.getpid(), signal.SIGINT)

    with open(tmp_path / "work.raw", "w+b") as wf, open(tmp_path / "out.xz", "wb") as out:
        fd = wf.fileno()
        os.ftruncate(fd, layout.uncompressed_size)
        hashes = xzsplice.decode_blocks(layout, range(12), fd, threads=2)
        with pytest.raises(KeyboardInterrupt):
            xzsplice.splice(layout, fd, range(12), out, preset=9, threads=2, decoded=hashes,
                            tmp_dir=blocks, progress=ctrl_c)  # fmt: skip
    assert sent and list(blocks.iterdir()) == []
