"""Boot path declarations, the boot matrix's bookkeeping (job bounds, runners, reports) and the
``invoke boot-test --all`` plumbing, without booting (fast). The new firmware paths are booted in
tests/test_boot_paths_boot.py; broken artifacts in tests/test_boot_paths_broken.py."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from coreos_infra.boottest import matrix
from coreos_infra.boottest.junit import PathResult, junit_xml, summary_markdown, write_reports
from coreos_infra.boottest.paths import BootPath, select
from coreos_infra.errors import CoreosInfraError
from coreos_infra.fixtures import FixtureMirror
from coreos_infra.recipes import load_project

ROOT = Path(__file__).resolve().parent.parent

# what the project claims (issue 14): every one of these must be declared and named exactly so
CLAIMED = {
    "usb/bios/cdrom", "usb/uefi/cdrom", "usb/bios/usb-disk", "usb/uefi/usb-disk", "usb/bios/install",
    "usb/uefi/install", "usb/uefi/second-boot",
    "live/bios/cdrom", "live/uefi/cdrom", "live/bios/usb-disk", "live/uefi/usb-disk",
    "pxe/bios/ipxe-tftp", "pxe/uefi/ipxe-tftp", "pxe/bios/ipxe-http", "pxe/bios/pxelinux", "pxe/uefi/grub",
    "pxe/bios/ipxe-http-install",
    "metal/bios/disk", "metal/uefi/disk", "metal/uefi/4kn", "metal/uefi/second-boot", "metal/uefi/services",
    "rpi4/uefi/disk", "qemu/uefi/disk",
}  # fmt: skip


def test_every_claimed_path_is_declared_once_with_a_buildable_recipe() -> None:
    project = load_project(ROOT)
    paths = matrix.declared_paths(sorted(project.targets))
    assert {p.name for p in paths} == CLAIMED
    assert len(paths) == len(CLAIMED)
    for p in paths:
        assert p.build_recipe in project.targets, p.name
        assert p.scenario in matrix.RUNNERS, f"{p.name}: scenario {p.scenario} has no RUNNERS entry"
    by_name = {p.name: p for p in paths}
    assert by_name["metal/uefi/4kn"].recipe == "metal4k" and by_name["metal/uefi/4kn"].sector_size == 4096
    assert project.targets["metal4k"].base.format == "4k.raw.xz"
    assert by_name["pxe/bios/ipxe-http-install"].build_recipe == "pxe-install"
    assert project.targets["pxe-install"].options["mode"] == "install"
    assert by_name["usb/uefi/usb-disk"].medium == "usb-disk" and by_name["pxe/uefi/grub"].medium == "grub"
    # only the recipes that exist contribute paths
    assert {p.target for p in matrix.declared_paths(["rpi4"])} == {"rpi4"}


def test_boot_path_rejects_nonsense_and_selects_by_pattern() -> None:
    with pytest.raises(CoreosInfraError, match="firmware must be bios or uefi"):
        BootPath("metal", "coreboot", "disk", "disk")
    with pytest.raises(CoreosInfraError, match="unknown medium 'floppy'"):
        BootPath("metal", "bios", "disk", "floppy")
    paths = matrix.declared_paths(sorted(load_project(ROOT).targets))
    assert {p.name for p in select(paths, ("pxe/*",))} == {n for n in CLAIMED if n.startswith("pxe/")}
    assert [p.name for p in select(paths, ("*/4kn",))] == ["metal/uefi/4kn"]
    with pytest.raises(CoreosInfraError, match="no boot path matches nope"):
        select(paths, ("nope",))


def test_jobs_are_bounded_by_cores_and_free_memory() -> None:
    vm = 1536 + matrix.QEMU_OVERHEAD_MB
    assert matrix.bounded_jobs(None, cores=2, free_mb=24000, vm_mb=1536) == 1  # 2 cores: one 2-vCPU VM
    assert matrix.bounded_jobs(None, cores=16, free_mb=24000, vm_mb=1536) == 8
    assert matrix.bounded_jobs(None, cores=16, free_mb=3 * vm, vm_mb=1536) == 3  # memory is the limit
    assert matrix.bounded_jobs(6, cores=2, free_mb=24000, vm_mb=1536) == 6  # asked for: allowed ...
    assert matrix.bounded_jobs(6, cores=2, free_mb=2 * vm, vm_mb=1536) == 2  # ... but never beyond memory
    assert matrix.bounded_jobs(4, cores=1, free_mb=100, vm_mb=1536) == 1  # at least one
    assert matrix.available_memory_mb() > 0


def test_a_scenario_without_runner_is_an_error_not_a_skip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(matrix.RUNNERS, "install", None)
    path = BootPath("usb", "bios", "install", "cdrom")
    run = matrix.PathRun(path, tmp_path / "meta.json", b"{}", None, tmp_path, None, tmp_path, tmp_path, 1.0)  # type: ignore[arg-type]
    r = matrix.run_path(run)
    assert (r.status, r.message) == ("error", "no runner for scenario install")


def test_medium_checks_read_the_firmware_text() -> None:
    usb = BootPath("usb", "uefi", "usb-disk", "usb-disk")
    ok = 'BdsDxe: starting Boot0001 "UEFI QEMU QEMU USB HARDDRIVE 1-0000:00:02.0-1" from PciRoot'
    assert matrix.medium_checks(usb, "x86_64", ok) == (["OVMF booted the USB stick"], [])
    assert matrix.medium_checks(usb, "x86_64", 'BdsDxe: starting Boot0001 "UEFI QEMU DVD-ROM"')[1]
    bios = BootPath("live", "bios", "usb-disk", "usb-disk")
    assert matrix.medium_checks(bios, "x86_64", "ISOLINUX 6.04 20200816 EHDD Copyright")[0]
    cd = BootPath("live", "bios", "cdrom", "cdrom")
    assert matrix.medium_checks(cd, "x86_64", "ISOLINUX 6.04 20200816 EHDD Copyright")[1]  # that was a disk
    assert matrix.medium_checks(BootPath("rpi4", "uefi", "disk", "disk"), "aarch64", "") == ([], [])


RESULTS = [
    PathResult("usb/uefi/usb-disk", "usb", "pass", 41.25, ["system booted", "file /etc/hostname"], [],
               ["running: podman: needs a registry"], "", Path("/logs/usb-uefi-usb-disk/serial.log")),
    PathResult("pxe/uefi/grub", "pxe", "fail", 12.0, ["system booted"], ["file /etc/motd | exists"], [],
               "boot failed: kernel panic: 'Kernel panic - not syncing'",
               Path("/logs/pxe-uefi-grub/serial.log")),
    PathResult("usb/bios/install", "usb", "error", 0.0, message="no runner for scenario install"),
]  # fmt: skip


def test_junit_has_one_testcase_per_path_with_message_and_serial_log() -> None:
    root = ET.fromstring(junit_xml(RESULTS))
    suite = root.find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("3", "1", "1")
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert list(cases) == ["usb/uefi/usb-disk", "pxe/uefi/grub", "usb/bios/install"]
    assert (
        cases["usb/uefi/usb-disk"].get("classname") == "usb"
        and cases["usb/uefi/usb-disk"].get("time") == "41.2"
    )
    assert cases["usb/uefi/usb-disk"].find("failure") is None
    failure = cases["pxe/uefi/grub"].find("failure")
    assert failure is not None and "kernel panic" in (failure.get("message") or "")
    assert "/logs/pxe-uefi-grub/serial.log" in (failure.get("message") or "")
    assert "FAILED file /etc/motd | exists" in (failure.text or "")
    error = cases["usb/bios/install"].find("error")
    assert error is not None and error.get("message", "").startswith("no runner for scenario install")
    out = cases["usb/uefi/usb-disk"].find("system-out")
    assert out is not None and "NOT APPLICABLE running: podman" in (out.text or "")


def test_summary_table_and_atomic_reports(tmp_path: Path) -> None:
    md = summary_markdown(RESULTS)
    assert md.startswith("# Boot test: 1/3 boot paths passed")
    rows = [line for line in md.splitlines() if line.startswith("| `")]
    assert rows[0] == (
        "| `usb/uefi/usb-disk` | PASS | 41.2 | 2 | 0 | 1 | `/logs/usb-uefi-usb-disk/serial.log` |"
    )
    assert "  - FAILED file /etc/motd \\| exists" in md  # a | in a check name does not break the markdown
    assert rows[2].startswith(
        "| `usb/bios/install` | ERROR: no runner for scenario install | 0.0 | 0 | 0 | 0 | - |"
    )
    assert "## Not applicable on the fixture OS" in md
    junit, summary = write_reports(RESULTS, tmp_path / "boot-test")
    assert ET.parse(junit).getroot().tag == "testsuites" and summary.read_text() == md
    assert sorted(p.name for p in (tmp_path / "boot-test").iterdir()) == [
        "junit.xml",
        "summary.md",
    ]  # no temp left


def test_run_matrix_reports_build_failures_per_path(tmp_path: Path) -> None:
    paths = (
        BootPath("metal", "bios", "disk", "disk"),
        BootPath("metal", "uefi", "4kn", "disk", recipe="metal4k"),
    )
    seen: list[str] = []

    def build(recipe: str) -> tuple[Path, bytes]:
        raise CoreosInfraError(f"no base for {recipe}")

    results = matrix.run_matrix(matrix.MatrixOptions(paths, tmp_path / "out"), build, seen.append)
    assert [(r.name, r.status, r.message) for r in results] == [
        ("metal/bios/disk", "error", "build of metal failed: no base for metal"),
        ("metal/uefi/4kn", "error", "build of metal4k failed: no base for metal4k"),
    ]
    assert "building metal" in seen and "building metal4k" in seen
    assert (tmp_path / "out" / "junit.xml").is_file() and (tmp_path / "out" / "summary.md").is_file()


def test_disk_vms_take_the_sector_size_of_the_image(fixture_mirror: FixtureMirror, tmp_path: Path) -> None:
    from coreos_infra import qemu
    from coreos_infra.boottest.paths import path_vm
    from coreos_infra.targets.metal import MetalTarget

    spec, machine = MetalTarget(), qemu.Machine("x86_64", "uefi")
    for d in "abcd":
        (tmp_path / d).mkdir()
    xz4k = fixture_mirror.artifact("stable", "x86_64", "4k.raw.xz")
    vm = spec.boot_vm(xz4k, machine, tmp_path / "a")  # `boot-test --target metal4k`, the nightly
    assert vm.disk_sector_size == 4096
    four_kn = BootPath("metal", "uefi", "4kn", "disk", recipe="metal4k", sector_size=4096)
    assert path_vm(four_kn, spec, xz4k, machine, tmp_path / "b").disk_sector_size == 4096
    with pytest.raises(CoreosInfraError, match=r"4096-byte-sector image, the path boots 512-byte sectors"):
        path_vm(BootPath("metal", "uefi", "disk", "disk"), spec, xz4k, machine, tmp_path / "c")
    xz512 = fixture_mirror.artifact("stable", "x86_64", "raw.xz")
    assert spec.boot_vm(xz512, machine, tmp_path / "d").disk_sector_size == 512
