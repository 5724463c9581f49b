"""The ISO target builder (``invoke build --target usb|live``) on an upstream fixture ISO."""

from __future__ import annotations

import base64
import dataclasses
import gzip
import json
import lzma
from pathlib import Path
from typing import Any

import pytest
import yaml
from shared_fixtures import corpus, require

from coreos_infra.build import BuildRequest, write_meta
from coreos_infra.errors import CoreosInfraError, InputError
from coreos_infra.live.iso.image import LiveIso
from coreos_infra.targets import iso as iso_target
from coreos_infra.targets import load_builder

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = corpus("coreos-installer/iso") / "embed-areas-2023-07.x86_64.iso.xz"
SITE_CONFIG = (
    b'{"ignition":{"version":"3.4.0"},"storage":{"files":[{"path":"/etc/hostname","contents":'
    b'{"source":"data:,dns1"},"mode":420}]}}'
)


@pytest.fixture(scope="module")
def base_iso(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require("coreos-installer/iso")
    p = tmp_path_factory.mktemp("base") / "fedora-coreos-live.x86_64.iso"
    p.write_bytes(lzma.decompress(FIXTURE.read_bytes()))
    return p


def request(base: Path, out: Path, **options: Any) -> BuildRequest:
    return BuildRequest(
        target="usb", kind="iso", arch="x86_64", ignition=SITE_CONFIG, base={"iso": base},
        base_release="38.20230718.dev.0", build_id="b1", out_dir=out, cache_dir=out / "cache",
        options=options, name="lab-dns1-usb",
    )  # fmt: skip


def resource(res: dict[str, Any]) -> bytes:
    return gzip.decompress(base64.b64decode(res["source"].split(",", 1)[1]))


def test_install_mode(base_iso: Path, tmp_path: Path) -> None:
    pristine = base_iso.read_bytes()
    keyfiles = {"eth0.nmconnection": "[connection]\nid=eth0\n"}
    req = request(base_iso, tmp_path, mode="install", dest_device="/dev/vda",
                  dest_console=["tty0", "ttyS0,115200n8"], console=["ttyS0,115200n8"],
                  dest_karg_append=["quiet"], network_keyfiles=keyfiles)  # fmt: skip
    build = load_builder("iso")
    result = build(req)
    out = tmp_path / "lab-dns1-usb.iso"
    assert result.artifacts == [out] and out.stat().st_size == len(pristine)
    assert base_iso.read_bytes() == pristine  # the cached base is never modified
    with LiveIso(out) as iso:
        files = iso.initrd()
        assert set(files) == {"config.ign", "etc/coreos-firstboot-network/eth0.nmconnection"}
        live = json.loads(files["config.ign"])
        by_path = {f["path"]: resource(f["contents"]) for f in live["storage"]["files"]}
        assert by_path["/etc/coreos/dest.ign"] == (
            b'{"ignition":{"version":"3.4.0"},"storage":{"files":[{"contents":{"compression":null,'
            b'"source":"data:,dns1"},"mode":420,"overwrite":null,"path":"/etc/hostname"}]}}\n'
        )
        installer = yaml.safe_load(by_path["/etc/coreos/installer.d/0000-customize.yaml"])
        assert installer == {
            "ignition-file": "/etc/coreos/dest.ign", "console": ["tty0", "ttyS0,115200n8"],
            "append-karg": ["quiet"], "copy-network": True, "dest-device": "/dev/vda",
        }  # fmt: skip
        assert iso.kargs() == iso.default_kargs() + " console=ttyS0,115200n8"
    meta_path = write_meta(req, result)
    meta = json.loads(meta_path.read_text())
    assert meta["iso"]["mode"] == "install" and meta["iso"]["dest_device"] == "/dev/vda"
    assert meta["artifacts"][0]["name"] == "lab-dns1-usb.iso"
    assert meta["base_release"] == "38.20230718.dev.0" and len(meta["artifacts"][0]["sha256"]) == 64
    # rebuilding replaces the previous output atomically
    build(req)
    assert out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".lab-dns1-usb")]


def test_dest_config_is_site_config(base_iso: Path, tmp_path: Path) -> None:
    iso_target.build(request(base_iso, tmp_path, dest_device="/dev/sda"))
    with LiveIso(tmp_path / "lab-dns1-usb.iso") as iso:
        live = json.loads(iso.initrd()["config.ign"])
    dest = {f["path"]: resource(f["contents"]) for f in live["storage"]["files"]}["/etc/coreos/dest.ign"]
    doc = json.loads(dest)
    assert doc["ignition"]["version"] == "3.4.0"
    assert doc["storage"]["files"][0]["path"] == "/etc/hostname"
    assert doc["storage"]["files"][0]["contents"]["source"] == "data:,dns1"


def test_live_mode(base_iso: Path, tmp_path: Path) -> None:
    req = request(base_iso, tmp_path, mode="live", kernel_args=["systemd.log_level=debug"],
                  live_karg_delete=["mitigations=auto,nosmt"])  # fmt: skip
    req = dataclasses.replace(req, contains_secrets=True)
    result = iso_target.build(req)
    out = result.artifacts[0]
    assert out.stat().st_mode & 0o777 == 0o600  # contains secrets
    with LiveIso(out) as iso:
        assert iso.initrd() == {"config.ign": SITE_CONFIG}
        default = iso.default_kargs()
        assert iso.kargs() == default.replace("mitigations=auto,nosmt ", "") + " systemd.log_level=debug"
    assert result.meta["iso"]["mode"] == "live" and "dest_device" not in result.meta["iso"]


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"mode": "install"}, "dest_device"),
        ({"mode": "sideways"}, "mode"),
        ({"mode": "live", "dest_device": "/dev/sda"}, "dest_device"),
        ({"dest_device": "/dev/sda", "console": ["serial0"]}, "console"),
        ({"dest_device": "/dev/sda", "dest_karg_append": "quiet"}, "dest_karg_append"),
        ({"dest_device": "/dev/sda", "frobnicate": 1}, "frobnicate"),
        ({"dest_device": "/dev/sda", "network_keyfiles": 3}, "network_keyfiles"),
        ({"dest_device": "/dev/sda", "pre_install": ["/nonexistent/hook"]}, "pre_install"),
    ],
)
def test_bad_options(base_iso: Path, tmp_path: Path, options: dict[str, Any], key: str) -> None:
    with pytest.raises(InputError, match=f"options.{key}"):
        iso_target.build(request(base_iso, tmp_path, **options))
    assert not list(tmp_path.glob("*.iso"))


def test_base_must_be_a_coreos_iso(tmp_path: Path) -> None:
    fake = tmp_path / "fake.iso"
    fake.write_bytes(bytes(100000))
    with pytest.raises(CoreosInfraError):
        iso_target.build(request(fake, tmp_path, dest_device="/dev/sda"))
    with pytest.raises(CoreosInfraError, match="lack the live ISO"):
        iso_target.build(request(tmp_path / "missing.iso", tmp_path, dest_device="/dev/sda"))
    assert not list(tmp_path.glob("lab-*"))


@pytest.mark.parametrize("mode", ["install", "live"])
def test_oversized_ignition_names_the_build_and_leaves_no_output_dir(
    base_iso: Path, tmp_path: Path, mode: str
) -> None:
    import random

    data = random.Random(1).randbytes(300_000).hex()  # incompressible: cannot fit 256 KiB
    config = json.dumps(
        {
            "ignition": {"version": "3.4.0"},
            "storage": {"files": [{"path": "/x", "contents": {"source": "data:," + data}}]},
        }
    ).encode()
    out = tmp_path / "build" / "usb" / "lab-dns1-usb"
    out.mkdir(parents=True)  # the pipeline creates it before calling the builder
    options = {"mode": mode, **({"dest_device": "/dev/vda"} if mode == "install" else {})}
    req = dataclasses.replace(request(base_iso, out, **options), ignition=config)
    with pytest.raises(CoreosInfraError) as e:
        load_builder("iso")(req)
    assert str(e.value).startswith(
        f"usb build lab-dns1-usb: the Ignition config ({len(config)} bytes) does not fit"
    )
    assert "too large" in str(e.value)
    assert not out.exists()


def test_iso_with_secret_keyfile_is_private(base_iso: Path, tmp_path: Path) -> None:
    wifi = {"wifi.nmconnection": "[connection]\nid=wifi\ntype=wifi\n[wifi-security]\npsk=hunter22\n"}
    req = request(base_iso, tmp_path, mode="live", network_keyfiles=wifi)
    assert not req.contains_secrets  # the Ignition has none; the keyfile does
    out = load_builder("iso")(req).artifacts[0]
    assert out.stat().st_mode & 0o777 == 0o600
