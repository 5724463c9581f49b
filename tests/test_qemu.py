"""The QEMU harness (argv, accelerator, fail-fast runner, protocol parser) and boots of every fixture image.

Boots (TCG, a few representative ones): the PXE set by direct kernel boot (x86_64), the live ISO under
SeaBIOS (embedded Ignition) and OVMF (embedded Ignition + edited karg areas), both metal disks under
OVMF/AAVMF (config on the boot partition, edited BLS options), and SSH + testinfra into the fixture OS.
Broken media (bad Ignition, panics, blank disks, wrong architecture) are in tests/test_boot_paths_broken.py.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from coreos_infra import qemu
from coreos_infra.cpio import initrd_to_bytes
from coreos_infra.fixtures import FixtureMirror, metal
from coreos_infra.qemu import BootError, Machine, VmConfig, boot, parse_log, running

TIMEOUT = 420.0
SSH_KEY_LINE = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOkJ8+Yp7M2k1W3cT0sQwL5G6fVd3Xq9Rb1Zx2Ny4aPu fixture@test"
)


def config(hostname: str, *, ssh_key: str = SSH_KEY_LINE) -> bytes:
    return json.dumps(
        {
            "ignition": {"version": "3.3.0"},
            "passwd": {
                "users": [
                    {"name": "core", "sshAuthorizedKeys": [ssh_key]},
                    {"name": "alice", "groups": ["wheel"]},
                ]
            },
            "storage": {
                "files": [
                    {"path": "/etc/hostname", "mode": 420, "contents": {"source": f"data:,{hostname}%0A"}},
                    {
                        "path": "/etc/secret.conf",
                        "mode": 0o600,
                        "user": {"name": "core"},
                        "contents": {"source": "data:;base64," + base64.b64encode(b"k=v\n").decode()},
                    },
                    {
                        "path": "/usr/local/bin/hello",
                        "mode": 0o755,
                        "contents": {"source": "data:,echo%20hi%0A"},
                    },
                ],
                "links": [{"path": "/etc/localtime", "target": "../usr/share/zoneinfo/UTC"}],
                "directories": [{"path": "/var/lib/fixture", "mode": 0o750}],
            },
            "systemd": {"units": [{"name": "fixture.service", "enabled": True, "contents": "[Service]\n"}]},
        }
    ).encode()


def assert_applied(r: qemu.FixtureResult, hostname: str, source: str) -> None:
    assert r.booted, "fixture OS did not boot"
    assert r.ignition_ok, f"Ignition failed: {r.ignition_failed} {r.ignition_log}"
    assert r.source == source
    assert r.files["/etc/hostname"].text == hostname + "\n"
    assert r.files["/etc/hostname"].mode == 0o644
    secret = r.files["/etc/secret.conf"]
    assert (secret.mode, secret.uid, secret.content) == (0o600, 1000, b"k=v\n")
    assert secret.sha256 == hashlib.sha256(b"k=v\n").hexdigest()
    assert r.files["/usr/local/bin/hello"].mode == 0o755
    assert r.links["/etc/localtime"] == "../usr/share/zoneinfo/UTC"
    assert r.dirs["/var/lib/fixture"][0] == 0o750
    users = r.users
    assert users["core"].uid == 1000 and users["alice"].uid == 1001
    assert "wheel" in users["alice"].groups
    assert r.files["/home/core/.ssh/authorized_keys.d/ignition"].text.strip() == SSH_KEY_LINE
    assert "enable fixture.service" in r.files["/etc/systemd/system-preset/20-ignition.preset"].text
    assert r.done


# ---------------------------------------------------------------- units (no VM)

SAMPLE_LOG = """\
\x1b[2J garbage from the firmware
FIXTURE-BOOT-OK arch=aarch64 kernel=6.1.0-56-arm64 uptime=1.5\r
FIXTURE-CMDLINE console=ttyAMA0 ignition.firstboot foo=1 foo=2 bare
FIXTURE-IGNITION-SOURCE boot
FIXTURE-IGNITION-OK platform=metal
FIXTURE-FILE /etc/with space mode=0640 uid=0 gid=10 size=3 sha256=abc
FIXTURE-CONTENT-BEGIN /etc/with space
aGkK
FIXTURE-CONTENT-END
FIXTURE-FILE /etc/empty mode=0600 uid=0 gid=0 size=0 sha256=e3b0
FIXTURE-CONTENT-BEGIN /etc/empty
FIXTURE-CONTENT-END
FIXTURE-FILE /var/big mode=0644 uid=0 gid=0 size=9000 sha256=ff
FIXTURE-DIR /home/core mode=0700 uid=1000 gid=1000
FIXTURE-LINK /etc/l target=a b
FIXTURE-DONE
"""


def test_parse_log_reads_every_marker() -> None:
    r = parse_log(SAMPLE_LOG)
    assert r.booted and r.arch == "aarch64" and r.ok and r.done
    assert r.karg("foo") == "2" and r.karg("bare") == "" and r.karg("missing") is None
    assert r.source == "boot"
    f = r.files["/etc/with space"]
    assert (f.mode, f.uid, f.gid, f.size, f.content) == (0o640, 0, 10, 3, b"hi\n")
    assert r.files["/etc/empty"].content == b""
    assert r.files["/var/big"].content is None
    with pytest.raises(Exception, match="not reported"):
        _ = r.files["/var/big"].text
    assert r.dirs["/home/core"] == (0o700, 1000, 1000)
    assert r.links["/etc/l"] == "a b"


def test_parse_log_reports_failures() -> None:
    r = parse_log(
        "FIXTURE-BOOT-OK arch=x86_64\nFIXTURE-IGNITION-LOG error at $.x\n"
        "FIXTURE-IGNITION-FAILED stage files failed\n"
    )
    assert r.booted and not r.ok and r.ignition_failed == "stage files failed"
    assert r.ignition_log == ["error at $.x"]
    assert not parse_log("kernel noise only").booted


def test_qemu_command_profiles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COREOS_INFRA_ACCEL", "tcg")
    disk = tmp_path / "d.raw"
    disk.write_bytes(b"")
    uefi = qemu.qemu_command(VmConfig(Machine("x86_64", "uefi"), disks=(disk,), ssh_port=2222), tmp_path)
    assert uefi[:3] == [shutil.which("qemu-system-x86_64"), "-accel", "tcg"]
    assert any(a.startswith("if=pflash,format=raw,unit=0,readonly=on,file=") for a in uefi)
    assert (tmp_path / "efivars.fd").is_file()  # a private copy of the vars
    assert f"if=none,id=d0,format=raw,file={disk},snapshot=on" in uefi
    assert "user,id=n0,hostfwd=tcp:127.0.0.1:2222-:22" in uefi
    bios = qemu.qemu_command(VmConfig(Machine("x86_64", "bios"), cdrom=disk), tmp_path)
    assert not any("pflash" in a for a in bios) and "ide-cd,drive=cd0,bootindex=0" in bios
    arm = qemu.qemu_command(VmConfig(Machine("aarch64", "uefi"), disks=(disk,)), tmp_path)
    assert arm[arm.index("-M") + 1] == "virt" and arm[arm.index("-cpu") + 1] == "cortex-a72"
    direct = qemu.qemu_command(
        VmConfig(Machine("x86_64"), kernel=disk, initrds=(disk, disk), append="x"), tmp_path
    )
    assert "-kernel" in direct and not any("pflash" in a for a in direct)
    with pytest.raises(Exception, match="unsupported firmware"):
        Machine("aarch64", "bios")
    monkeypatch.setenv("COREOS_INFRA_ACCEL", "kvm")
    assert qemu.pick_accel("aarch64") == "kvm"


def test_kvm_detection_requires_matching_arch() -> None:
    assert qemu.kvm_usable("aarch64" if qemu.host_arch() == "x86_64" else "x86_64") is False


def _watch(
    script: str, timeout: float | qemu.Timeouts = 120, until: tuple[str, ...] = ("FIXTURE-DONE",)
) -> str:
    from coreos_infra.run import spawn

    with spawn(["sh", "-c", script]) as proc:
        return qemu._wait_for(qemu._Console(proc, None), until, timeout, time.monotonic(), ["sh"])


def test_runner_fails_fast_on_a_failure_pattern() -> None:
    start = time.monotonic()
    with pytest.raises(BootError, match="Press any key") as err:
        _watch("echo 'Welcome to GRUB!'; echo 'Press any key to continue...'; sleep 60")
    assert time.monotonic() - start < 20
    assert "Welcome to GRUB!" in err.value.log and err.value.reason == "boot loader error"
    with pytest.raises(BootError, match="exited with code 3") as err:
        _watch("echo FIXTURE-BOOT-OK; exit 3", 60)
    assert err.value.reason == "qemu exit"


@pytest.mark.parametrize(
    ("lines", "reason", "detail"),
    [
        ("[ 2.1] Kernel panic - not syncing: VFS: Unable to mount root fs", "kernel panic", "VFS"),
        ("[ 3.0] Oops: 0002 [#1] PREEMPT SMP NOPTI", "kernel oops", "Oops: 0002"),
        ("You are in emergency mode. After logging in, type", "emergency shell", "emergency mode"),
        ("[ 9.9] dracut-initqueue[300]: Warning: dracut-initqueue timeout - starting timeout scripts",
         "emergency shell", "dracut-initqueue timeout"),
        ("FIXTURE-IGNITION-LOG error at $.storage: bad\nFIXTURE-IGNITION-FAILED stage files failed",
         "Ignition failed", "stage files failed"),
        ("[ 5.5] ignition[812]: Ignition failed: failed to fetch config", "Ignition failed", "fetch config"),
        ("SeaBIOS (version 1.16.2)\nBooting from Hard Disk...\nNo bootable device.", "no bootable device",
         "No bootable device"),
        ('BdsDxe: starting Boot0002 "EFI Internal Shell" from Fv(7CB8BDC9)', "no bootable device", "Shell"),
    ],
)  # fmt: skip
def test_runner_names_the_reason_of_each_failure_pattern(lines: str, reason: str, detail: str) -> None:
    start = time.monotonic()
    with pytest.raises(BootError) as err:
        _watch(f"printf '%b\\n' '{lines}' 'more context'; sleep 30")
    assert err.value.reason == reason
    assert detail in err.value.headline and reason in err.value.headline
    assert "more context" in err.value.log  # read on for a moment after the pattern
    assert time.monotonic() - start < 10


def test_runner_waits_for_a_pattern_when_it_is_the_marker() -> None:
    assert _watch("echo 'FIXTURE-IGNITION-FAILED x'", until=("FIXTURE-IGNITION-FAILED",)).startswith(
        "marker"
    )
    # the fixture's Ignition log lines are context, not the verdict
    assert (
        _watch("echo 'FIXTURE-IGNITION-LOG Ignition failed: x'; echo FIXTURE-DONE") == "marker:FIXTURE-DONE"
    )


def test_runner_reads_the_rest_of_the_marker_line() -> None:
    """The serial line that carries a marker can arrive in pieces; its reason after the marker is kept."""
    from coreos_infra.run import spawn

    script = "printf 'FIXTURE-INSTALL-FAILED dest'; sleep 0.5; printf 'ination too small\\n'; sleep 30"
    with spawn(["sh", "-c", script]) as proc:
        console = qemu._Console(proc, None)
        reason = qemu._wait_for(console, ("FIXTURE-INSTALL-FAILED",), 60, time.monotonic(), ["sh"])
        assert reason == "marker:FIXTURE-INSTALL-FAILED"
        assert "FIXTURE-INSTALL-FAILED destination too small\n" in console.text


def test_a_guest_silent_right_after_the_kernel_started_init_is_an_early_stall() -> None:
    """Retried like a QEMU crash by ``running`` (a TCG hang seen once on a loaded host), long before the
    idle limit; silence anywhere else is a guest failure."""
    start = time.monotonic()
    with pytest.raises(qemu.EarlyStall, match="nothing for 10 s after the kernel started /init"):
        _watch("echo '[    3.97] Run /init as init process'; sleep 60", qemu.Timeouts(overall=60, idle=40))
    assert time.monotonic() - start < 20
    with pytest.raises(BootError, match="no console output for 12 s") as err:
        _watch("echo '[    3.97] Run /init as init process'; echo FIXTURE-BOOT-OK; sleep 60",
               qemu.Timeouts(overall=60, idle=12))  # fmt: skip
    assert err.value.reason == "no console output"


def test_runner_fails_on_silence_before_the_overall_cap() -> None:
    start = time.monotonic()
    with pytest.raises(BootError, match="no console output for 2 s") as err:
        _watch("echo booting; sleep 30", qemu.Timeouts(overall=60, idle=2))
    assert err.value.reason == "no console output" and time.monotonic() - start < 10
    with pytest.raises(BootError, match="timed out after 3 s") as err:
        _watch("while true; do echo tick; sleep 0.5; done", qemu.Timeouts(overall=3, idle=2))
    assert err.value.reason == "timeout"


def test_timeouts_scale_with_the_accelerator(monkeypatch: pytest.MonkeyPatch) -> None:
    from coreos_infra import bootwatch

    monkeypatch.setattr(bootwatch, "load_factor", lambda: 1.0)
    kvm, tcg = qemu.Timeouts.for_accel("kvm"), qemu.Timeouts.for_accel("tcg")
    assert tcg.overall == kvm.overall * bootwatch.ACCEL_FACTOR["tcg"] and tcg.idle > kvm.idle
    monkeypatch.setattr(bootwatch, "load_factor", lambda: 2.0)
    assert qemu.Timeouts.for_accel("tcg").idle == 2 * tcg.idle
    assert qemu.Timeouts.for_accel("tcg").capped(100).overall == 100
    assert 1.0 <= bootwatch.load_factor() <= bootwatch.MAX_LOAD_FACTOR


def test_bios_machines_route_seabios_to_the_serial_port(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COREOS_INFRA_ACCEL", "tcg")
    iso = tmp_path / "x.iso"
    iso.write_bytes(b"")
    bios = qemu.qemu_command(VmConfig(Machine("x86_64", "bios"), usb_disks=(iso,), disks=(iso,)), tmp_path)
    assert bios[bios.index("-M") + 1] == "q35,graphics=off"
    assert "qemu-xhci,id=xhci" in bios
    assert "usb-storage,bus=xhci.0,drive=u0,removable=on,bootindex=0" in bios
    assert any(a.startswith("virtio-blk-pci,drive=d0,bootindex=1") for a in bios)  # the USB stick first
    uefi = qemu.qemu_command(VmConfig(Machine("x86_64", "uefi"), cdrom=iso), tmp_path)
    assert uefi[uefi.index("-M") + 1] == "q35"


def _crashing_qemu(bindir: Path, crashes: int) -> None:
    """Put a ``qemu-system-x86_64`` first on PATH that kills itself with SIGSEGV on its first ``crashes``
    runs (as TCG QEMU did once in CI) and then runs the real QEMU with the same arguments."""
    real = shutil.which("qemu-system-x86_64")
    assert real is not None
    bindir.mkdir()
    count = bindir / "runs"
    count.write_text("")
    script = bindir / "qemu-system-x86_64"
    script.write_text(
        "#!/bin/sh\n"
        f"echo run >> {count}\n"
        f'if [ "$(wc -l < {count})" -le {crashes} ]; then echo "[ 0.1] ACPI: booting"; kill -SEGV $$; fi\n'
        f'exec {real} "$@"\n'
    )
    script.chmod(0o755)


def test_runner_gives_up_when_qemu_keeps_crashing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _crashing_qemu(tmp_path / "bin", crashes=5)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    (tmp_path / "kernel").write_bytes(b"")  # exists (preflight), never booted: QEMU dies first
    vm = VmConfig(Machine("x86_64", "bios"), kernel=tmp_path / "kernel")
    with pytest.raises(BootError, match=r"killed by signal 11: .*\(after 2 attempts\)") as err:
        boot(vm, timeout=60)
    assert "ACPI: booting" in err.value.log
    assert (tmp_path / "bin" / "runs").read_text().count("run") == 2


# ---------------------------------------------------------------- helpers to customize copies of the images


def _iso_extent(iso: Path, path: str) -> tuple[int, int]:
    """(byte offset, size) of a file in the ISO, as xorriso reports it."""
    out = subprocess.run(
        ["xorriso", "-indev", str(iso), "-find", path, "-exec", "report_lba", "--"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    fields = out.split("File data lba:")[1].split(",")
    return int(fields[1]) * 2048, int(fields[3])


def customize_iso(src: Path, dest: Path, ign: bytes, append_karg: str | None = None) -> Path:
    """Embed ``ign`` and optionally append a karg, straight from igninfo.json/kargs.json (no iso module)."""
    shutil.copyfile(src, dest)
    dest.chmod(0o644)
    with open(dest, "r+b") as f:
        f.seek(_iso_extent(dest, "/images/ignition.img")[0])
        area = initrd_to_bytes({"config.ign": ign})
        f.write(area + bytes(262144 - len(area)))
        if append_karg:
            offset, size = _iso_extent(dest, "/coreos/kargs.json")
            f.seek(offset)
            kargs = json.loads(f.read(size))
            new = f"{kargs['default']} {append_karg}"
            data = (new + "\n").encode().ljust(kargs["size"], b"#")
            for entry in kargs["files"]:
                f.seek(_iso_extent(dest, "/" + entry["path"])[0] + entry["offset"])
                f.write(data)
    return dest


def customize_disk(src: Path, dest: Path, ign: bytes, tmp: Path, append_karg: str | None = None) -> Path:
    """Put ``ign`` at ignition/config.ign on the boot fs (like coreos-installer) and edit the BLS options."""
    subprocess.run(["cp", "--sparse=always", str(src), str(dest)], check=True)
    dest.chmod(0o644)
    boot_fs = f"{dest}?offset={(2 + metal.ESP_MIB) * metal.MIB}"
    (tmp / "config.ign").write_bytes(ign)
    cmds = ["mkdir /ignition", f"write {tmp / 'config.ign'} /ignition/config.ign"]
    if append_karg:
        entry = f"/loader/entries/{metal.BLS_NAME}"
        bls = subprocess.run(
            ["debugfs", "-R", f"cat {entry}", boot_fs], capture_output=True, text=True, check=True
        ).stdout
        edited = "".join(
            line + (f" {append_karg}" if line.startswith("options ") else "") + "\n"
            for line in bls.splitlines()
        )
        (tmp / "entry.conf").write_text(edited)
        cmds += [f"rm {entry}", f"write {tmp / 'entry.conf'} {entry}"]
    (tmp / "cmds").write_text("\n".join(cmds) + "\n")
    subprocess.run(["debugfs", "-w", "-f", str(tmp / "cmds"), boot_fs], check=True, capture_output=True)
    return dest


# ---------------------------------------------------------------- boots


@pytest.mark.boot
@pytest.mark.slow
def test_pxe_set_direct_kernel_boot_applies_ignition(
    fixture_mirror: FixtureMirror, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # QEMU segfaults on the first attempt: the runner boots again and the test still passes.
    _crashing_qemu(tmp_path / "bin", crashes=1)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    vm = fixture_mirror.os["x86_64"].direct_boot(tmp_path, ignition=config("pxe-node"), live=True)
    log = boot(vm, timeout=TIMEOUT, log_path=tmp_path / "serial.log")
    r = parse_log(log.text)
    assert_applied(r, "pxe-node", "initrd")
    assert r.arch == "x86_64" and r.release.startswith(fixture_mirror.release)
    assert r.rootfs == {"source": "initrd", "stamp-match": "yes"}
    assert log.reason == "marker:FIXTURE-DONE"
    assert (tmp_path / "bin" / "runs").read_text().count("run") == 2


@pytest.mark.boot
@pytest.mark.slow
def test_live_iso_bios_embedded_ignition(fixture_mirror: FixtureMirror, tmp_path: Path) -> None:
    iso = customize_iso(fixture_mirror.iso, tmp_path / "live.iso", config("iso-bios"))
    log = boot(
        VmConfig(Machine("x86_64", "bios"), cdrom=iso), timeout=TIMEOUT, log_path=tmp_path / "serial.log"
    )
    r = parse_log(log.text)
    assert_applied(r, "iso-bios", "initrd")
    assert r.rootfs == {"source": "iso", "stamp-match": "yes"}
    assert r.karg("coreos.liveiso") == f"fedora-coreos-{fixture_mirror.release}"
    assert r.karg("initrd") == "/images/pxeboot/initrd.img,/images/ignition.img"  # isolinux loaded it


@pytest.mark.boot
@pytest.mark.slow
def test_live_iso_uefi_honours_the_karg_embed_area(fixture_mirror: FixtureMirror, tmp_path: Path) -> None:
    iso = customize_iso(
        fixture_mirror.iso, tmp_path / "live.iso", config("iso-uefi"), "fixture.test=uefi-area"
    )
    log = boot(
        VmConfig(Machine("x86_64", "uefi"), cdrom=iso), timeout=TIMEOUT, log_path=tmp_path / "serial.log"
    )
    r = parse_log(log.text)
    assert_applied(r, "iso-uefi", "initrd")
    assert r.karg("fixture.test") == "uefi-area"
    assert "Welcome to GRUB" in log.text and "ISOLINUX" not in log.text


@pytest.mark.boot
@pytest.mark.slow
def test_metal_x86_64_uefi_config_on_boot_partition_and_edited_bls(
    fixture_mirror: FixtureMirror, tmp_path: Path
) -> None:
    disk = customize_disk(
        fixture_mirror.metal["x86_64"],
        tmp_path / "disk.raw",
        config("metal-x86"),
        tmp_path,
        append_karg="fixture.bls=edited",
    )
    log = boot(
        VmConfig(Machine("x86_64", "uefi"), disks=(disk,)), timeout=TIMEOUT, log_path=tmp_path / "serial.log"
    )
    r = parse_log(log.text)
    assert_applied(r, "metal-x86", "boot")
    assert r.bootdev == "/dev/vda3"
    assert r.karg("fixture.bls") == "edited"
    assert (
        "ignition.firstboot" in r.kargs
    )  # $ignition_firstboot expanded by GRUB from /boot/ignition.firstboot
    assert r.karg("ignition.platform.id") == "metal"
    assert r.rootfs == {}  # not live media


@pytest.mark.boot
@pytest.mark.slow
def test_metal_aarch64_uefi_config_on_boot_partition(fixture_mirror: FixtureMirror, tmp_path: Path) -> None:
    disk = customize_disk(
        fixture_mirror.metal["aarch64"], tmp_path / "disk.raw", config("metal-arm"), tmp_path
    )
    log = boot(
        VmConfig(Machine("aarch64", "uefi"), disks=(disk,)),
        timeout=TIMEOUT,
        log_path=tmp_path / "serial.log",
    )
    r = parse_log(log.text)
    assert_applied(r, "metal-arm", "boot")
    assert r.arch == "aarch64" and r.bootdev == "/dev/vda3"
    assert r.karg("console") == "ttyAMA0,115200n8"


@pytest.mark.boot
@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Unknown ssh-ed25519 host key")
def test_ssh_and_testinfra_into_the_fixture_os(fixture_mirror: FixtureMirror, tmp_path: Path) -> None:
    testinfra = pytest.importorskip("testinfra")
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    pub = (tmp_path / "id_ed25519.pub").read_text().strip()
    # a second key handed over on the kernel command line (fixture.sshkey=<base64>)
    key2 = tmp_path / "id_karg"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key2)], check=True)
    pub2 = base64.b64encode((tmp_path / "id_karg.pub").read_bytes().strip()).decode()
    port = qemu.free_port()
    vm = fixture_mirror.os["x86_64"].direct_boot(
        tmp_path,
        ignition=config("ssh-node", ssh_key=pub),
        kargs=["fixture.ssh=1", f"fixture.sshkey={pub2}"],
        ssh_port=port,
    )
    with running(vm, until=("FIXTURE-SSH-READY",), timeout=TIMEOUT, log_path=tmp_path / "serial.log") as log:
        r = parse_log(log.text)
        assert r.ignition_ok and r.ssh_ready
        assert qemu.wait_for_ssh(port, timeout=120).startswith("SSH-2.0-dropbear")
        host = testinfra.get_host(f"paramiko://core@127.0.0.1:{port}", ssh_identity_file=str(key))
        assert host.run("true").rc == 0
        assert host.file("/etc/hostname").content_string == "ssh-node\n"
        assert host.user().name == "core" and host.user().uid == 1000
        assert host.user("alice").groups == ["alice", "wheel"]
        assert host.file("/etc/secret.conf").mode == 0o600
        assert host.file("/etc/secret.conf").user == "core"
        assert host.run("cat /usr/local/bin/hello").stdout == "echo hi\n"
        other = testinfra.get_host(f"paramiko://core@127.0.0.1:{port}", ssh_identity_file=str(key2))
        assert other.run("id -un").stdout.strip() == "core"


@pytest.mark.boot
@pytest.mark.slow
def test_metal4k_x86_64_boots_with_4096_byte_sectors(fixture_mirror: FixtureMirror, tmp_path: Path) -> None:
    disk = customize_disk(
        fixture_mirror.metal4k["x86_64"], tmp_path / "disk.raw", config("metal-4k"), tmp_path
    )
    vm = VmConfig(Machine("x86_64", "uefi"), disks=(disk,), disk_sector_size=4096)
    assert "logical_block_size=4096" in " ".join(qemu.qemu_command(vm, tmp_path))
    r = parse_log(boot(vm, timeout=TIMEOUT, log_path=tmp_path / "serial.log").text)
    assert_applied(r, "metal-4k", "boot")
    assert r.bootdev == "/dev/vda3"
