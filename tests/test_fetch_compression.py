"""Compressed artifacts must be complete streams with nothing after them (CVE-2021-20319 lesson)."""

from __future__ import annotations

import gzip
import lzma
import tempfile
from pathlib import Path

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from coreos_infra import xz
from coreos_infra.errors import VerificationError
from coreos_infra.fetch import check_compressed, check_xz_framing, compression_of

PIECES = [bytes(range(256)) * 40, b"\0" * 50000, b"coreos" * 3000]
MULTI_BLOCK = xz.compress_pieces(PIECES, preset=1)  # like FCOS's `xz -T`: one stream, several blocks
PAYLOAD = b"".join(PIECES)
DATA = {
    "xz": MULTI_BLOCK,
    "gz": gzip.compress(PAYLOAD),
    "zst": zstandard.ZstdCompressor().compress(PAYLOAD),
}


def _check(data: bytes, kind: str, **kw: object) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"f.{kind}"
        path.write_bytes(data)
        check_compressed(path, name=path.name, **kw)  # type: ignore[arg-type]


def test_complete_streams_pass_and_hash() -> None:
    import hashlib

    expected = hashlib.sha256(PAYLOAD).hexdigest()
    for kind, data in DATA.items():
        _check(data, kind, uncompressed_sha256=expected)
        with pytest.raises(VerificationError, match="uncompressed SHA-256"):
            _check(data, kind, uncompressed_sha256="0" * 64)


@settings(max_examples=40, deadline=None)
@given(kind=st.sampled_from(sorted(DATA)), cut=st.floats(min_value=0.0, max_value=0.9999))
def test_any_truncation_is_rejected(kind: str, cut: float) -> None:
    data = DATA[kind]
    with pytest.raises(VerificationError):
        _check(data[: int(len(data) * cut)], kind)


@settings(max_examples=40, deadline=None)
@given(kind=st.sampled_from(sorted(DATA)), garbage=st.binary(min_size=1, max_size=64))
def test_trailing_garbage_is_rejected(kind: str, garbage: bytes) -> None:
    if kind == "xz" and len(garbage) % 4 == 0 and not any(garbage):
        return  # that is valid xz stream padding
    with pytest.raises(VerificationError):
        _check(DATA[kind] + garbage, kind)


def test_xz_framing_alone_is_cheap_and_strict(tmp_path: Path) -> None:
    path = tmp_path / "big.raw.xz"
    path.write_bytes(MULTI_BLOCK + b"\0" * 4 + lzma.compress(b"second stream", check=lzma.CHECK_CRC64))
    check_xz_framing(path)
    flipped = bytearray(MULTI_BLOCK)
    flipped[len(flipped) // 2] ^= 0xFF  # inside a block: framing intact, data corrupt
    path.write_bytes(bytes(flipped))
    check_xz_framing(path)  # framing does not read block data ...
    with pytest.raises(VerificationError, match="corrupt xz data"):
        check_compressed(path, name=path.name)  # ... the full check does (small file)
    path.write_bytes(b"\0" * 64)
    with pytest.raises(VerificationError, match="not an xz file"):
        check_xz_framing(path)
    path.write_bytes(b"")
    with pytest.raises(VerificationError, match="not an xz file"):
        check_xz_framing(path)
    path.write_bytes(b"\0" * 8 + MULTI_BLOCK)  # padding is only allowed after a stream
    with pytest.raises(VerificationError, match="zero bytes before the first xz stream"):
        check_xz_framing(path)


def test_compression_by_name() -> None:
    assert compression_of("fedora-coreos-41-metal.x86_64.raw.xz") == "xz"
    assert compression_of("x.qcow2.xz") == "xz"
    assert compression_of("x.tar.gz") == "gz"
    assert compression_of("x.zst") == "zst"
    assert compression_of("fedora-coreos-41-live-iso.x86_64.iso") is None
    assert compression_of("fedora-coreos-41-live-initramfs.x86_64.img") is None
