"""Every QEMU guest gets entropy from the host through a virtio-rng device (no first-boot stalls in
key generation, e.g. dropbearkey, on a loaded host)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from coreos_infra import qemu
from coreos_infra.fixtures import FixtureMirror
from coreos_infra.qemu import Machine, VmConfig, boot, parse_log

RNG = ["-object", "rng-random,filename=/dev/urandom,id=rng0", "-device", "virtio-rng-pci,rng=rng0"]
VIRTIO_RNG_PCI_ID = "[1af4:1005]"  # vendor Red Hat/virtio, transitional virtio entropy device


def _has_rng_once(argv: list[str]) -> bool:
    starts = [i for i in range(len(argv)) if argv[i : i + len(RNG)] == RNG]
    return len(starts) == 1 and argv.count("rng-random,filename=/dev/urandom,id=rng0") == 1


@pytest.mark.parametrize(
    "vm",
    [
        VmConfig(Machine("x86_64", "uefi"), disks=(Path("/dev/null"),)),
        VmConfig(Machine("x86_64", "bios"), cdrom=Path("/dev/null")),
        VmConfig(Machine("x86_64", "uefi"), cdrom=Path("/dev/null")),
        VmConfig(Machine("x86_64", "bios"), pxe=True, tftp_dir=Path("/tmp"), bootfile="boot.ipxe"),
        VmConfig(Machine("x86_64"), kernel=Path("/dev/null"), append="x", ssh_port=2222),
        VmConfig(Machine("aarch64", "uefi"), disks=(Path("/dev/null"),)),
        VmConfig(Machine("aarch64", "uefi"), cdrom=Path("/dev/null"), net=True),
        VmConfig(Machine("aarch64"), kernel=Path("/dev/null"), append="x"),
    ],
    ids=[
        "x86-uefi-disk",
        "x86-bios-cdrom",
        "x86-uefi-cdrom",
        "x86-pxe",
        "x86-direct",
        "arm-uefi-disk",
        "arm-cdrom-net",
        "arm-direct",
    ],  # fmt: skip
)
def test_every_machine_profile_has_a_virtio_rng(
    vm: VmConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COREOS_INFRA_ACCEL", "tcg")
    argv = qemu.qemu_command(vm, tmp_path)
    assert _has_rng_once(argv), argv


@pytest.mark.boot
@pytest.mark.slow
def test_guest_sees_the_virtio_rng_device(fixture_mirror: FixtureMirror, tmp_path: Path) -> None:
    # The fixture OS does not load virtio_rng (so no /dev/hwrng), but its kernel lists the PCI device.
    vm = fixture_mirror.os["x86_64"].direct_boot(
        tmp_path, ignition=json.dumps({"ignition": {"version": "3.3.0"}}).encode(), live=True
    )
    log = boot(vm, timeout=600.0, log_path=tmp_path / "serial.log")
    assert parse_log(log.text).ok and log.reason == "marker:FIXTURE-DONE"
    assert VIRTIO_RNG_PCI_ID in log.text, "the guest kernel did not enumerate the virtio-rng PCI device"
