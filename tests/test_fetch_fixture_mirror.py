"""Fetch the real fixture-mirror artifacts (``coreos_infra.fixtures.ensure_mirror``) like official ones."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from fetch_testlib import serve

from coreos_infra.errors import VerificationError
from coreos_infra.fetch import FetchedArtifacts, FetchOptions, fetch_artifacts
from coreos_infra.fixtures import FixtureMirror, ensure_mirror

pytestmark = pytest.mark.slow

OPTS = FetchOptions(timeout=30, retries=2, backoff=0.05)


@pytest.fixture(scope="module")
def fixture_mirror() -> FixtureMirror:
    return ensure_mirror()


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def test_fetch_fixture_artifacts_file_and_http(fixture_mirror: FixtureMirror, tmp_path: Path) -> None:
    m = fixture_mirror

    def get(base_url: str, cache: str, fmt: str, release: str | None = None) -> FetchedArtifacts:
        return fetch_artifacts(
            base_url=base_url, stream="stable", arch="x86_64", platform="metal", fmt=fmt, release=release,
            cache_dir=tmp_path / cache, keyring=m.keyring_asc, bundled_keys=False, options=OPTS,
        )  # fmt: skip

    # file:// straight from the mirror directory
    pxe = get(m.base_url, "c1", "pxe")
    assert pxe.release == m.streams["stable"]
    assert set(pxe.files) == {"kernel", "initramfs", "rootfs"}
    for role, path in pxe.files.items():
        assert sha256(path) == sha256(m.artifact("stable", "x86_64", "pxe", role))
    # the same tree over a loopback HTTP server; the ISO and the multi-block raw.xz (deep-checked)
    with serve(m.root) as server:
        raw_xz = "/" + str(m.artifact("stable", "x86_64", "raw.xz").relative_to(m.root))
        server.behaviour.drop_after[raw_xz] = 5 << 20  # the connection drops after 5 MiB: resume
        for fmt in ("iso", "raw.xz"):
            got = get(server.url, "c2", fmt)
            assert sha256(got.files["disk"]) == sha256(m.artifact("stable", "x86_64", fmt))
            assert got.artifacts["disk"].location.startswith(server.url + "/prod/streams/stable/builds/")
            assert server.requests_for(got.artifacts["disk"].name + ".sig")
        assert [r.headers.get("Range") for r in server.requests_for(raw_xz)] == [None, f"bytes={5 << 20}-"]
        # a pinned older release comes through the release index
        old = m.releases["stable"][0]
        pinned = get(server.url, "c2", "pxe", release=old)
        assert pinned.release == old
        assert server.requests_for("/prod/streams/stable/releases.json")
        # Only the throwaway key signed the fixtures: the shipped Fedora keys alone reject them.
        with pytest.raises(VerificationError, match="not a trusted key"):
            fetch_artifacts(
                base_url=server.url, stream="stable", arch="aarch64", platform="metal", fmt="raw.xz",
                cache_dir=tmp_path / "c3", options=OPTS,
            )  # fmt: skip
