"""invoke download from a real S3 server (SeaweedFS `weed mini`): verified, tampered, interrupted."""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import s3server as s3fixtures
from publish_testlib import INVOKE, ROOT, ensure_builds, fake_build, task_env
from s3server import SECRET_KEY, S3Server

from coreos_infra import gpg
from coreos_infra.errors import VerificationError
from coreos_infra.publish.download import download_build, resolve_build
from coreos_infra.publish.index import read_site_index
from coreos_infra.publish.publish import PublishOptions, publish
from coreos_infra.publish.rangefetch import _resume_point, part_path
from coreos_infra.publish.store import open_store

s3server = s3fixtures.s3server
MIB = 1 << 20
BIG = 128 * MIB


@pytest.fixture(scope="module")
def site_key(tmp_path_factory: pytest.TempPathFactory) -> Iterator[gpg.SigningKey]:
    with gpg.throwaway_key(tmp_path_factory.mktemp("key")) as key:
        yield key


@pytest.fixture(scope="module")
def keyfile(site_key: gpg.SigningKey, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("trusted") / "lab.asc"
    path.write_bytes(site_key.public_key())
    return path


@pytest.fixture(scope="module")
def bucket(
    s3server: S3Server, site_key: gpg.SigningKey, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A bucket with the metal and pxe builds, then a big (256 MiB) metal build on top as the latest."""
    builds = ensure_builds(("metal", "pxe"), tmp_path_factory.mktemp("builds"))
    big = tmp_path_factory.mktemp("big")
    fake_build(builds, big, "metal", "d" * 16, date="2030-01-01T00:00:00Z", size=BIG)
    name = s3server.make_bucket()
    with pytest.MonkeyPatch.context() as mp:
        for k in list(os.environ):
            if k.startswith("AWS_"):
                mp.delenv(k)
        for k, v in s3server.env().items():
            mp.setenv(k, v)
        for root in (builds, big):
            publish(PublishOptions(root=ROOT, store=f"s3://{name}/img", build_root=root,
                                   gnupg_home=str(site_key.home), key_id=site_key.fingerprint))  # fmt: skip
        yield name


@pytest.fixture
def env(s3server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    for k in list(os.environ):
        if k.startswith("AWS_"):
            monkeypatch.delenv(k)
    for k, v in s3server.env().items():
        monkeypatch.setenv(k, v)
    return s3server


def _download_task(
    server: S3Server, bucket: str, keyfile: Path, dest: Path, *extra: str
) -> subprocess.Popen[str]:
    argv = [INVOKE, "download", "--site", "lab", "--host", "dns1", "--target", "metal", "--store",
            f"s3://{bucket}/img", "--keyring", str(keyfile), "--dest", str(dest), *extra]  # fmt: skip
    return subprocess.Popen(argv, cwd=ROOT, env=task_env(**server.env()), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip


def test_download_from_s3(env: S3Server, bucket: str, keyfile: Path, tmp_path: Path) -> None:
    store = open_store(f"s3://{bucket}/img")
    got = download_build(
        store, "lab", "dns1", "pxe", dest=tmp_path / "pxe", keyring=keyfile, show_progress=False
    )
    assert got.signed and len(got.files) > 3
    subprocess.run(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=tmp_path / "pxe", check=True)
    assert resolve_build(store, "lab", "dns1", "metal").build_id == "d" * 16  # through latest.json
    index = read_site_index(store, "lab")
    assert index is not None
    older = index["hosts"]["dns1"]["targets"]["metal"]["builds"][1]["build_id"]
    got = download_build(store, "lab", "dns1", "metal", build=older, dest=tmp_path / "m", keyring=keyfile,
                         show_progress=False)  # fmt: skip
    assert got.build.build_id == older != "d" * 16
    subprocess.run(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=tmp_path / "m", check=True)


def test_tampered_object_in_bucket_refused(
    env: S3Server, bucket: str, keyfile: Path, tmp_path: Path
) -> None:
    """Overwritten in place with the same size and even the same sha256 metadata: refused, nothing kept."""
    store = open_store(f"s3://{bucket}/img")
    b = resolve_build(store, "lab", "dns1", "pxe")
    f = next(f for f in b.files if f.kind == "kernel")
    client = env.client()
    key = f"img/{f.key}"
    original = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    evil = bytes([original[0] ^ 0xFF]) + original[1:]
    client.put_object(Bucket=bucket, Key=key, Body=evil, Metadata={"sha256": f.sha256})
    try:
        with pytest.raises(VerificationError, match="SHA-256 mismatch"):
            download_build(
                store, "lab", "dns1", "pxe", dest=tmp_path / "dl", keyring=keyfile, show_progress=False
            )
        assert not (tmp_path / "dl" / f.name).exists() and not part_path(tmp_path / "dl", f).exists()
    finally:
        client.put_object(Bucket=bucket, Key=key, Body=original, Metadata={"sha256": f.sha256})


def test_killed_download_resumes(env: S3Server, bucket: str, keyfile: Path, tmp_path: Path) -> None:
    store = open_store(f"s3://{bucket}/img")
    f = resolve_build(store, "lab", "dns1", "metal").disk_image()
    assert f.size == BIG
    dest = tmp_path / "dl"
    part = part_path(dest, f)
    proc = _download_task(env, bucket, keyfile, dest)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if _resume_point(part, BIG) > 0:  # the journal records a complete prefix (parallel ranges)
            os.killpg(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.002)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the download finished before it could be killed"
    have = _resume_point(part, BIG)
    assert 0 < have < BIG and not (dest / f.name).exists()
    again = _download_task(env, bucket, keyfile, dest)
    out, err = again.communicate(timeout=600)
    assert again.returncode == 0, err
    assert f"resuming at byte {have} " in err and SECRET_KEY not in out + err
    assert str(dest / f.name) in out.splitlines()
    h = hashlib.sha256()
    with open(dest / f.name, "rb") as fh:
        while chunk := fh.read(MIB):
            h.update(chunk)
    assert h.hexdigest() == f.sha256 and not part.exists()


def test_server_killed_mid_download_resumes_in_the_same_run(
    env: S3Server, bucket: str, keyfile: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = open_store(f"s3://{bucket}/img")
    f = resolve_build(store, "lab", "dns1", "metal").disk_image()
    dest = tmp_path / "dl"
    part = part_path(dest, f)
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["got"] = download_build(store, "lab", "dns1", "metal", dest=dest, keyring=keyfile,
                                            names=[f.name], show_progress=False)  # fmt: skip
        except BaseException as e:  # reported below
            outcome["error"] = e

    caplog.set_level(logging.INFO, logger="coreos_infra")
    t = threading.Thread(target=run)
    t.start()
    killed_at = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and t.is_alive():
        if part.exists() and part.stat().st_size >= 8 * MIB:
            env.kill()
            killed_at = part.stat().st_size
            break
        time.sleep(0.002)
    try:
        assert killed_at is not None and killed_at < BIG, (
            "the download finished before the server was killed"
        )
        time.sleep(1.0)
    finally:
        env.start()  # same data directory and ports
    t.join(timeout=600)
    assert "error" not in outcome, outcome.get("error")
    assert "resuming at byte" in caplog.text
    assert hashlib.sha256((dest / f.name).read_bytes()).hexdigest() == f.sha256
