"""Boot tests (marker ``boot``): images built by the rpi4 and metal targets from the fixture mirror's metal
``raw.xz`` (multi-block, FCOS GPT layout) boot under QEMU - aarch64 ``virt`` + AAVMF, x86_64 q35 + OVMF,
TCG - and the fixture OS reports that the real Ignition applied the config it found in the ``boot``
partition, and that the kernel arguments we edited in the BLS entry are on its command line.
Also, without booting: the 4Kn (``4k.raw.xz``) fixture image builds and passes the checks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from rawdisk_helpers import LoopbackServer, debugfs_cat

from coreos_infra import xzsplice
from coreos_infra.build import BuildRequest
from coreos_infra.disk.gpt import verify_gpt
from coreos_infra.fixtures.firmware import firmware_files, make_zip
from coreos_infra.targets import load_builder

pytestmark = [pytest.mark.boot, pytest.mark.slow]

TIMEOUT = 420.0


def _ignition(hostname: str) -> bytes:
    return (
        b'{"ignition":{"version":"3.3.0"},"storage":{"files":['
        b'{"path":"/etc/hostname","mode":420,"contents":{"source":"data:,' + hostname.encode() + b'%0A"}},'
        b'{"path":"/etc/coreos-infra-marker","mode":384,"contents":{"source":"data:,from-boot-partition"}}]}}'
    )


@pytest.fixture(scope="module")
def mirror() -> Any:
    from coreos_infra import fixtures

    return fixtures.ensure_mirror()


def _request(base: Path, tmp: Path, kind: str, arch: str, hostname: str, **options: Any) -> BuildRequest:
    return BuildRequest(target=f"boot-{kind}", kind=kind, arch=arch, ignition=_ignition(hostname),
                        base={"disk": base}, base_release="fixture", build_id="boot", out_dir=tmp / "out",
                        cache_dir=tmp / "cache", options=options, name=f"boot-{kind}")  # fmt: skip


def _boot(raw: Path, arch: str, tmp: Path) -> Any:
    from coreos_infra import qemu

    vm = qemu.VmConfig(qemu.Machine(arch, "uefi"), disks=(raw,))
    log = qemu.boot(vm, timeout=TIMEOUT, log_path=tmp / f"serial-{arch}.log")
    return qemu.parse_log(log.text)


def _check_result(result: Any, hostname: str) -> None:
    assert result.booted, result
    assert result.source == "boot", result
    assert result.ignition_ok, result.ignition_log
    assert result.files["/etc/hostname"].text == hostname + "\n"
    assert result.files["/etc/coreos-infra-marker"].text == "from-boot-partition"
    assert result.files["/etc/coreos-infra-marker"].mode == 0o600
    assert result.karg("ignition.platform.id") == "metal"
    assert result.karg("coreos_infra.test") == "edited-bls"  # our BLS edit reached the kernel
    assert result.karg("mitigations") is None  # ... and so did the deletion


def test_rpi4_image_boots_aarch64_uefi(mirror: Any, tmp_path: Path) -> None:
    base = mirror.artifact("stable", "aarch64", "raw.xz")
    layout = xzsplice.read_layout(base)
    assert layout is not None and len(layout.blocks) > 1, "the fixture must be multi-block like FCOS"
    www = tmp_path / "www"
    www.mkdir()
    (www / "RPi4_UEFI_Firmware_v1.50.zip").write_bytes(make_zip(firmware_files()))
    srv = LoopbackServer(www)
    try:
        req = _request(base, tmp_path, "rpi4", "aarch64", "pi-node",
                       firmware={"version": "v1.50", "url": f"{srv.url}/RPi4_UEFI_Firmware_v1.50.zip"},
                       firmware_lock=str(tmp_path / "firmware.lock"), ram_limit_3gb=False,
                       kernel_args={"append": ["coreos_infra.test=edited-bls"],
                                    "delete": ["mitigations=auto,nosmt"]})  # fmt: skip
        res = load_builder("rpi4")(req)
    finally:
        srv.close()
    img = res.meta["image"]
    assert img["xz"]["spliced"] and len(img["xz"]["reencoded"]) < img["xz"]["blocks"]
    assert "fsck.vfat -n EFI-SYSTEM" in img["checks"] and "e2fsck -fn boot" in img["checks"]
    raw = tmp_path / "rpi4.raw"
    xzsplice.decompress_to_sparse(res.artifacts[0], raw)
    assert "RPI_EFI.fd" in res.meta["firmware"]["files"]
    _check_result(_boot(raw, "aarch64", tmp_path), "pi-node")


def test_metal_image_boots_x86_64_uefi(mirror: Any, tmp_path: Path) -> None:
    base = mirror.artifact("stable", "x86_64", "raw.xz")
    kargs = {"append": ["coreos_infra.test=edited-bls"], "delete": ["mitigations=auto,nosmt"]}
    keyfiles = {"eth0.nmconnection": "[connection]\nid=eth0\ntype=ethernet\n"}
    req = _request(
        base, tmp_path, "metal", "x86_64", "metal-node", kernel_args=kargs, network_keyfiles=keyfiles
    )
    res = load_builder("metal")(req)
    assert res.meta["image"]["xz"]["spliced"]
    raw = tmp_path / "metal.raw"
    xzsplice.decompress_to_sparse(res.artifacts[0], raw)
    _check_result(_boot(raw, "x86_64", tmp_path), "metal-node")


def test_metal_4k_image_builds_and_checks(mirror: Any, tmp_path: Path) -> None:
    base = mirror.artifact("stable", "x86_64", "4k.raw.xz")
    req = _request(base, tmp_path, "metal", "x86_64", "metal4k-node", console=["ttyS0,115200"])
    res = load_builder("metal")(req)
    img = res.meta["image"]
    assert img["sector_size"] == 4096
    assert img["checks"][0].startswith("gpt (internal, 4096-byte sectors")
    raw = tmp_path / "metal4k.raw"
    xzsplice.decompress_to_sparse(res.artifacts[0], raw)
    gpt = verify_gpt(raw)
    boot = next(p for p in gpt.partitions if p.label == "boot")
    assert debugfs_cat(raw, boot.offset, "/ignition/config.ign") == _ignition("metal4k-node")
