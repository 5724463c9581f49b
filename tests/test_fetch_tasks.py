"""`invoke fetch` and `invoke mirror` end to end, against a signed test mirror on a loopback server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fetch_testlib import RELEASE, STREAM, MirrorFixture, build_mirror, serve

from coreos_infra import gpg

ROOT = Path(__file__).resolve().parent.parent
INVOKE = [sys.executable, "-m", "invoke"]


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MirrorFixture]:
    work = tmp_path_factory.mktemp("tasks-mirror")
    with gpg.throwaway_key(work) as key:
        yield build_mirror(work / "mirror", key, work / "files")


def invoke(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("COREOS_INFRA_STREAM_BASE_URL", None)
    return subprocess.run([*INVOKE, *args], cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)


def test_invoke_fetch_explicit_and_cache_hit(mirror: MirrorFixture, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with serve(mirror.root) as server:
        args = ["fetch", "--format", "pxe", "--stream-base-url", server.url,
                "--keyring", str(mirror.public_key), "--cache-dir", str(cache)]  # fmt: skip
        r = invoke(*args)
        assert r.returncode == 0, r.stderr
        assert f"{STREAM} {RELEASE} x86_64 metal pxe:" in r.stdout
        for role in ("kernel", "initramfs", "rootfs"):
            line = next(line for line in r.stdout.splitlines() if line.strip().startswith(role))
            path = Path(line.split()[1])
            assert path.read_bytes() == mirror.contents[("x86_64", "metal", "pxe", role)]
        server.clear()
        again = invoke(*args, "--release", RELEASE)
        assert again.returncode == 0, again.stderr
        # Pinned: only the release index and release.json are read; the files are cache hits.
        assert [r.path for r in server.requests] == [
            f"/prod/streams/{STREAM}/releases.json",
            f"/prod/streams/{STREAM}/builds/{RELEASE}/release.json",
        ]


def test_invoke_fetch_errors(mirror: MirrorFixture, tmp_path: Path) -> None:
    r = invoke(
        "fetch", "--format", "iso", "--stream-base-url", str(mirror.root), "--cache-dir", str(tmp_path)
    )
    assert r.returncode == 1
    assert "Error:" in r.stderr and "not a trusted key" in r.stderr
    assert "Traceback" not in r.stderr
    r = invoke(
        "fetch", "--format", "vhd.xz", "--stream-base-url", str(mirror.root), "--cache-dir", str(tmp_path)
    )
    assert r.returncode == 1 and "no format 'vhd.xz'" in r.stderr
    r = invoke("fetch", "--target", "no-such-target", "--cache-dir", str(tmp_path))
    assert r.returncode == 1 and "unknown target 'no-such-target'" in r.stderr
    r = invoke("mirror")
    assert r.returncode == 2 and "--dest is required" in r.stderr


def test_invoke_mirror_then_fetch_from_it(mirror: MirrorFixture, tmp_path: Path) -> None:
    dest = tmp_path / "airgap"
    base = ["--stream-base-url", str(mirror.root), "--keyring", str(mirror.public_key), "--cache-dir",
            str(tmp_path / "cache")]  # fmt: skip
    r = invoke("mirror", "--dest", str(dest), "--format", "raw.xz", "--arch", "aarch64", *base)
    assert r.returncode == 0, r.stderr
    r = invoke("mirror", "--dest", str(dest), "--format", "iso", *base)
    assert r.returncode == 0, r.stderr
    doc = json.loads((dest / "streams" / f"{STREAM}.json").read_text())
    assert set(doc["architectures"]) == {"aarch64", "x86_64"}
    assert set(doc["architectures"]["x86_64"]["artifacts"]["metal"]["formats"]) == {"iso"}
    r = invoke("fetch", "--format", "raw.xz", "--arch", "aarch64", "--stream-base-url", dest.as_uri(),
               "--keyring", str(mirror.public_key), "--cache-dir", str(tmp_path / "fresh"))  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "aarch64 metal raw.xz" in r.stdout


def test_help_documents_every_option() -> None:
    for name in ("fetch", "mirror"):
        r = invoke(name, "--help")
        assert r.returncode == 0
        for option in (
            "--stream-base-url",
            "--keyring",
            "--insecure",
            "--release",
            "--target",
            "--cache-dir",
        ):
            assert option in r.stdout
    assert "--dest" in invoke("mirror", "--help").stdout


def test_invoke_fetch_and_mirror_from_recipes(mirror: MirrorFixture, tmp_path: Path) -> None:
    from coreos_infra.fetch import wants_of_recipe
    from coreos_infra.recipes import load_project

    wants = {wants_of_recipe(r) for r in load_project(ROOT).targets.values()}
    assert wants, "the project has target recipes"
    keys = ["--keyring", str(mirror.public_key), "--cache-dir", str(tmp_path / "cache")]
    r = invoke("fetch", "--target", "usb", "--stream-base-url", str(mirror.root), *keys)
    assert r.returncode == 0, r.stderr
    assert f"{STREAM} {RELEASE} x86_64 metal iso:" in r.stdout
    # `invoke mirror` without --target: everything the recipes need.
    dest = tmp_path / "airgap"
    r = invoke("mirror", "--dest", str(dest), "--stream-base-url", str(mirror.root), *keys)
    assert r.returncode == 0, r.stderr
    for want in wants:
        doc = json.loads((dest / "streams" / f"{want.stream}.json").read_text())
        sel = want.selection
        assert sel.fmt in doc["architectures"][sel.arch]["artifacts"][sel.platform]["formats"], want
