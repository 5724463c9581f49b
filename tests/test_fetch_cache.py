"""The cache re-checks its files on use: a changed blob is re-hashed, a corrupt one fetched again."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fetch_testlib import STREAM, MirrorFixture, MirrorServer, build_mirror, copy_mirror, serve

import coreos_infra.fetch as fetch_module
from coreos_infra import gpg
from coreos_infra.errors import CoreosInfraError
from coreos_infra.fetch import FetchedArtifacts, FetchError, FetchOptions, fetch_artifacts

OPTS = FetchOptions(timeout=5, retries=1, backoff=0.01, max_backoff=0.05)
FMT = "iso"


@pytest.fixture(scope="module")
def base_mirror(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MirrorFixture]:
    work = tmp_path_factory.mktemp("mirror-src")
    with gpg.throwaway_key(tmp_path_factory.mktemp("key")) as key:
        yield build_mirror(work / "mirror", key, work / "files")


@pytest.fixture
def mirror(base_mirror: MirrorFixture, tmp_path: Path) -> MirrorFixture:
    return copy_mirror(base_mirror, tmp_path / "mirror")


@pytest.fixture
def server(mirror: MirrorFixture) -> Iterator[MirrorServer]:
    with serve(mirror.root) as s:
        yield s


def fetch(base_url: str, cache: Path, mirror: MirrorFixture) -> FetchedArtifacts:
    return fetch_artifacts(base_url=base_url, stream=STREAM, arch="x86_64", platform="metal", fmt=FMT,
                           cache_dir=cache, keyring=mirror.public_key, options=OPTS)  # fmt: skip


def flip_one_byte(path: Path, offset: int = 1000) -> None:
    """Corrupt ``path`` in place, then put its mtime back (as a careless tool or bit rot would)."""
    st = path.stat()
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x01]))
    os.chmod(path, st.st_mode)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def file_requests(server: MirrorServer, mirror: MirrorFixture) -> int:
    return sum(1 for r in server.requests if r.path == mirror.url_path("x86_64", "metal", FMT))


def test_corrupt_cached_blob_is_dropped_and_fetched_again(
    mirror: MirrorFixture, server: MirrorServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = tmp_path / "cache"
    first = fetch(server.url, cache, mirror)
    blob = first.files["disk"]
    expected = first.artifacts["disk"].sha256
    assert file_requests(server, mirror) == 1
    flip_one_byte(blob)
    assert sha256_of(blob) != expected
    with caplog.at_level(logging.WARNING, logger="coreos_infra.fetch"):
        again = fetch(server.url, cache, mirror)
    assert file_requests(server, mirror) == 2, "the corrupt blob must be fetched again"
    assert any("corrupt" in r.getMessage() and "fetching it again" in r.getMessage() for r in caplog.records)
    assert again.files["disk"] == blob
    assert sha256_of(blob) == expected == again.artifacts["disk"].sha256
    assert blob.read_bytes() == mirror.contents[("x86_64", "metal", FMT, "disk")]


def test_corrupt_cached_blob_offline_fails_clearly(mirror: MirrorFixture, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = fetch(mirror.root.as_uri(), cache, mirror)
    blob = first.files["disk"]
    flip_one_byte(blob)
    mirror.path_of("x86_64", "metal", FMT).unlink()  # the source is gone: nothing to fetch again from
    with pytest.raises(FetchError, match="not found"):
        fetch(mirror.root.as_uri(), cache, mirror)
    assert not blob.exists(), "a corrupt blob must not stay in the cache"
    assert not blob.with_name(blob.name + ".json").exists()


def test_changed_stamp_with_same_bytes_is_rehashed_not_fetched(
    mirror: MirrorFixture, server: MirrorServer, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    blob = fetch(server.url, cache, mirror).files["disk"]
    record_path = blob.with_name(blob.name + ".json")
    stamp = json.loads(record_path.read_text())["stamp"]
    assert stamp["ino"] == blob.stat().st_ino and stamp["size"] == blob.stat().st_size
    # the same bytes in a new inode (a restore from backup): re-hashed once, the stamp updated
    copy = tmp_path / "copy"
    shutil.copyfile(blob, copy)
    os.replace(copy, blob)
    fetch(server.url, cache, mirror)
    assert file_requests(server, mirror) == 1
    new_stamp = json.loads(record_path.read_text())["stamp"]
    assert new_stamp != stamp and new_stamp["ino"] == blob.stat().st_ino


def test_record_without_stamp_is_rehashed(
    mirror: MirrorFixture, server: MirrorServer, tmp_path: Path
) -> None:
    """A cache written before stamps existed: its blobs are hashed once, then carry a stamp."""
    cache = tmp_path / "cache"
    blob = fetch(server.url, cache, mirror).files["disk"]
    record_path = blob.with_name(blob.name + ".json")
    record = json.loads(record_path.read_text())
    del record["stamp"]
    record_path.write_text(json.dumps(record))
    flip_one_byte(blob)
    fetch(server.url, cache, mirror)
    assert file_requests(server, mirror) == 2
    assert sha256_of(blob) == blob.name
    assert "stamp" in json.loads(record_path.read_text())


def test_stream_verifier_answers_like_verify_detached(tmp_path: Path, base_mirror: MirrorFixture) -> None:
    """gpgv reading the bytes from a pipe, as the download streams them (no second pass over the file)."""
    data = os.urandom(3 << 20)
    path = tmp_path / "f"
    path.write_bytes(data)
    signature = base_mirror.key.sign(path).read_bytes()
    keyring = gpg.build_keyring(tmp_path / "k.gpg", pinned=[], extra=[base_mirror.public_key])
    whole = gpg.verify_detached(path, signature, keyring)
    with gpg.StreamVerifier(signature, keyring, what="f") as v:
        v.update(b"garbage that the download threw away")
        v.restart()  # the server started over
        for i in range(0, len(data), 1 << 20):
            v.update(data[i : i + (1 << 20)])
        assert v.finish() == whole
    with gpg.StreamVerifier(signature, keyring, what="f") as v:
        v.update(data[:-1] + bytes([data[-1] ^ 1]))
        with pytest.raises(gpg.VerificationError, match="BAD signature"):
            v.finish()


def test_cached_blob_signed_by_a_key_no_longer_trusted_takes_the_sources_new_signature(
    mirror: MirrorFixture, tmp_path: Path
) -> None:
    """A mirror re-signs the same bytes with a new key (the fixture mirror does when it is rebuilt):
    the cache entry verified with the old key is checked against the source's current signature."""
    cache = tmp_path / "cache"
    first = fetch(mirror.root.as_uri(), cache, mirror)
    blob = first.files["disk"]
    (tmp_path / "key2").mkdir()
    with gpg.throwaway_key(tmp_path / "key2") as key2:
        for sig in mirror.root.rglob("*.sig"):
            key2.sign(sig.with_suffix(""), dest=sig)
        public2 = tmp_path / "key2.asc"
        public2.write_bytes(key2.public_key())
        resigned = MirrorFixture(mirror.root, key2, public2, mirror.contents)
        again = fetch(mirror.root.as_uri(), cache, resigned)
    assert again.files["disk"] == blob
    assert sha256_of(blob) == first.artifacts["disk"].sha256
    source = mirror.path_of("x86_64", "metal", FMT)
    cached_sig = blob.with_name(blob.name + ".sig").read_bytes()
    assert cached_sig == source.with_name(source.name + ".sig").read_bytes(), (
        "the signature that verified it"
    )


def test_a_new_boot_rehashes_once_and_downloads_are_not_fsynced(
    mirror: MirrorFixture, server: MirrorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Downloads into the cache skip fsync where a boot ID exists, because the stamp carries the boot:
    after a reboot (or a crash that lost unsynced data) each blob is hashed again on first use."""
    from coreos_infra import cache as cache_mod
    from coreos_infra import fsutil

    boot = tmp_path / "boot_id"
    boot.write_text("boot-1\n")
    monkeypatch.setattr(fsutil, "BOOT_ID", boot)
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    hashed: list[Path] = []
    real_hash = cache_mod.sha256_file
    monkeypatch.setattr(cache_mod, "sha256_file", lambda p: (hashed.append(Path(p)), real_hash(p))[1])
    cache = tmp_path / "cache"
    blob = fetch(server.url, cache, mirror).files["disk"]
    downloads_synced = len(synced)
    record_path = blob.with_name(blob.name + ".json")
    assert json.loads(record_path.read_text())["stamp"]["boot"] == "boot-1"
    fetch(server.url, cache, mirror)
    assert hashed == []  # same boot, same stamp: a cache hit costs no hashing
    boot.write_text("boot-2\n")
    fetch(server.url, cache, mirror)
    assert blob in hashed and file_requests(server, mirror) == 1  # re-hashed, not fetched again
    assert json.loads(record_path.read_text())["stamp"]["boot"] == "boot-2"
    # without a boot ID (not Linux), downloads are durable: fsynced before they are renamed into place
    monkeypatch.setattr(fsutil, "BOOT_ID", tmp_path / "none")
    synced.clear()
    fetch(server.url, tmp_path / "cache2", mirror)
    assert len(synced) > downloads_synced


def test_the_download_starts_while_the_keyring_is_built(
    mirror: MirrorFixture, server: MirrorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Building the trusted keyring (three GnuPG calls) overlaps the metadata and the big GET: the server
    sees that GET while the keyring is still being built."""
    seen: list[int] = []
    real = fetch_module.trusted_keyring

    def slow_keyring(*args: Any, **kwargs: Any) -> gpg.Keyring:
        deadline = time.monotonic() + 20
        while not file_requests(server, mirror) and time.monotonic() < deadline:
            time.sleep(0.01)
        seen.append(file_requests(server, mirror))
        return real(*args, **kwargs)

    monkeypatch.setattr(fetch_module, "trusted_keyring", slow_keyring)
    got = fetch(server.url, tmp_path / "cache", mirror)
    assert seen == [1]
    assert sha256_of(got.files["disk"]) == got.artifacts["disk"].sha256
    assert (
        json.loads(got.files["disk"].with_name(got.files["disk"].name + ".json").read_text())["signed_by"]
        == mirror.key.fingerprint
    )


def test_a_broken_keyring_fails_before_any_byte_is_downloaded(
    mirror: MirrorFixture, server: MirrorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    written: list[int] = []

    def broken_keyring(*args: Any, **kwargs: Any) -> gpg.Keyring:
        deadline = time.monotonic() + 20
        while not file_requests(server, mirror) and time.monotonic() < deadline:
            time.sleep(0.01)
        written.extend(p.stat().st_size for p in (cache / "tmp").glob("*.part"))
        raise CoreosInfraError("keys.asc: not an OpenPGP key")

    monkeypatch.setattr(fetch_module, "trusted_keyring", broken_keyring)
    with pytest.raises(CoreosInfraError, match="keys.asc: not an OpenPGP key"):
        fetch(server.url, cache, mirror)
    assert written == [0]  # the download's file existed, empty: its body was not read yet
    assert not list((cache / "tmp").iterdir()) and not list((cache / "sha256").iterdir())
