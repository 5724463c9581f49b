"""The systemd fixture root (metal-systemd disk) and the hybrid BIOS + UEFI metal images.

Units (no VM): the "before" listing the root ships is byte-for-byte what the fixture ``/init`` computes with
busybox; the BIOS boot code is patched like ``grub-bios-setup`` does; the metal disks carry it.
Boots (TCG; qemu.py gives every guest virtio-rng): the metal-systemd disk under OVMF runs Ignition in
the initramfs, switches root into systemd, reaches multi-user, and testinfra checks the real services
over OpenSSH; the busybox metal disk boots under SeaBIOS, and a second boot of a disk skips Ignition.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
import time
from pathlib import Path

import pytest
from test_qemu import TIMEOUT, assert_applied, config, customize_disk

from coreos_infra import qemu
from coreos_infra.fixtures import FixtureMirror, metal, systemdroot
from coreos_infra.qemu import Machine, VmConfig, boot, parse_log, running

SYSTEMD_TIMEOUT = 900.0  # multi-user takes ~15 s unloaded under TCG, minutes on a loaded 2-core machine
INIT_SH = Path(__file__).parents[1] / "coreos_infra" / "fixtures" / "data" / "init.sh"


def systemd_disk(m: FixtureMirror) -> Path:
    if "x86_64" not in m.metal_systemd:
        pytest.skip(f"the fixture mirror has no metal-systemd disk: {systemdroot.unavailable()}")
    return m.metal_systemd["x86_64"]


def _snapshot_function() -> str:
    m = re.search(r"^snapshot_tree\(\) \{\n.*?^\}\n", INIT_SH.read_text(), re.S | re.M)
    assert m, "snapshot_tree() not found in init.sh"
    return m.group(0)


def test_tree_listing_matches_what_busybox_init_computes(tmp_path: Path) -> None:
    busybox = shutil.which("busybox")
    if busybox is None:
        pytest.skip("busybox (busybox-static) is not installed")
    root = tmp_path / "sysroot"
    (root / "etc" / "ssh").mkdir(parents=True)
    (root / "etc" / "hostname").write_text("node\n")
    (root / "etc" / "with space").write_text("x")
    (root / "etc" / "shadow").write_text("root:*:1::::::\n")
    (root / "etc" / "shadow").chmod(0o000)
    (root / "etc" / "localtime").symlink_to("../usr/share/zoneinfo/UTC")
    (root / "var" / "tmp").mkdir(parents=True)
    (root / "var" / "tmp").chmod(0o1777)
    (root / "root").mkdir(mode=0o700)
    (root / "usr" / "local" / "bin").mkdir(parents=True)
    script = _snapshot_function().replace("/sysroot", str(root)) + "snapshot_tree | sort\n"
    out = subprocess.run([busybox, "sh", "-c", script], capture_output=True, text=True, check=True).stdout
    expected = systemdroot.tree_listing(root).replace(str(root), "")
    got = "".join(sorted(line.replace(str(root), "") + "\n" for line in out.splitlines()))
    assert got == expected
    assert "/var/tmp dir:1777:0:0\n" in expected and "/etc/localtime link:../usr/share/zoneinfo/UTC\n" in got


def test_bios_boot_code_points_the_mbr_and_the_blocklist_at_the_core_image() -> None:
    boot_img = bytes(range(256)) * 2
    core = b"\x11" * 512 + b"\x22" * 3000  # diskboot sector + the rest (not sector-aligned)
    mbr, patched = metal.bios_boot_code(boot_img, core, 2048)
    assert len(mbr) == 0x1B8  # the disk signature and partition table are not overwritten
    assert struct.unpack_from("<Q", mbr, 0x5C) == (2048,)
    assert mbr[:0x5C] == boot_img[:0x5C]
    assert len(patched) % 512 == 0 and len(patched) // 512 == 7
    assert struct.unpack_from("<QH", patched, 512 - 12) == (2049, 6)
    with pytest.raises(ValueError):
        metal.bios_boot_code(boot_img[:100], core, 2048)


def test_metal_x86_64_is_hybrid_and_the_systemd_disk_has_a_systemd_root(
    fixture_mirror: FixtureMirror, tmp_path: Path
) -> None:
    disk = fixture_mirror.metal["x86_64"]
    with open(disk, "rb") as f:
        mbr = f.read(512)
        f.seek(metal.MIB)
        core_first = f.read(512)
    assert mbr[510:512] == b"\x55\xaa" and mbr[450] == 0xEE  # protective MBR kept
    assert mbr[:2] != b"\0\0" and struct.unpack_from("<Q", mbr, 0x5C) == (metal.MIB // 512,)
    assert struct.unpack_from("<Q", core_first, 500)[0] == metal.MIB // 512 + 1
    sd = systemd_disk(fixture_mirror)
    out = subprocess.run(["sgdisk", "-p", str(sd)], capture_output=True, text=True, check=True).stdout
    assert re.search(r"^\s+4\s.*\sroot$", out, re.M), out
    root_start = (2 + metal.ESP_MIB + metal.BOOT_MIB) * metal.MIB
    ls = subprocess.run(
        ["debugfs", "-R", "stat /usr/lib/systemd/systemd", f"{sd}?offset={root_start}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "Type: regular" in ls
    mid = subprocess.run(
        ["debugfs", "-R", "cat /etc/machine-id", f"{sd}?offset={root_start}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert mid == "uninitialized\n"
    served = fixture_mirror.artifact("stable", "x86_64", "systemd.raw.xz")
    assert served.name.endswith("metal-systemd.x86_64.raw.xz") and served.stat().st_size > 0


def systemd_config(hostname: str, ssh_key: str) -> bytes:
    cfg = json.loads(config(hostname, ssh_key=ssh_key))
    cfg["passwd"]["users"][0]["groups"] = ["wheel"]  # like FCOS's core
    cfg["storage"]["files"] += [
        {
            "path": "/etc/sysctl.d/90-fixture.conf",
            "mode": 0o644,
            "contents": {"source": "data:,vm.swappiness%20%3D%2013%0A"},
        },
        {
            # the wired profile: DHCP (slirp) plus a static address only this keyfile knows
            "path": "/etc/NetworkManager/system-connections/fixture-wired.nmconnection",
            "mode": 0o600,
            "contents": {
                "source": "data:,"
                + "%5Bconnection%5D%0Aid%3Dfixture-wired%0Atype%3Dethernet%0A"
                + "%5Bipv4%5D%0Amethod%3Dauto%0Aaddress1%3D192.0.2.7%2F24%0A"
            },
        },
    ]
    cfg["systemd"]["units"] = [
        {
            "name": "fixture-hello.service",
            "enabled": True,
            "contents": "[Unit]\nDescription=fixture\n[Service]\nType=oneshot\nRemainAfterExit=yes\n"
            "ExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n",
        },
        {"name": "chrony-wait.service", "mask": True},
    ]
    return json.dumps(cfg).encode()


@pytest.mark.boot
@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Unknown ssh-ed25519 host key")
def test_metal_systemd_uefi_ignition_then_systemd_services_over_ssh(
    fixture_mirror: FixtureMirror, tmp_path: Path
) -> None:
    testinfra = pytest.importorskip("testinfra")
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    pub = (tmp_path / "id_ed25519.pub").read_text().strip()
    disk = customize_disk(
        systemd_disk(fixture_mirror),
        tmp_path / "disk.raw",
        systemd_config("sd-node", pub),
        tmp_path,
        append_karg="fixture.ssh=1",
    )
    port = qemu.free_port()
    vm = VmConfig(Machine("x86_64", "uefi"), disks=(disk,), ssh_port=port)
    start = time.monotonic()
    serial = tmp_path / "serial.log"
    with running(vm, until=("FIXTURE-SSH-READY",), timeout=SYSTEMD_TIMEOUT, log_path=serial) as log:
        ready = time.monotonic() - start
        r = parse_log(log.text)
        assert r.root == {"label": "root", "dev": "/dev/vda4", "init": "systemd"}
        assert_applied_systemd(r, "sd-node", pub)
        assert r.systemd_state in ("running", "degraded"), r.failed_units
        phases = dict(
            re.findall(r"(FIXTURE-BOOT-OK|FIXTURE-SWITCH-ROOT|FIXTURE-SYSTEMD) .*uptime=([\d.]+)", log.text)
        )
        print(
            f"metal-systemd: SSH ready {ready:.1f} s (guest uptimes {phases}),",
            r.systemd_state,
            r.failed_units,
        )
        assert qemu.wait_for_ssh(port, timeout=120).startswith("SSH-2.0-OpenSSH")
        host = testinfra.get_host(f"paramiko://core@127.0.0.1:{port}", ssh_identity_file=str(key))
        assert host.run("cat /proc/1/comm").stdout.strip() == "systemd"
        state = host.run("systemctl is-system-running --wait").stdout.strip()
        failed = host.run("systemctl list-units --state=failed --plain --no-legend").stdout
        assert state in ("running", "degraded"), failed
        assert host.file("/etc/hostname").content_string == "sd-node\n"
        assert host.run("hostname").stdout.strip() == "sd-node"
        assert host.service("chronyd").is_running
        assert host.service("NetworkManager").is_running
        assert host.service("sshd").is_running
        hello = host.service("fixture-hello")
        assert hello.is_enabled and hello.is_running  # Ignition's preset, applied by systemd's first boot
        assert host.run("systemctl is-enabled chrony-wait.service").stdout.strip() == "masked"
        assert host.sysctl("vm.swappiness") == 13
        assert "192.0.2.7/24" in host.run("ip -4 addr").stdout  # NetworkManager applied the keyfile
        assert "fixture-wired" in host.run("nmcli -t -f NAME connection show --active").stdout
        assert host.user("alice").groups == ["alice", "wheel"]
        assert host.run("sudo -n true").rc == 0  # %wheel NOPASSWD, like FCOS
        assert host.file("/etc/secret.conf").user == "core" and host.file("/etc/secret.conf").mode == 0o600
        assert host.file("/etc/machine-id").content_string.strip() not in ("", "uninitialized")
        assert not host.file("/etc/ssh/ssh_host_rsa_key").exists  # builder keys were reset


def assert_applied_systemd(r: qemu.FixtureResult, hostname: str, ssh_key: str) -> None:
    assert r.booted and r.ignition_ok, f"Ignition failed: {r.ignition_failed} {r.ignition_log}"
    assert r.source == "boot"
    assert r.files["/etc/hostname"].text == hostname + "\n"
    secret = r.files["/etc/secret.conf"]
    assert (secret.mode, secret.uid, secret.content) == (0o600, 1000, b"k=v\n")
    assert r.links["/etc/localtime"] == "../usr/share/zoneinfo/UTC"
    assert r.dirs["/var/lib/fixture"][0] == 0o750
    assert r.users["core"].uid == 1000 and "wheel" in r.users["alice"].groups
    assert r.files["/home/core/.ssh/authorized_keys.d/ignition"].text.strip() == ssh_key
    assert "enable fixture-hello.service" in r.files["/etc/systemd/system-preset/20-ignition.preset"].text
    # only what Ignition changed is reported, not the thousand files of the Debian root
    assert "/etc/ssh/sshd_config" not in r.files and "/etc" not in r.dirs
    assert r.ssh_ready


@pytest.mark.boot
@pytest.mark.slow
def test_metal_x86_64_bios_boots_from_the_bios_boot_partition(
    fixture_mirror: FixtureMirror, tmp_path: Path
) -> None:
    disk = customize_disk(fixture_mirror.metal["x86_64"], tmp_path / "disk.raw", config("bios"), tmp_path)
    vm = VmConfig(Machine("x86_64", "bios"), disks=(disk,))
    start = time.monotonic()
    log = boot(vm, timeout=TIMEOUT, log_path=tmp_path / "serial.log")
    print(f"metal under SeaBIOS: FIXTURE-DONE after {time.monotonic() - start:.1f} s")
    assert "FIXTURE-GRUB-BLS Fedora CoreOS" in log.text  # GRUB i386-pc read the BLS entry
    r = parse_log(log.text)
    assert_applied(r, "bios", "boot")
    assert r.bootdev == "/dev/vda3" and "ignition.firstboot" in r.kargs


@pytest.mark.boot
@pytest.mark.slow
def test_second_boot_of_a_metal_disk_does_not_run_ignition_again(
    fixture_mirror: FixtureMirror, tmp_path: Path
) -> None:
    disk = customize_disk(fixture_mirror.metal["x86_64"], tmp_path / "disk.raw", config("twice"), tmp_path)
    vm = VmConfig(Machine("x86_64", "uefi"), disks=(disk,), writable_disks=True)
    first = boot(vm, timeout=TIMEOUT, log_path=tmp_path / "serial-1.log")
    assert parse_log(first.text).ignition_ok
    assert "FIXTURE-FIRSTBOOT-COMPLETE removed /boot/ignition.firstboot" in first.text
    second = parse_log(boot(vm, timeout=TIMEOUT, log_path=tmp_path / "serial-2.log").text)
    assert second.booted and second.ignition_skipped and not second.ignition_ok
    assert "ignition.firstboot" not in second.kargs  # GRUB found no stamp


def test_parse_log_reads_a_marker_behind_a_login_prompt() -> None:
    r = parse_log("sd-node login: FIXTURE-SYSTEMD state=degraded failed=a.service,b.service uptime=5\n")
    assert r.systemd_state == "degraded" and r.failed_units == ["a.service", "b.service"]
    assert parse_log("noise FIXTURE-SYSTEMD state=running\n").systemd_state is None


@pytest.mark.boot
@pytest.mark.slow
@pytest.mark.parametrize("real_os", [False, True], ids=["fixture-markers", "real-fcos-readiness"])
def test_lab_host_services_run_and_every_overlay_check_passes(
    fixture_mirror: FixtureMirror, tmp_path: Path, real_os: bool
) -> None:
    """The lab's dns1 metal image on the systemd root (the ``metal/uefi/services`` path): Ignition, SSH with
    the site's boot-test key, the delivered-config comparison and the base, network, ntp, dns and monitoring
    checks, the ``running`` ones included. ``real_os`` boots it the way real FCOS is tested (no markers:
    SSH login, ``is-system-running --wait``, then every check): there the checks that need podman or
    registry images run too, and fail on this Debian root — exactly those, nothing else."""
    from coreos_infra import pipeline
    from coreos_infra.boottest.services import run_services

    systemd_disk(fixture_mirror)
    source = pipeline.offline_source(fixture_mirror.entry.parent)
    plan = pipeline.BuildPlan(root=Path(__file__).parents[1], target="metal", site="lab", host="dns1",
                              source=source, cache_dir=tmp_path / "cache", out_root=tmp_path / "build",
                              keys_dir=tmp_path / "keys")  # fmt: skip
    report = run_services(plan, timeout=SYSTEMD_TIMEOUT, log_path=tmp_path / "serial.log", real_os=real_os)
    print(report.summary())
    assert "system is running (systemctl is-system-running --wait: running)" in report.passed
    # running checks that need systemd, NetworkManager and chronyd ran for real
    for check in (
        "base::test_hostname_applied",
        "base::test_sysctl_applied",
        "network::test_static_address",
        "network::test_default_route",
        "ntp::test_chronyd_active",
        "ntp::test_serves_ntp",
    ):
        assert f"check {check}" in report.passed, check
    assert any(p.startswith("user core accepts SSH key") and p.endswith("(ssh)") for p in report.passed)
    assert any(p.startswith("file /etc/chrony.conf owned by root:root") for p in report.passed)
    podman_unit = "unit podman-auto-update.timer is enabled"
    if not real_os:
        assert report.ok, report.summary()
        # only what needs registries or podman is left for real FCOS
        na = {n.split(": ")[0] for n in report.not_applicable}
        assert na == NEEDS_FCOS | {podman_unit}, report.not_applicable
    else:
        assert not report.not_applicable  # real FCOS: everything runs
        assert any(p.startswith("SSH login as core with the boot-test key") for p in report.passed)
        failed = {
            f.split()[1].rstrip(":") if f.startswith("check ") else f.split(" (")[0] for f in report.failed
        }
        assert {"dns::test_coredns_active", "monitoring::test_node_exporter", podman_unit} <= failed
        assert failed <= NEEDS_FCOS | {podman_unit}, report.failed


# the lab dns1 checks marked podman/registry: not applicable on the fixture root, run on real FCOS
NEEDS_FCOS = {
    "base::test_podman_auto_update_timer",
    "monitoring::test_node_exporter",
    "monitoring::test_prometheus_on_monitoring_hosts",
    "dns::test_coredns_active",
    "dns::test_listens_on_lan_address",
    "dns::test_health_endpoint",
    "dns::test_answers_site_names",
}
