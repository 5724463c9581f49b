"""Broken artifacts fail quickly and say why (each well under 60 s under TCG): a bad Ignition config, a
kernel that panics, a kernel booted without its initrd, a blank disk under SeaBIOS and OVMF (the firmware's
"no bootable device" reaches the serial console), and media of the wrong architecture or sector size
(refused before QEMU starts)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from coreos_infra.fixtures import FixtureMirror
from coreos_infra.qemu import BootError, Machine, VmConfig, boot, parse_log

FAST = 60.0  # seconds: every broken artifact must be reported sooner than this under TCG


def _fails(vm: VmConfig, log: Path) -> tuple[BootError, float]:
    start = time.monotonic()
    with pytest.raises(BootError) as err:
        boot(vm, timeout=300, log_path=log)
    return err.value, time.monotonic() - start


@pytest.mark.boot
@pytest.mark.slow
def test_bad_ignition_config_fails_with_ignitions_reason(
    fixture_mirror: FixtureMirror, tmp_path: Path
) -> None:
    bad = b'{"ignition":{"version":"3.3.0"},"storage":{"files":[{"path":"relative/path"}]}}'
    # aarch64 (the fastest guest under TCG), -platform file (fixture.ignition=file) instead of metal
    vm = fixture_mirror.os["aarch64"].direct_boot(tmp_path, ignition=bad, kargs=["fixture.ignition=file"])
    err, elapsed = _fails(vm, tmp_path / "serial.log")
    assert err.reason == "Ignition failed" and elapsed < FAST
    assert "stage fetch-offline failed" in err.headline
    r = parse_log(err.log)  # the context read after the verdict
    assert r.booted and r.arch == "aarch64" and r.source == "initrd" and r.karg("fixture.ignition") == "file"
    assert any("path not absolute" in line for line in r.ignition_log)
    assert "/etc/hostname" not in r.files


@pytest.mark.boot
@pytest.mark.slow
def test_panicking_kernel_fails_with_kernel_panic(fixture_mirror: FixtureMirror, tmp_path: Path) -> None:
    os_ = fixture_mirror.os["x86_64"]
    append = f"console={os_.console} rdinit=/nonexistent init=/nonexistent panic=-1"
    vm = VmConfig(Machine("x86_64"), kernel=os_.kernel, initrds=(os_.initramfs,), append=append)
    err, elapsed = _fails(vm, tmp_path / "serial.log")
    assert err.reason == "kernel panic" and elapsed < FAST, (err.reason, elapsed)
    assert "Kernel panic - not syncing" in err.headline


@pytest.mark.boot
@pytest.mark.slow
def test_missing_initrd_fails_before_qemu_or_with_a_panic(
    fixture_mirror: FixtureMirror, tmp_path: Path
) -> None:
    os_ = fixture_mirror.os["x86_64"]
    missing = VmConfig(Machine("x86_64"), kernel=os_.kernel, initrds=(tmp_path / "initramfs.img",))
    start = time.monotonic()
    with pytest.raises(
        BootError, match=r"preflight: missing file: initrd .*initramfs.img does not exist"
    ) as e:
        boot(missing)
    assert e.value.reason == "missing file" and time.monotonic() - start < 1
    # a kernel booted without any initrd finds no root file system
    vm = VmConfig(Machine("x86_64"), kernel=os_.kernel, append=f"console={os_.console} panic=-1")
    err, elapsed = _fails(vm, tmp_path / "serial.log")
    assert err.reason == "kernel panic" and elapsed < FAST, (err.reason, elapsed)
    assert "Unable to mount root fs" in err.headline or "No working init" in err.headline


@pytest.mark.boot
@pytest.mark.slow
@pytest.mark.parametrize("firmware", ["bios", "uefi"])
def test_blank_disk_fails_with_no_bootable_device(firmware: str, tmp_path: Path) -> None:
    blank = tmp_path / "blank.raw"
    blank.write_bytes(b"")
    subprocess.run(["truncate", "-s", "64M", str(blank)], check=True)
    err, elapsed = _fails(VmConfig(Machine("x86_64", firmware), disks=(blank,)), tmp_path / "serial.log")
    assert err.reason == "no bootable device" and elapsed < FAST, (err.reason, elapsed)
    assert ("No bootable device" if firmware == "bios" else "EFI Internal Shell") in err.headline


def test_wrong_architecture_and_sector_size_fail_before_qemu(
    fixture_mirror: FixtureMirror, tmp_path: Path
) -> None:
    start = time.monotonic()
    arm = fixture_mirror.os["aarch64"]
    with pytest.raises(
        BootError, match=r"preflight: wrong architecture: kernel .* is an aarch64 image"
    ) as e:
        boot(VmConfig(Machine("x86_64"), kernel=arm.kernel, initrds=(arm.initramfs,)))
    assert e.value.reason == "wrong architecture"
    with pytest.raises(
        BootError, match=r"wrong architecture: .*BOOTX64.EFI \(an x86_64 image\), no BOOTAA64"
    ):
        boot(VmConfig(Machine("aarch64", "uefi"), disks=(fixture_mirror.metal["x86_64"],)))
    with pytest.raises(BootError, match=r"wrong architecture: .*BOOTAA64.EFI.*no BOOTX64.EFI"):
        boot(VmConfig(Machine("x86_64", "uefi"), disks=(fixture_mirror.metal["aarch64"],)))
    with pytest.raises(BootError, match=r"sector size mismatch: .*4096-byte sectors but .* 512-byte") as e:
        boot(VmConfig(Machine("x86_64", "uefi"), disks=(fixture_mirror.metal4k["x86_64"],)))
    with pytest.raises(BootError, match=r"512-byte sectors but the VM gives it 4096-byte"):
        boot(
            VmConfig(
                Machine("x86_64", "uefi"), disks=(fixture_mirror.metal["x86_64"],), disk_sector_size=4096
            )
        )
    assert time.monotonic() - start < 10  # no QEMU was started
