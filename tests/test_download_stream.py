"""The store root is a ``--stream-base-url``: ``coreos-infra download`` fetches published site images
through ``streams/<site>-<host>.json`` exactly as it fetches official FCOS (file:// and over HTTP)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from publish_testlib import ROOT, ensure_builds, task_env
from test_page import check_page_in_chromium, serve

from coreos_infra import gpg
from coreos_infra.publish import layout
from coreos_infra.publish.publish import PublishOptions, publish


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_builds(("metal", "pxe"), tmp_path_factory.mktemp("builds"))


def _meta(builds: Path, target: str) -> dict:  # type: ignore[type-arg]
    return json.loads(next((builds / target).glob("*/meta.json")).read_text())


def coreos_infra_download(
    base: str, keyring: Path, out: Path, cache: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "coreos_infra", "download", "--stream-base-url", base, "--stream", "lab-dns1",
         "--keyring", str(keyring), "-C", str(out), "--cache-dir", str(cache), *args],
        cwd=ROOT, env=task_env(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def test_store_as_stream_base_url(builds: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    with gpg.throwaway_key(tmp_path) as key:
        publish(PublishOptions(root=ROOT, store=str(store), build_root=builds, gnupg_home=str(key.home),
                               key_id=key.fingerprint))  # fmt: skip
    site_key = store / layout.public_key("lab")
    metal = _meta(builds, "metal")
    disk = next(a for a in metal["artifacts"] if a["name"].endswith(".raw.xz"))
    r = coreos_infra_download(str(store), site_key, tmp_path / "out", tmp_path / "cache",
                              "-a", "x86_64", "-p", "metal", "-f", "raw.xz")  # fmt: skip
    assert r.returncode == 0, r.stderr
    got = Path(r.stdout.split()[-1])
    assert got == tmp_path / "out" / disk["name"]
    assert hashlib.sha256(got.read_bytes()).hexdigest() == disk["sha256"]
    assert (tmp_path / "out" / f"{disk['name']}.sig").is_file()
    # PXE: kernel, initramfs and rootfs as coreos-installer's `-p metal -f pxe` gives them.
    r = coreos_infra_download(f"file://{store}", site_key, tmp_path / "pxe", tmp_path / "cache",
                              "-a", "x86_64", "-p", "pxe", "-f", "pxe")  # fmt: skip
    assert r.returncode == 0, r.stderr
    pxe = {a["name"]: a["sha256"] for a in _meta(builds, "pxe")["artifacts"]}
    printed = [Path(line) for line in r.stdout.splitlines()]
    assert len(printed) >= 2
    for p in printed:
        assert hashlib.sha256(p.read_bytes()).hexdigest() == pxe[p.name]
    # Another key: refused, nothing written.
    with gpg.throwaway_key(tmp_path) as other:
        wrong = tmp_path / "other.asc"
        wrong.write_bytes(other.public_key())
    r = coreos_infra_download(str(store), wrong, tmp_path / "bad", tmp_path / "cache2",
                              "-a", "x86_64", "-p", "metal", "-f", "raw.xz")  # fmt: skip
    assert r.returncode == 1 and "not a trusted key" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "bad" / disk["name"]).exists()


def test_store_served_over_http(builds: Path, tmp_path: Path) -> None:
    """Published with its public URL: stream locations are http://, the page links resolve."""
    store = tmp_path / "store"
    store.mkdir()
    with serve(store) as base, gpg.throwaway_key(tmp_path) as key:
        publish(PublishOptions(root=ROOT, store=str(store), build_root=builds, public_base_url=base,
                               gnupg_home=str(key.home), key_id=key.fingerprint))  # fmt: skip
        trusted = tmp_path / "lab.asc"
        trusted.write_bytes(key.public_key())
        stream = json.loads((store / layout.stream("lab", "dns1")).read_text())
        loc = stream["architectures"]["x86_64"]["artifacts"]["metal"]["formats"]["raw.xz"]["disk"][
            "location"
        ]
        assert loc.startswith(base + "/sites/lab/dns1/metal/")
        r = coreos_infra_download(base, trusted, tmp_path / "out", tmp_path / "cache",
                                  "-a", "x86_64", "-p", "metal", "-f", "raw.xz", "-d")  # fmt: skip
        assert r.returncode == 0, r.stderr
        raw = Path(r.stdout.split()[-1])
        assert raw.name.endswith(".raw")
        assert (
            hashlib.sha256(raw.read_bytes()).hexdigest()
            == _meta(builds, "metal")["image"]["uncompressed_sha256"]
        )
        # The download page publish wrote: every build on it, every link answers 200 (screenshot kept).
        indexes = [json.loads((store / layout.site_index("lab")).read_text())]
    check_page_in_chromium(store, indexes, tmp_path, "download-page-published.png")
