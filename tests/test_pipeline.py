"""The whole pipeline on the offline mirror: fetch → render → build → meta.json → boot test."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from coreos_infra import boottest, pipeline, qemu
from coreos_infra.fixtures import FixtureMirror
from coreos_infra.fixtures.firmware import firmware_files, make_zip

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def source(fixture_mirror: FixtureMirror) -> pipeline.Source:
    return pipeline.Source(
        base_url=fixture_mirror.base_url,
        keyring=fixture_mirror.keyring,
        bundled_keys=False,
        fixture_firmware=fixture_mirror.entry.parent,
        fixture=True,
    )


def _plan(tmp: Path, source: pipeline.Source, target: str, host: str | None = "dns1") -> pipeline.BuildPlan:
    return pipeline.BuildPlan(
        root=ROOT, target=target, site="lab", host=host, source=source,
        cache_dir=tmp / "cache", out_root=tmp / "build",
    )  # fmt: skip


def test_build_writes_meta_and_is_up_to_date_on_second_run(tmp_path: Path, source: pipeline.Source) -> None:
    first = pipeline.build(_plan(tmp_path, source, "usb"))
    assert not first.cached
    meta = json.loads(first.meta_path.read_text())
    iso = first.meta_path.parent / meta["artifacts"][0]["name"]
    assert iso.name == "lab-dns1-usb.iso"
    assert meta["artifacts"][0]["sha256"] == hashlib.sha256(iso.read_bytes()).hexdigest()
    assert meta["build_id"] == first.rendered.build_id and len(meta["build_id"]) == 64
    assert meta["base_release"] == first.request.base_release != ""
    assert meta["site"] == "lab" and meta["host"] == "dns1"

    second = pipeline.build(_plan(tmp_path, source, "usb"))
    assert second.cached and second.meta == meta

    # A damaged artifact is not "up to date": it is rebuilt to the same bytes.
    iso.write_bytes(b"garbage")
    third = pipeline.build(_plan(tmp_path, source, "usb"))
    assert not third.cached
    assert hashlib.sha256(iso.read_bytes()).hexdigest() == meta["artifacts"][0]["sha256"]


def test_different_host_different_build_id(tmp_path: Path, source: pipeline.Source) -> None:
    a = pipeline.build(_plan(tmp_path, source, "pxe", "dns1"))
    b = pipeline.build(_plan(tmp_path, source, "pxe", "dns2"))
    assert a.rendered.build_id != b.rendered.build_id
    assert a.meta_path.parent != b.meta_path.parent


@pytest.mark.slow
def test_firmware_archive_is_part_of_the_build_id(tmp_path: Path, fixture_mirror: FixtureMirror) -> None:
    """The same firmware version from another --firmware-url is another build, not "up to date"."""
    zips = {}
    for tag, extra in (("a", {}), ("b", {"Readme.md": b"another build of the same version\n"})):
        d = tmp_path / f"fw-{tag}"
        d.mkdir()
        zips[tag] = make_zip({**firmware_files("v1.50"), **extra})
        (d / "RPi4_UEFI_Firmware_v1.50.zip").write_bytes(zips[tag])

    def source(tag: str) -> pipeline.Source:
        return pipeline.Source(
            base_url=fixture_mirror.base_url, keyring=fixture_mirror.keyring, bundled_keys=False,
            firmware_url=(tmp_path / f"fw-{tag}").as_uri(),
        )  # fmt: skip

    a = pipeline.build(_plan(tmp_path, source("a"), "rpi4"))
    b = pipeline.build(_plan(tmp_path, source("b"), "rpi4"))
    assert not b.cached and a.rendered.build_id != b.rendered.build_id
    assert b.meta["firmware"]["sha256"] == hashlib.sha256(zips["b"]).hexdigest()
    assert b.meta["build_id"] == b.rendered.build_id
    assert pipeline.build(_plan(tmp_path, source("b"), "rpi4")).cached


def _protected(path: Path, top: Path) -> bool:
    """Only the owner can read ``path``: it is 0600, or it sits in an owner-only (0700) directory."""
    return any(p.stat().st_mode & 0o077 == 0 for p in (path, *path.parents) if p.is_relative_to(top))


@pytest.mark.slow
def test_every_target_keeps_secret_bearing_outputs_private(tmp_path: Path, source: pipeline.Source) -> None:
    root = tmp_path / "project"
    shutil.copytree(ROOT / "recipes", root / "recipes")
    shutil.copytree(ROOT / "overlays", root / "overlays", ignore=shutil.ignore_patterns("__pycache__"))
    pw = "$y$j9T$abcdefghijklmnopqrstu.$ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopq"
    site = root / "recipes" / "sites" / "lab.yaml"
    site.write_text(
        site.read_text().replace("  - name: core\n", f"  - name: core\n    password_hash: '{pw}'\n")
    )
    targets = sorted(p.stem for p in (root / "recipes").glob("*.yaml") if p.name != "firmware.lock")
    assert set(targets) >= {"usb", "live", "pxe", "rpi4", "metal"}
    for target in targets:
        plan = pipeline.BuildPlan(
            root=root, target=target, site="lab", host="dns1", source=source,
            cache_dir=tmp_path / "cache", out_root=tmp_path / "build",
        )  # fmt: skip
        outcome = pipeline.build(plan)
        assert outcome.rendered.contains_secrets and outcome.meta["contains_secrets"]
        out = outcome.meta_path.parent
        assert pw not in outcome.meta_path.read_text()
        outputs = [p for p in out.rglob("*") if p.is_file() and p != outcome.meta_path]
        assert outputs, target
        exposed = [str(p.relative_to(out)) for p in outputs if not _protected(p, out)]
        assert exposed == [], f"{target}: readable by others although the config carries secrets"
        assert outcome.meta["artifacts"][0]["name"] in {p.name for p in outputs}
        if target == "pxe":  # the bundle directory and the tarball hold ignition.img
            assert (out / outcome.meta["pxe"]["directory"]).stat().st_mode & 0o777 == 0o700
            assert (out / outcome.meta["pxe"]["tarball"]).stat().st_mode & 0o777 == 0o600


def test_untrusted_mirror_is_refused(tmp_path: Path, fixture_mirror: FixtureMirror) -> None:
    # Only the pinned Fedora keys: the fixture mirror's throwaway key must not verify.
    src = pipeline.Source(base_url=fixture_mirror.base_url)
    with pytest.raises(Exception, match="(?i)key|signature"):
        pipeline.build(_plan(tmp_path, src, "usb"))
    blobs = [p for p in (tmp_path / "cache").rglob("*") if len(p.name) == 64 and p.is_file()]
    assert blobs == []  # nothing unverified entered the cache
    assert not (tmp_path / "build").exists()


def _file_line(path: str, data: bytes, mode: int) -> str:
    digest = hashlib.sha256(data).hexdigest()
    return (
        f"FIXTURE-FILE {path} mode=0{mode:o} uid=0 gid=0 size={len(data)} sha256={digest}\n"
        f"FIXTURE-CONTENT-BEGIN {path}\n{base64.b64encode(data).decode()}\nFIXTURE-CONTENT-END\n"
    )


def test_compare_detects_missing_and_wrong_files() -> None:
    config = {
        "ignition": {"version": "3.4.0"},
        "storage": {
            "files": [
                {"path": "/etc/a", "mode": 0o600, "contents": {"source": "data:,alpha"}},
                {"path": "/etc/b", "contents": {"source": "data:;base64,YmV0YQ=="}},
                {"path": "/etc/c", "contents": {"source": "data:,x"}},
            ],
            "links": [{"path": "/etc/l", "target": "/etc/a"}],
        },
        "systemd": {"units": [{"name": "x.service", "contents": "[Unit]\n"}]},
    }
    expected = boottest.expected_state(config)
    assert (expected.files["/etc/b"].sha256, expected.files["/etc/b"].mode) == (
        hashlib.sha256(b"beta").hexdigest(),
        0o644,
    )
    log = (
        "FIXTURE-BOOT-OK arch=x86_64\nFIXTURE-IGNITION-OK platform=metal\n"
        + _file_line("/etc/a", b"alpha", 0o644)  # wrong mode
        + _file_line("/etc/b", b"BETA", 0o644)  # wrong content
        + _file_line("/etc/systemd/system/x.service", b"[Unit]\n", 0o644)
        + "FIXTURE-LINK /etc/l target=/etc/a\nFIXTURE-DONE\n"
    )  # /etc/c missing
    passed, failed = boottest.compare(expected, qemu.parse_log(log))
    assert "file /etc/a has the configured content" in passed
    assert "file /etc/systemd/system/x.service has the configured content" in passed
    assert "link /etc/l -> /etc/a" in passed
    assert sorted(failed) == sorted(
        [
            "file /etc/a has mode 0600 (got 0644)",
            "file /etc/b has the configured content",
            "file /etc/c exists",
        ]
    )


@pytest.mark.boot
def test_invoke_boot_test_usb_offline(source: pipeline.Source) -> None:
    """`invoke boot-test` end to end: the installer ISO boots (SeaBIOS) and carries the install config."""
    r = subprocess.run(
        [sys.executable, "-m", "invoke", "boot-test", "--target", "usb", "--site", "lab", "--host", "dns2",
         "--offline", "--firmware", "bios"],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert "PASS lab-dns2-usb.iso on x86_64 bios" in r.stdout
    assert " 0 failed" in r.stdout
