"""The ``qemu`` target: the official qemu qcow2.xz with the site's Ignition on its boot partition."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from rawdisk_helpers import debugfs_cat, debugfs_stat_mode

from coreos_infra import boottest, pipeline
from coreos_infra.build import BuildRequest, write_meta
from coreos_infra.disk.gpt import read_gpt
from coreos_infra.errors import InputError
from coreos_infra.fixtures import FixtureMirror
from coreos_infra.recipes import load_project
from coreos_infra.targets import REGISTRY, load_builder

ROOT = Path(__file__).resolve().parent.parent
IGNITION = b'{"ignition":{"version":"3.4.0"},"storage":{"files":[{"path":"/etc/hostname","contents":{"source":"data:,vm1"},"mode":420}]}}'  # noqa: E501
KEYFILE = "[connection]\nid=eth0\ntype=ethernet\n"


def _request(mirror: FixtureMirror, out: Path, **options: Any) -> BuildRequest:
    base = mirror.artifact("stable", "x86_64", "qcow2.xz", platform="qemu")
    return BuildRequest(target="qemu", kind="qemu", arch="x86_64", ignition=IGNITION, base={"disk": base},
                        base_release="40.20240101.3.0", build_id="b1", out_dir=out, cache_dir=out / "cache",
                        options=options, name="lab-vm1-qemu")  # fmt: skip


def _qemu_img(*args: str | Path) -> bytes:
    return subprocess.run(["qemu-img", *map(str, args)], check=True, capture_output=True).stdout


def _raw(qcow2: Path, dest: Path) -> tuple[Path, int]:
    """The qcow2 as a raw file, and the offset of its boot filesystem."""
    _qemu_img("convert", "-f", "qcow2", "-O", "raw", qcow2, dest)
    boot = read_gpt(dest).by_label("boot")
    return dest, boot.offset


def test_the_registry_knows_the_qemu_target() -> None:
    t = REGISTRY["qemu"]
    assert [str(b) for b in t.bases] == ["qemu/qcow2.xz"] and t.arches[0] == "x86_64"
    assert t.output.artifact_name("n") == "n.qcow2" and (t.output.platform, t.output.format) == (
        "qemu",
        "qcow2",
    )
    assert (t.boot.medium, t.boot.disk_format, t.boot.xz) == ("disk", "qcow2", False)
    recipe = load_project(ROOT).target("qemu")
    assert (recipe.kind, recipe.base.platform, recipe.base.format) == ("qemu", "qemu", "qcow2.xz")


def test_build_writes_a_qcow2_with_ignition_kargs_and_keyfiles(
    fixture_mirror: FixtureMirror, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    req = _request(fixture_mirror, tmp_path / "out", console=["ttyS0,115200n8"],
                   kernel_args={"append": ["coreos_infra.test=qemu"], "delete": ["mitigations=auto,nosmt"]},
                   network_keyfiles={"eth0.nmconnection": KEYFILE})  # fmt: skip
    result = load_builder("qemu")(req)
    out = tmp_path / "out" / "lab-vm1-qemu.qcow2"
    assert result.artifacts == [out]
    assert sorted(p.name for p in out.parent.iterdir()) == ["lab-vm1-qemu.qcow2"]  # no leftovers
    info = json.loads(_qemu_img("info", "--output=json", out))
    assert info["format"] == "qcow2" and info["virtual-size"] == result.meta["image"]["virtual_size"]
    assert out.stat().st_mode & 0o777 == 0o644
    raw, boot = _raw(out, tmp_path / "out.raw")
    assert debugfs_cat(raw, boot, "/ignition/config.ign") == IGNITION
    assert debugfs_stat_mode(raw, boot, "/ignition/config.ign") == 0o600
    assert debugfs_cat(raw, boot, "/coreos-firstboot-network/eth0.nmconnection") == KEYFILE.encode()
    entry = result.meta["image"]["bls_entry"]
    options = next(line for line in debugfs_cat(raw, boot, f"/loader/entries/{entry}").decode().splitlines()
                   if line.startswith("options "))  # fmt: skip
    words = options.split()
    assert "coreos_infra.test=qemu" in words and "console=ttyS0,115200n8" in words
    assert "mitigations=auto,nosmt" not in words
    assert sum(w.startswith("ignition.platform.id=") for w in words) == 1  # the image's own, kept
    meta = json.loads(write_meta(req, result).read_text())
    assert meta["artifacts"][0]["sha256"] == meta["image"]["sha256"]
    assert "e2fsck -fn boot" in meta["image"]["checks"]
    # the same inputs give the same bytes
    again = load_builder("qemu")(dataclasses.replace(req, out_dir=tmp_path / "again"))
    assert again.meta["image"]["sha256"] == meta["image"]["sha256"]


def test_secrets_and_compressed_clusters(fixture_mirror: FixtureMirror, tmp_path: Path) -> None:
    req = dataclasses.replace(_request(fixture_mirror, tmp_path, compress=True), contains_secrets=True)
    out = load_builder("qemu")(req).artifacts[0]
    assert out.stat().st_mode & 0o777 == 0o600
    assert json.loads(_qemu_img("info", "--output=json", out))["format"] == "qcow2"
    raw, boot = _raw(out, tmp_path / "c.raw")
    assert debugfs_cat(raw, boot, "/ignition/config.ign") == IGNITION


@pytest.mark.parametrize(
    ("options", "path"),
    [
        ({"xz_preset": 1}, "options.xz_preset"),
        ({"compress": "yes"}, "options.compress"),
        ({"kernel_args": ["quiet"]}, "options.kernel_args"),
        ({"kernel_args": {"delete": ["ignition.platform.id=qemu"]}}, "options.kernel_args"),
    ],
)
def test_bad_options_name_the_key(
    fixture_mirror: FixtureMirror, tmp_path: Path, options: dict[str, Any], path: str
) -> None:
    with pytest.raises(InputError) as e:
        load_builder("qemu")(_request(fixture_mirror, tmp_path / "out", **options))
    assert e.value.location.path == path and "recipe qemu" in str(e.value)
    assert not (tmp_path / "out").exists()


@pytest.mark.boot
def test_qemu_image_boots_under_ovmf(fixture_mirror: FixtureMirror, tmp_path: Path) -> None:
    """recipes/qemu.yaml through the pipeline (offline mirror), booted from the qcow2 under OVMF."""
    source = pipeline.Source(base_url=fixture_mirror.base_url, keyring=fixture_mirror.keyring,
                             bundled_keys=False, fixture=True)  # fmt: skip
    plan = pipeline.BuildPlan(root=ROOT, target="qemu", site="lab", host="dns1", source=source,
                              cache_dir=tmp_path / "cache", out_root=tmp_path / "build")  # fmt: skip
    outcome = pipeline.build(plan)
    assert outcome.meta["artifacts"][0]["name"] == "lab-dns1-qemu.qcow2"
    report = boottest.boot_artifact(
        outcome.meta_path, ignition_bytes=outcome.request.ignition, firmware="uefi"
    )
    assert report.machine == "x86_64 uefi"
    assert report.ok, report.summary()
    assert len(report.passed) > 10  # the lab site's files, units and users, not only "booted"
