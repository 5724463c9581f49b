"""invoke download from the local directory store: real builds, real publish, real gpg and gpgv.

Faults: a tampered object (alone, or with a matching index entry, or with SHA256SUMS too), a foreign
key, hostile names and keys in the index, unsigned builds, interrupted downloads (resumed from the
``.part`` file), and a ``.part`` file that holds wrong bytes.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from publish_testlib import ensure_builds, fake_build, invoke

from coreos_infra import gpg
from coreos_infra.errors import CoreosInfraError, VerificationError
from coreos_infra.publish import layout, rangefetch
from coreos_infra.publish.download import download_build, resolve_build
from coreos_infra.publish.localstore import LocalStore
from coreos_infra.publish.publish import PublishOptions, publish
from coreos_infra.publish.rangefetch import journal_path, part_path

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_builds(("metal", "pxe"), tmp_path_factory.mktemp("builds"))


@pytest.fixture(scope="module")
def old_builds(builds: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An older metal build, so that the store has a latest and a previous one."""
    root = tmp_path_factory.mktemp("old-builds")
    fake_build(builds, root, "metal", "b" * 16, date="2020-01-01T00:00:00Z", payload=b"old build " * 5000)
    return root


@pytest.fixture(scope="module")
def site_key(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    with gpg.throwaway_key(tmp_path_factory.mktemp("key")) as key:
        yield key


@pytest.fixture(scope="module")
def keyfile(site_key: gpg.SigningKey, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site's public key as a technician gets it: out of band, not from the store."""
    path = tmp_path_factory.mktemp("trusted") / "lab.asc"
    path.write_bytes(site_key.public_key())
    return path


def _publish(builds: Path, store: Path, key: gpg.SigningKey | None, **kw: Any) -> None:
    signing = {"gnupg_home": str(key.home), "key_id": key.fingerprint} if key else {"unsigned": True}
    publish(PublishOptions(root=ROOT, store=str(store), build_root=builds, **signing, **kw))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def published(
    builds: Path, old_builds: Path, site_key: gpg.SigningKey, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    store = tmp_path_factory.mktemp("store")
    _publish(old_builds, store, site_key)
    _publish(builds, store, site_key)
    return store


def _copy_store(published: Path, tmp_path: Path) -> Path:
    """A private copy of the published store for a test that tampers with it."""
    dest = tmp_path / "store"
    shutil.copytree(published, dest)
    return dest


def _meta(builds: Path, target: str) -> dict[str, Any]:
    return json.loads(next((builds / target).glob("*/meta.json")).read_text())


def _replace(path: Path, data: bytes) -> None:
    """Replace a file in a store copy (never write through a hard link to a build)."""
    path.unlink()
    path.write_bytes(data)


def _index(store: Path) -> dict[str, Any]:
    return json.loads((store / layout.site_index("lab")).read_text())


def _write_index(store: Path, index: dict[str, Any]) -> None:
    _replace(store / layout.site_index("lab"), json.dumps(index).encode())


def _metal_entry(index: dict[str, Any], which: int = 0) -> dict[str, Any]:
    return index["hosts"]["dns1"]["targets"]["metal"]["builds"][which]


def test_download_latest_verified(published: Path, builds: Path, keyfile: Path, tmp_path: Path) -> None:
    meta = _meta(builds, "metal")
    store = LocalStore(published)
    got = download_build(
        store,
        "lab",
        "dns1",
        "metal",
        dest=tmp_path / "dl",
        keyring=keyfile,
        verify_each=True,
        show_progress=False,
    )
    assert got.build.build_id == meta["build_id"] and got.signed
    for art in meta["artifacts"]:
        path = got.files[art["name"]]
        assert path == tmp_path / "dl" / art["name"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == art["sha256"]
        assert (tmp_path / "dl" / f"{art['name']}.sig").is_file()
    assert not list((tmp_path / "dl").glob(".*.part"))
    # By hand, with the standard tools, in the download directory.
    subprocess.run(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=tmp_path / "dl", check=True)
    trusted = tmp_path / "lab.gpg"
    subprocess.run(["gpg", "--dearmor", "--output", str(trusted), str(keyfile)], check=True)
    name = meta["artifacts"][0]["name"]
    for sig, data in (("SHA256SUMS.sig", "SHA256SUMS"), (f"{name}.sig", name)):
        subprocess.run(["gpgv", "--keyring", str(trusted), sig, data], cwd=tmp_path / "dl", check=True,
                       capture_output=True)  # fmt: skip
    # The verified meta.json gives the uncompressed SHA-256 flash compares against.
    disk = got.build.disk_image()
    assert disk.name.endswith(".raw.xz")
    assert got.uncompressed_sha256(disk.name) == meta["image"]["uncompressed_sha256"]
    # A second run finds the verified files and downloads nothing.
    again = download_build(LocalStore(published), "lab", "dns1", "metal", dest=tmp_path / "dl",
                           keyring=keyfile, show_progress=False)  # fmt: skip
    assert sorted(again.reused) == sorted(got.files)


def test_older_build_by_id_and_pxe_bundle(
    published: Path, builds: Path, keyfile: Path, tmp_path: Path
) -> None:
    store = LocalStore(published)
    old = download_build(store, "lab", "dns1", "metal", build="b" * 16, dest=tmp_path, keyring=keyfile,
                         per_build_dir=True, show_progress=False)  # fmt: skip
    assert old.dest == tmp_path / "lab" / "dns1" / "metal" / ("b" * 16)
    assert next(iter(old.files.values())).read_bytes() == b"old build " * 5000
    pxe = download_build(
        store, "lab", "dns1", "pxe", dest=tmp_path / "pxe", keyring=keyfile, show_progress=False
    )
    names = {a["name"] for a in _meta(builds, "pxe")["artifacts"]} - {
        "SHA256SUMS"
    }  # the store's own replaces it
    assert set(pxe.files) == names and len(names) > 3
    with pytest.raises(CoreosInfraError, match=r"no build 'c+'.*newest: "):
        resolve_build(store, "lab", "dns1", "metal", "c" * 16)
    with pytest.raises(CoreosInfraError, match="published: metal, pxe"):
        resolve_build(store, "lab", "dns1", "rpi9")
    with pytest.raises(CoreosInfraError, match="has not been published"):
        resolve_build(store, "nosuchsite", "dns1", "metal")
    with pytest.raises(CoreosInfraError, match="no disk image to flash"):
        pxe.build.disk_image()


def _assert_nothing_kept(dest: Path) -> None:
    left = [p.name for p in dest.iterdir()] if dest.exists() else []
    assert not [n for n in left if n.endswith((".raw.xz", ".part"))], left


def test_tampered_object_refused(published: Path, builds: Path, keyfile: Path, tmp_path: Path) -> None:
    store_dir = _copy_store(published, tmp_path)
    entry = _metal_entry(_index(store_dir))
    disk = store_dir / entry["files"][0]["key"]
    data = bytearray(disk.read_bytes())
    data[len(data) // 2] ^= 0x01
    _replace(disk, bytes(data))
    dest = tmp_path / "dl"
    with pytest.raises(VerificationError, match="SHA-256 mismatch"):
        download_build(
            LocalStore(store_dir), "lab", "dns1", "metal", dest=dest, keyring=keyfile, show_progress=False
        )
    _assert_nothing_kept(dest)


def test_tampered_object_and_index_refused(published: Path, keyfile: Path, tmp_path: Path) -> None:
    """The attacker controls the store but not the key: a consistent index does not help."""
    store_dir = _copy_store(published, tmp_path)
    index = _index(store_dir)
    f = _metal_entry(index)["files"][0]
    evil = b"evil image" * 1000
    _replace(store_dir / f["key"], evil)
    f["sha256"], f["size"] = hashlib.sha256(evil).hexdigest(), len(evil)
    _write_index(store_dir, index)
    dest = tmp_path / "dl"
    with pytest.raises(VerificationError, match="SHA256SUMS says"):
        download_build(
            LocalStore(store_dir), "lab", "dns1", "metal", dest=dest, keyring=keyfile, show_progress=False
        )
    # ... nor a rewritten SHA256SUMS: its signature no longer verifies.
    sums = store_dir / _metal_entry(index)["sums"]
    text = sums.read_text().splitlines()
    text = [f"{f['sha256']}  {f['name']}" if line.endswith(f"  {f['name']}") else line for line in text]
    _replace(sums, ("\n".join(text) + "\n").encode())
    with pytest.raises(VerificationError, match="BAD signature"):
        download_build(
            LocalStore(store_dir), "lab", "dns1", "metal", dest=dest, keyring=keyfile, show_progress=False
        )
    _assert_nothing_kept(dest)


def test_store_signed_with_another_key_refused(builds: Path, keyfile: Path, tmp_path: Path) -> None:
    """A store re-published with the attacker's own key (and its public key in keys/) is refused."""
    with gpg.throwaway_key(tmp_path) as other:
        _publish(builds, tmp_path / "store", other)
    assert (tmp_path / "store" / layout.public_key("lab")).is_file()
    with pytest.raises(VerificationError, match="not a trusted key"):
        download_build(LocalStore(tmp_path / "store"), "lab", "dns1", "metal", dest=tmp_path / "dl",
                       keyring=keyfile, show_progress=False)  # fmt: skip
    _assert_nothing_kept(tmp_path / "dl")
    with pytest.raises(VerificationError, match="no trusted keyring"):
        download_build(LocalStore(tmp_path / "store"), "lab", "dns1", "metal", dest=tmp_path / "dl",
                       keyring=None, show_progress=False)  # fmt: skip


@pytest.mark.parametrize(
    "name,key",
    [
        ("../../escape.raw.xz", None),
        ("/etc/escape", None),
        ("sub/dir.raw.xz", None),
        ("ok.raw.xz", "sites/lab/dns1/metal/OTHER/ok.raw.xz"),
        ("ok.raw.xz", "keys/lab.asc"),
    ],
)
def test_hostile_index_names_refused(
    published: Path, keyfile: Path, tmp_path: Path, name: str, key: str | None
) -> None:
    store_dir = _copy_store(published, tmp_path)
    index = _index(store_dir)
    entry = _metal_entry(index)
    f = entry["files"][0]
    f["name"] = name
    f["key"] = key or f"{layout.build_prefix('lab', 'dns1', 'metal', entry['build_id'])}{name}"
    _write_index(store_dir, index)
    dest = tmp_path / "a" / "b" / "dl"
    with pytest.raises(CoreosInfraError, match="refusing"):
        download_build(
            LocalStore(store_dir), "lab", "dns1", "metal", dest=dest, keyring=keyfile, show_progress=False
        )
    assert not (tmp_path / "escape.raw.xz").exists() and not (tmp_path / "a" / "escape.raw.xz").exists()
    assert not dest.exists()  # refused before anything was written


def test_unsigned_build_needs_allow_unsigned(builds: Path, tmp_path: Path) -> None:
    _publish(builds, tmp_path / "store", None)
    store = LocalStore(tmp_path / "store")
    with pytest.raises(VerificationError, match="not signed"):
        download_build(store, "lab", "dns1", "metal", dest=tmp_path / "dl", show_progress=False)
    got = download_build(
        store, "lab", "dns1", "metal", dest=tmp_path / "dl", allow_unsigned=True, show_progress=False
    )
    assert not got.signed and got.files
    meta = _meta(builds, "metal")
    assert (
        hashlib.sha256(got.files[meta["artifacts"][0]["name"]].read_bytes()).hexdigest()
        == meta["artifacts"][0]["sha256"]
    )


def test_resume_from_partial_file(published: Path, builds: Path, keyfile: Path, tmp_path: Path) -> None:
    store = LocalStore(published)
    b = resolve_build(store, "lab", "dns1", "metal")
    f = b.disk_image()
    data = (published / f.key).read_bytes()
    dest = tmp_path / "dl"
    dest.mkdir()
    part = part_path(dest, f)
    part.write_bytes(data[: len(data) // 3])  # what a killed download leaves behind
    got = download_build(store, "lab", "dns1", "metal", dest=dest, keyring=keyfile, show_progress=False,
                         names=[f.name])  # fmt: skip
    assert got.resumed == {f.name: len(data) // 3}
    assert got.files[f.name].read_bytes() == data and not part.exists()


def test_journal_of_another_boot_is_not_trusted(
    published: Path, keyfile: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing is fsynced where a boot ID exists: a journal written in another boot (the partial file
    may have lost unsynced bytes in a crash) makes the download start over; the same boot resumes."""
    from coreos_infra import fsutil

    boot = tmp_path / "boot_id"
    boot.write_text("boot-2\n")
    monkeypatch.setattr(fsutil, "BOOT_ID", boot)
    store = LocalStore(published)
    f = resolve_build(store, "lab", "dns1", "metal").disk_image()
    data = (published / f.key).read_bytes()
    third = len(data) // 3
    for written_in, resumed in (("boot-1", {}), ("boot-2", {f.name: third})):
        dest = tmp_path / written_in
        dest.mkdir()
        part = part_path(dest, f)
        part.write_bytes(data[:third])
        journal_path(part).write_text(f"{third} {written_in}")
        got = download_build(store, "lab", "dns1", "metal", dest=dest, keyring=keyfile, show_progress=False,
                             names=[f.name])  # fmt: skip
        assert got.resumed == resumed and got.files[f.name].read_bytes() == data


@pytest.mark.parametrize("has_boot_id", [True, False])
def test_download_fsyncs_only_without_a_boot_id(
    published: Path, keyfile: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, has_boot_id: bool
) -> None:
    from coreos_infra import fsutil

    boot = tmp_path / "boot_id"
    if has_boot_id:
        boot.write_text("boot-1\n")
    monkeypatch.setattr(fsutil, "BOOT_ID", boot)
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    store = LocalStore(published)
    f = resolve_build(store, "lab", "dns1", "metal").disk_image()
    got = download_build(store, "lab", "dns1", "metal", dest=tmp_path / "dl", keyring=keyfile,
                         show_progress=False, names=[f.name])  # fmt: skip
    assert got.files[f.name].is_file()
    assert bool(synced) is not has_boot_id
    if has_boot_id:
        part = part_path(tmp_path / "dl", f)
        assert not part.exists() and not journal_path(part).exists()


def test_local_store_reads_a_bounded_range(published: Path) -> None:
    store = LocalStore(published)
    f = resolve_build(store, "lab", "dns1", "metal").disk_image()
    data = (published / f.key).read_bytes()
    out = io.BytesIO()
    store.read_to(f.key, out, offset=10, end=1000)
    assert out.getvalue() == data[10:1000]
    out = io.BytesIO()
    store.read_to(f.key, out, offset=len(data) - 5)
    assert out.getvalue() == data[-5:]


class _CountingStore(LocalStore):
    """Records the (offset, end) of every GET; with ``delay``, each waits that long before its first byte."""

    def __init__(self, root: Path, delay: float = 0.0) -> None:
        super().__init__(root)
        self.delay = delay
        self.gets: list[tuple[int, int | None]] = []

    def read_to(self, key: str, out: Any, *, offset: int = 0, end: int | None = None, **kw: Any) -> None:
        self.gets.append((offset, end))
        time.sleep(self.delay)
        super().read_to(key, out, offset=offset, end=end, **kw)


@pytest.mark.parametrize("link", ["fast", "slow"])
def test_big_download_one_stream_or_parallel(
    link: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A fast link keeps one stream, which hashes as it writes; a slow one gets parallel ranges, whose
    bytes the catch-up hasher reads back. Either way the file verifies, and every hashed byte but the
    last few steps is handed back to the kernel (a multi-GiB image recycles a few MiB of page cache)."""
    store_dir = tmp_path / "store"
    store_dir.mkdir()
    size = rangefetch.PARALLEL_MIN + 3 * rangefetch.PIECE + 12345
    data = os.urandom(size)
    (store_dir / "big.raw").write_bytes(data)
    f = rangefetch.FileEntry("big.raw", "big.raw", size, hashlib.sha256(data).hexdigest(), None)
    if link == "fast":
        store = _CountingStore(store_dir)
        monkeypatch.setattr(rangefetch, "ONE_STREAM_RATE", 1.0)  # any first piece is in time
    else:
        store = _CountingStore(store_dir, delay=0.05)
        monkeypatch.setattr(rangefetch, "ONE_STREAM_RATE", float("inf"))  # no stream is fast enough
        monkeypatch.setattr(rangefetch, "RAMP_UP", 0.0)  # (and it cannot end the file before the check)
        monkeypatch.setattr(rangefetch, "SAMPLE", 0.0)
    dropped: list[tuple[int, int]] = []
    real = os.posix_fadvise

    def spy(fd: int, offset: int, length: int, advice: int) -> None:
        if advice == os.POSIX_FADV_DONTNEED:
            dropped.append((offset, offset + length))
        real(fd, offset, length, advice)

    monkeypatch.setattr(os, "posix_fadvise", spy)
    read_back: list[int] = []
    real_preadv = os.preadv

    def preadv_spy(fd: int, buffers: Any, offset: int) -> int:
        n = real_preadv(fd, buffers, offset)
        read_back.append(n)
        return n

    monkeypatch.setattr(os, "preadv", preadv_spy)
    dest = tmp_path / "dl"
    dest.mkdir()
    with caplog.at_level(logging.DEBUG, logger="coreos_infra.publish"):
        got = rangefetch.fetch_file(store, f, dest, signature=None, keyring=None, mode=0o644,
                                    show_progress=False)  # fmt: skip
    assert got.read_bytes() == data
    streams = 1 if link == "fast" else rangefetch.STREAMS
    assert f"big.raw: {streams} stream(s)" in caplog.messages
    if link == "fast":
        assert read_back == []  # every byte hashed from the buffer it was written from
        assert store.gets == [(0, size)]  # one GET, no gap between the pieces
    else:
        assert 0 < sum(read_back) < size  # parallel ranges are read back, the head range's bytes are not
        assert store.gets[0] == (0, size)  # the first stream asked for all, then stopped at its piece
        piece = rangefetch.PIECE
        assert sorted(store.gets[1:]) == [(o, min(o + piece, size)) for o in range(piece, size, piece)]
    covered = 0  # the ranges overlap and move forward: how far from byte 0 they cover without a gap
    for start, end in sorted(dropped):
        assert start <= covered, f"bytes {covered}..{start} never dropped"
        covered = max(covered, end)
    assert covered >= size - rangefetch.DROP_STEP


def test_wrong_bytes_on_a_fast_link_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Bytes hashed as they are written are checked like any others: a mismatch keeps nothing."""
    store_dir = tmp_path / "store"
    store_dir.mkdir()
    data = os.urandom(rangefetch.PARALLEL_MIN + rangefetch.PIECE)
    (store_dir / "big.raw").write_bytes(data)
    wrong = hashlib.sha256(data[:-1] + b"x").hexdigest()
    f = rangefetch.FileEntry("big.raw", "big.raw", len(data), wrong, None)
    monkeypatch.setattr(rangefetch, "ONE_STREAM_RATE", 1.0)
    dest = tmp_path / "dl"
    dest.mkdir()
    with pytest.raises(VerificationError, match="SHA-256 mismatch"):
        rangefetch.fetch_file(LocalStore(store_dir), f, dest, signature=None, keyring=None, mode=0o644,
                              show_progress=False)  # fmt: skip
    assert list(dest.iterdir()) == []


def test_partial_file_with_wrong_bytes_restarts(published: Path, keyfile: Path, tmp_path: Path) -> None:
    store = LocalStore(published)
    f = resolve_build(store, "lab", "dns1", "metal").disk_image()
    data = (published / f.key).read_bytes()
    dest = tmp_path / "dl"
    dest.mkdir()
    part_path(dest, f).write_bytes(os.urandom(len(data) // 2))
    got = download_build(store, "lab", "dns1", "metal", dest=dest, keyring=keyfile, show_progress=False,
                         names=[f.name])  # fmt: skip
    assert got.resumed == {} and got.files[f.name].read_bytes() == data


def test_secret_builds_are_0600(
    builds: Path, site_key: gpg.SigningKey, keyfile: Path, tmp_path: Path
) -> None:
    root = tmp_path / "builds"
    src = next((builds / "metal").glob("*/meta.json")).parent
    dest = root / "metal" / src.name
    shutil.copytree(src, dest, copy_function=os.link)
    meta = json.loads((dest / "meta.json").read_text())
    meta["contains_secrets"] = True
    (dest / "meta.json").unlink()
    (dest / "meta.json").write_text(json.dumps(meta))
    _publish(root, tmp_path / "store", site_key, allow_secrets=True)
    got = download_build(LocalStore(tmp_path / "store"), "lab", "dns1", "metal", dest=tmp_path / "dl",
                         keyring=keyfile, show_progress=False)  # fmt: skip
    for path in got.files.values():
        assert path.stat().st_mode & 0o777 == 0o600, path
    assert (tmp_path / "dl" / "meta.json").stat().st_mode & 0o777 == 0o600


def test_invoke_download(published: Path, builds: Path, keyfile: Path, tmp_path: Path) -> None:
    r = invoke("download", "--site", "lab", "--host", "dns1", "--target", "metal", "--store", str(published),
               "--keyring", str(keyfile), "--dest", str(tmp_path / "dl"))  # fmt: skip
    assert r.returncode == 0, r.stderr
    meta = _meta(builds, "metal")
    printed = [Path(line) for line in r.stdout.splitlines()]
    assert printed == [tmp_path / "dl" / a["name"] for a in meta["artifacts"]]
    assert "verified (signed SHA256SUMS)" in r.stderr
    # Default destination: per build under artifacts/download/ of the project.
    store_dir = _copy_store(published, tmp_path)
    disk = store_dir / _metal_entry(_index(store_dir))["files"][0]["key"]
    _replace(disk, disk.read_bytes()[:-1] + b"\0")
    r = invoke("download", "--site", "lab", "--host", "dns1", "--target", "metal", "--store", str(store_dir),
               "--keyring", str(keyfile), "--dest", str(tmp_path / "bad"))  # fmt: skip
    assert r.returncode == 1
    assert r.stderr.startswith("Error: ") and "SHA-256 mismatch" in r.stderr and "Traceback" not in r.stderr
    _assert_nothing_kept(tmp_path / "bad")
    r = invoke("download", "--site", "lab", "--host", "dns1", "--store", str(published))
    assert r.returncode == 2 and "required" in r.stderr


def test_wrong_file_signature_refused(published: Path, keyfile: Path, tmp_path: Path) -> None:
    """The file's own .sig is checked too (by gpgv fed while downloading), not only SHA256SUMS.sig."""
    store_dir = _copy_store(published, tmp_path)
    entry = _metal_entry(_index(store_dir))
    f = entry["files"][0]
    # A good signature by the trusted key, but over other data (SHA256SUMS).
    _replace(store_dir / f["signature"], (store_dir / entry["sums_signature"]).read_bytes())
    with pytest.raises(VerificationError, match="BAD signature"):
        download_build(LocalStore(store_dir), "lab", "dns1", "metal", dest=tmp_path / "dl", keyring=keyfile,
                       verify_each=True, show_progress=False)  # fmt: skip
    _assert_nothing_kept(tmp_path / "dl")
    # Garbage instead of a signature: gpgv never starts reading; the download still ends cleanly.
    _replace(store_dir / f["signature"], b"not a signature")
    with pytest.raises(VerificationError, match="bad signature"):
        download_build(LocalStore(store_dir), "lab", "dns1", "metal", dest=tmp_path / "dl", keyring=keyfile,
                       verify_each=True, show_progress=False)  # fmt: skip
    _assert_nothing_kept(tmp_path / "dl")
    # Without --verify-each the file's own .sig is not used (the signed SHA256SUMS covers the file).
    got = download_build(LocalStore(store_dir), "lab", "dns1", "metal", dest=tmp_path / "dl2",
                         keyring=keyfile, show_progress=False)  # fmt: skip
    assert got.signed and not list((tmp_path / "dl2").glob("*.raw.xz.sig"))


def test_keyring_defaults(tmp_path: Path) -> None:
    """--keyring, else publish.keyring of the site file, else the local demo key; never the store's copy."""
    from coreos_infra.publish.download import keyring_for
    from coreos_infra.publish.settings import SigningSettings
    from coreos_infra.publish.sign import site_signer

    root = tmp_path / "project"
    (root / "recipes" / "sites").mkdir(parents=True)
    with keyring_for(root, "lab", None) as k:
        assert k is None  # nothing configured, no demo key: download then asks for --keyring
    with keyring_for(root, "lab", tmp_path / "given.asc") as k:
        assert k == tmp_path / "given.asc"
    signer = site_signer(root, "lab", SigningSettings())  # the demo's throwaway key, generated
    try:
        with keyring_for(root, "lab", None) as k:
            assert k is not None and gpg.key_fingerprints(k) == [signer.fingerprint]
    finally:
        signer.close()
    (root / "recipes" / "sites" / "lab.yaml").write_text("publish:\n  keyring: keys/lab.asc\n")
    with keyring_for(root, "lab", None) as k:
        assert k == root / "keys" / "lab.asc"
