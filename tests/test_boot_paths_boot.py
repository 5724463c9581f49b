"""The firmware paths no other test boots, booted through the boot matrix itself (``boot-test --all``'s
code: pipeline builds of the shipped recipes for lab/dns1 on the offline mirror, the path's VM, the
delivered-config comparison, the medium evidence check, JUnit and summary):

- ``live/bios/usb-disk``, ``live/uefi/usb-disk``: the hybrid ISO as a USB stick (usb-storage on qemu-xhci)
  under SeaBIOS (ISOLINUX in hybrid-disk mode) and OVMF;
- ``pxe/bios/ipxe-http``: the bundle over HTTP from 127.0.0.1 (10.0.2.2 in the guest);
- ``pxe/bios/pxelinux``: Debian's pxelinux.0 over TFTP reading the bundle's pxelinux.cfg/default;
- ``pxe/uefi/grub``: a grub-mkimage EFI netboot image over TFTP reading the bundle's grub.cfg;
- ``metal/uefi/4kn``: the metal4k recipe (FCOS 4k.raw.xz base) as a 4096-byte-sector disk.

ISO as CD-ROM, iPXE over TFTP, metal BIOS/UEFI and rpi4 are booted by test_iso_boot, test_pxe_boot,
test_qemu and test_rpi4_boot.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from coreos_infra import pipeline
from coreos_infra.boottest import matrix
from coreos_infra.boottest.paths import select
from coreos_infra.fixtures import FixtureMirror
from coreos_infra.recipes import load_project

pytestmark = [pytest.mark.boot, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
NEW_PATHS = ("live/bios/usb-disk", "live/uefi/usb-disk", "pxe/bios/ipxe-http", "pxe/bios/pxelinux",
             "pxe/uefi/grub", "metal/uefi/4kn")  # fmt: skip


def test_new_firmware_paths_boot_through_the_matrix(fixture_mirror: FixtureMirror, tmp_path: Path) -> None:
    source = pipeline.offline_source(fixture_mirror.entry.parent)

    def build(recipe: str) -> tuple[Path, bytes]:
        plan = pipeline.BuildPlan(root=ROOT, target=recipe, site="lab", host="dns1", source=source,
                                  cache_dir=tmp_path / "cache", out_root=tmp_path / "build")  # fmt: skip
        outcome = pipeline.build(plan)
        return outcome.meta_path, outcome.request.ignition

    paths = select(matrix.declared_paths(sorted(load_project(ROOT).targets)), NEW_PATHS)
    assert sorted(p.name for p in paths) == sorted(NEW_PATHS)
    lines: list[str] = []
    out = tmp_path / "boot-test"
    results = matrix.run_matrix(matrix.MatrixOptions(paths, out, jobs=1), build, lines.append)
    print("\n".join(lines))
    for r in results:
        print(f"{r.name}: {r.status} {r.seconds:.1f} s, {len(r.passed)} checks passed")
    by_name = {r.name: r for r in results}
    for name in NEW_PATHS:
        r = by_name[name]
        assert r.ok, f"{name}: {r.message} {r.failed} (serial log {r.serial_log})"
        assert "system booted" in r.passed and any(p.startswith("Ignition succeeded") for p in r.passed)
        assert any(p.startswith("file /etc/hostname") for p in r.passed), name  # the site's config applied
        if name.startswith("live/"):  # the ISO as a USB stick: the initramfs found its rootfs on /dev/sdX
            assert "live rootfs loaded (from iso, stamp match: True)" in r.passed, r.passed
        assert r.serial_log is not None and r.serial_log.is_file()
    evidence = {
        "live/bios/usb-disk": "SeaBIOS booted ISOLINUX from the USB stick",
        "live/uefi/usb-disk": "OVMF booted the USB stick",
        "pxe/bios/ipxe-http": "iPXE fetched boot.ipxe over HTTP",
        "pxe/bios/pxelinux": "PXELINUX ran (pxelinux.0 over TFTP)",
        "pxe/uefi/grub": "GRUB EFI netboot image loaded over TFTP",
    }
    for name, what in evidence.items():
        assert what in by_name[name].passed, name
    disk4k = by_name["metal/uefi/4kn"].serial_log
    assert disk4k is not None and "FIXTURE-BOOTDEV label=boot dev=/dev/vda3" in disk4k.read_text(
        errors="replace"
    )
    suite = ET.parse(out / "junit.xml").getroot().find("testsuite")
    assert suite is not None and suite.get("failures") == "0" and suite.get("errors") == "0"
    assert sorted(c.get("name") or "" for c in suite.iter("testcase")) == sorted(NEW_PATHS)
    assert (
        all(line for line in lines if line.startswith("["))
        and len([ln for ln in lines if ln.startswith("[")]) == 6
    )
