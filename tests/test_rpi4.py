"""The rpi4 target end to end on a small multi-block FCOS-like aarch64 image, firmware over loopback HTTP."""

from __future__ import annotations

import json
import lzma
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rawdisk_helpers import (
    LoopbackServer,
    compress,
    debugfs_cat,
    debugfs_stat_mode,
    make_disk,
    mtype,
    sh,
)

from coreos_infra import firmware, xzsplice
from coreos_infra.build import BuildRequest, write_meta
from coreos_infra.disk.gpt import verify_gpt
from coreos_infra.errors import InputError
from coreos_infra.fixtures.firmware import firmware_files, make_zip
from coreos_infra.targets import load_builder

IGNITION = (
    b'{"ignition":{"version":"3.3.0"},'
    b'"storage":{"files":[{"path":"/etc/hostname","contents":{"source":"data:,pi"}}]}}'
)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    d = tmp_path_factory.mktemp("rpi4")
    offsets = make_disk(d / "base.raw", arch="aarch64", esp_mb=32, boot_mb=64, root_mb=24)
    compress(d / "base.raw", d / "base.raw.xz", block_mb=8)
    www = d / "www"
    (www / "v1.50").mkdir(parents=True)
    (www / "v1.50" / "RPi4_UEFI_Firmware_v1.50.zip").write_bytes(make_zip(firmware_files()))
    (www / "evil").mkdir()
    (www / "evil" / "fw.zip").write_bytes(make_zip({**firmware_files(), "../../../tmp/evil": b"x"}))
    good = make_zip(firmware_files())
    (www / "evil" / "corrupt.zip").write_bytes(good[:-200])
    srv = LoopbackServer(www)
    yield {"dir": d, "offsets": offsets, "server": srv}
    srv.close()


def _req(env: dict[str, Any], tmp: Path, **options: Any) -> BuildRequest:
    opts = {
        "firmware": {"version": "v1.50", "url": f"{env['server'].url}/v1.50/RPi4_UEFI_Firmware_v1.50.zip"},
        "firmware_lock": str(tmp / "firmware.lock"),
        "xz_preset": 1,
        **options,
    }
    return BuildRequest(
        target="lab-rpi4",
        kind="rpi4",
        arch="aarch64",
        ignition=IGNITION,
        base={"disk": env["dir"] / "base.raw.xz"},
        base_release="40.20240101.3.0",
        build_id="b1",
        out_dir=tmp / "out",
        cache_dir=tmp / "cache",
        options=opts,
        name="lab-dns1-rpi4",
    )


def _unpack(xzf: Path, dest: Path) -> Path:
    xzsplice.decompress_to_sparse(xzf, dest)
    return dest


def test_rpi4_build(env: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    req = _req(
        env,
        tmp_path,
        ram_limit_3gb=False,
        console=["ttyAMA0,115200"],
        kernel_args={"append": ["rd.debug"], "delete": ["mitigations=auto,nosmt"]},
        config_txt={"gpu_mem": 16},
        network_keyfiles={"eth0.nmconnection": "[connection]\nid=eth0\ntype=ethernet\n"},
    )
    result = load_builder("rpi4")(req)
    out = tmp_path / "out" / "lab-dns1-rpi4.raw.xz"
    assert result.artifacts == [out]
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temporary leftovers
    meta_path = write_meta(req, result)
    meta = json.loads(meta_path.read_text())
    img = meta["image"]
    assert meta["firmware_version"] == "v1.50" and meta["firmware"]["ram_limit_3gb"] == 0
    assert img["size"] == out.stat().st_size and meta["artifacts"][0]["sha256"] == img["sha256"]
    raw = _unpack(out, tmp_path / "out.raw")
    assert img["uncompressed_size"] == raw.stat().st_size
    assert img["uncompressed_sha256"] == sh("sha256sum", raw).stdout.split()[0].decode()
    assert img["xz"]["spliced"] and 0 < len(img["xz"]["reencoded"]) < img["xz"]["blocks"] / 2
    assert img["checks"] == ["sgdisk -v", "fsck.vfat -n EFI-SYSTEM", "e2fsck -fn boot"]
    assert img["ignition_firstboot"] is True and img["bls_entry"] == "ostree-2-fedora-coreos.conf"
    # independent checks on the decompressed output (the whole image this time, root included)
    assert b"No problems found" in sh("sgdisk", "-v", raw).stdout
    off = env["offsets"]
    sh("e2fsck", "-fn", f"{raw}?offset={off['boot']}")
    sh("e2fsck", "-fn", f"{raw}?offset={off['root']}")
    shutil.copyfile(raw, tmp_path / "esp.img")
    # ESP payload
    assert mtype(raw, off["esp"], "/start4.elf") == firmware_files()["start4.elf"]
    assert (
        mtype(raw, off["esp"], "/overlays/miniuart-bt.dtbo") == firmware_files()["overlays/miniuart-bt.dtbo"]
    )
    assert mtype(raw, off["esp"], "/EFI/BOOT/BOOTAA64.EFI").startswith(b"MZ fake shim")  # OS loader kept
    cfg = mtype(raw, off["esp"], "/config.txt").decode()
    assert "armstub=RPI_EFI.fd\n" in cfg and "gpu_mem=16\n" in cfg and "dtoverlay=upstream-pi4\n" in cfg
    assert firmware.get_ram_limit(mtype(raw, off["esp"], "/RPI_EFI.fd")) == 0
    # boot filesystem
    assert debugfs_cat(raw, off["boot"], "/ignition/config.ign") == IGNITION
    assert debugfs_stat_mode(raw, off["boot"], "/ignition/config.ign") == 0o600
    entry = debugfs_cat(raw, off["boot"], "/loader/entries/ostree-2-fedora-coreos.conf").decode()
    options = next(line for line in entry.splitlines() if line.startswith("options "))
    assert "ignition.platform.id=metal" in options and "rd.debug" in options
    assert "console=ttyAMA0,115200n8" in options and "mitigations" not in options
    assert b"id=eth0" in debugfs_cat(raw, off["boot"], "/coreos-firstboot-network/eth0.nmconnection")
    # unchanged regions are byte-identical to the base (root partition, backup GPT)
    base = lzma.decompress((env["dir"] / "base.raw.xz").read_bytes())
    data = raw.read_bytes()
    assert data[off["root"] :] == base[off["root"] :]
    assert verify_gpt(raw).disk_guid == verify_gpt(env["dir"] / "base.raw").disk_guid
    # ... and the spliced build gives the same bytes as a full round trip
    req2 = _req(
        env,
        tmp_path / "rt",
        ram_limit_3gb=False,
        console=["ttyAMA0,115200"],
        kernel_args={"append": ["rd.debug"], "delete": ["mitigations=auto,nosmt"]},
        config_txt={"gpu_mem": 16},
        splice=False,
        network_keyfiles={"eth0.nmconnection": "[connection]\nid=eth0\ntype=ethernet\n"},
    )
    r2 = load_builder("rpi4")(req2)
    assert r2.meta["image"]["xz"]["spliced"] is False
    assert r2.meta["image"]["uncompressed_sha256"] == img["uncompressed_sha256"]
    assert len(xzsplice.read_layout(r2.artifacts[0]).blocks) >= 1  # type: ignore[union-attr]


def test_rpi4_refuses_zip_slip_and_corrupt(env: dict[str, Any], tmp_path: Path) -> None:
    for name, message in (("fw.zip", "escapes the target directory"), ("corrupt.zip", "not a valid zip")):
        req = _req(env, tmp_path, firmware={"version": "v1.50", "url": f"{env['server'].url}/evil/{name}"})
        with pytest.raises(firmware.FirmwareError, match=message):
            load_builder("rpi4")(req)
        assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())
    assert not Path("/tmp/evil").exists()


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"firmware": {"version": 1.5}}, "options.firmware.version"),
        ({"firmware": {"sha256": "abc"}}, "options.firmware.sha256"),
        ({"firmware": {"mirror": "x"}}, "options.firmware.mirror"),
        ({"ram_limit_3gb": "no"}, "options.ram_limit_3gb"),
        ({"config_txt": {"armstub": "u-boot.bin"}}, "options.config_txt.armstub"),
        ({"config_txt": 5}, "options.config_txt"),
        ({"kernel_args": {"append": "quiet"}}, "options.kernel_args.append"),
        ({"kernel_args": {"delete": ["ignition.platform.id=metal"]}}, "options.kernel_args"),
        ({"console": ["ttyS0,fast"]}, "options.console[0]"),
        ({"network_keyfiles": {"eth0.conf": "[connection]\n"}}, "options.network_keyfiles.eth0.conf"),
        ({"network_keyfiles": ["relative.nmconnection"]}, "options.network_keyfiles[0]"),
        ({"xz_preset": 12}, "options.xz_preset"),
        ({"splice": "yes"}, "options.splice"),
        ({"colour": "red"}, "options.colour"),
    ],
)
def test_rpi4_option_errors_name_the_key(
    env: dict[str, Any], tmp_path: Path, options: dict[str, Any], key: str
) -> None:
    req = _req(env, tmp_path, **options)
    with pytest.raises(InputError) as exc:
        load_builder("rpi4")(req)
    assert exc.value.location.path == key, str(exc.value)
    assert "recipe lab-rpi4" in str(exc.value)
    assert not (tmp_path / "out").exists()


def test_rpi4_is_aarch64_only(env: dict[str, Any], tmp_path: Path) -> None:
    req = _req(env, tmp_path)
    req = BuildRequest(**{**req.__dict__, "arch": "x86_64"})
    with pytest.raises(InputError, match="aarch64"):
        load_builder("rpi4")(req)
