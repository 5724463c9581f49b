"""The boot-test harness without a VM: the comparison (owners, units, users, groups, SSH keys), the guest
state script and its parser (run for real with busybox sh on a temporary tree), the JUnit parsing and
the not-applicable rules of the overlay checks, and the site's boot-test key.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from coreos_infra import qemu
from coreos_infra.boottest import checks as overlay_checks
from coreos_infra.boottest import expect, ssh
from coreos_infra.boottest.expect import GuestState, PasswdEntry, compare, expected_state
from coreos_infra.errors import CoreosInfraError, InputError, Location
from coreos_infra.recipes import boottestkey

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOkJ8+Yp7M2k1W3cT0sQwL5G6fVd3Xq9Rb1Zx2Ny4aPu a@b"
OTHER = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHTRs8w9glfUR4s2FcO1FlJ4EQhxjFz2QgwUlM1cjbUj c@d"

CONFIG = {
    "ignition": {"version": "3.4.0"},
    "passwd": {
        "users": [
            {"name": "core", "sshAuthorizedKeys": [KEY], "groups": ["wheel"]},
            {"name": "svc", "uid": 1500, "groups": ["ops"]},
        ],
        "groups": [{"name": "ops", "gid": 2000}, {"name": "extra"}],
    },
    "storage": {
        "files": [
            {"path": "/etc/a", "mode": 0o600, "user": {"name": "svc"}, "group": {"name": "ops"},
             "contents": {"source": "data:,alpha"}},
            {"path": "/etc/b", "user": {"id": 1500}, "contents": {"source": "data:,beta"}},
        ],
        "directories": [{"path": "/var/lib/svc", "mode": 0o750, "user": {"name": "svc"}}],
        "links": [{"path": "/etc/l", "target": "/etc/a"}],
    },
    "systemd": {
        "units": [
            {"name": "on.service", "enabled": True, "contents": "[Service]\n"},
            {"name": "off.service", "enabled": False},
            {"name": "gone.service", "mask": True},
        ]
    },
}  # fmt: skip


def sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def good_state() -> GuestState:
    st = GuestState(source="ssh")
    st.passwd = {"root": PasswdEntry(0, 0, "/root"), "core": PasswdEntry(1000, 1000, "/home/core"),
                 "svc": PasswdEntry(1500, 1500, "/home/svc")}  # fmt: skip
    st.groups = {"root": (0, ()), "wheel": (10, ("core",)), "ops": (2000, ("svc",)), "extra": (2001, ())}
    st.files = {
        "/etc/a": (0o100600, 1500, 2000, sha(b"alpha")),
        "/etc/b": (0o644, 1500, 0, sha(b"beta")),
        "/etc/systemd/system/on.service": (0o644, 0, 0, sha(b"[Service]\n")),
    }
    st.dirs = {"/var/lib/svc": (0o750, 1500, 0)}
    st.links = {"/etc/l": ("/etc/a", 0, 0), "/etc/systemd/system/gone.service": ("/dev/null", 0, 0)}
    st.unit_states = {"on.service": "enabled", "off.service": "disabled", "gone.service": "masked"}
    st.presets = "enable on.service\ndisable off.service\n"
    st.ssh_keys = {"core": (KEY,)}
    return st


def test_a_system_that_applied_the_config_passes_every_check() -> None:
    passed, failed = compare(expected_state(CONFIG), good_state())
    assert failed == []
    assert "file /etc/a owned by svc:ops (uid 1500 gid 2000; got 1500:2000)" in passed
    assert "file /etc/b owned by 1500:root (uid 1500 gid 0; got 1500:0)" in passed
    assert "unit on.service is enabled (systemctl is-enabled: enabled)" in passed
    assert "unit gone.service is masked (systemctl is-enabled: masked)" in passed
    assert (
        "unit off.service: 'disable off.service' in /etc/systemd/system-preset/20-ignition.preset" in passed
    )
    assert "user svc has uid 1500 (got 1500)" in passed and "user core is in group wheel" in passed
    assert "group ops exists with gid 2000" in passed and "group extra exists" in passed
    assert any(p.startswith("user core accepts SSH key ssh-ed25519") for p in passed)


def test_wrong_owner_unit_state_groups_and_keys_fail() -> None:
    st = good_state()
    st.files["/etc/a"] = (0o600, 1000, 2000, sha(b"alpha"))  # owned by core
    st.dirs["/var/lib/svc"] = (0o750, 0, 0)
    st.unit_states = {"on.service": "disabled", "off.service": "disabled"}  # no masked state
    st.groups["ops"] = (2002, ())  # wrong gid, svc not a member
    st.ssh_keys = {"core": (OTHER,)}
    del st.groups["extra"]
    _, failed = compare(expected_state(CONFIG), st)
    assert set(failed) == {
        "file /etc/a owned by svc:ops (uid 1500 gid 2002; got 1000:2000)",
        "directory /var/lib/svc owned by svc:root (uid 1500 gid 0; got 0:0)",
        "unit on.service is enabled (systemctl is-enabled: disabled)",
        "unit gone.service is masked (systemctl is-enabled: not reported)",
        "group ops exists with gid 2000",
        "group extra exists",
        "user svc is in group ops",
        f"user core accepts SSH key ssh-ed25519 {KEY.split()[1][-12:]}...",
    }


def test_owner_names_unknown_to_the_guest_and_missing_keys_file_fail() -> None:
    st = good_state()
    del st.passwd["svc"]
    st.ssh_keys = {}
    _, failed = compare(expected_state(CONFIG), st)
    assert "file /etc/a owned by svc:ops (unknown user svc on the guest)" in failed
    assert "user svc exists" in failed
    assert "user core has Ignition's authorized_keys.d/ignition" in failed


def test_without_systemd_units_are_checked_in_ignitions_preset_file() -> None:
    st = good_state()
    st.unit_states = None  # the busybox fixture OS
    st.presets = "enable on.service\n"
    passed, failed = compare(expected_state(CONFIG), st)
    assert failed == [
        "unit off.service: 'disable off.service' in /etc/systemd/system-preset/20-ignition.preset"
    ]
    assert not any("is-enabled" in p for p in passed)


def test_serial_report_gives_the_same_state() -> None:
    passwd = b"root:x:0:0:root:/root:/bin/sh\ncore:x:1000:1000::/home/core:/bin/bash\n"
    group = b"root:x:0:\nwheel:x:10:core\n"
    keys = (KEY + "\n").encode()
    log = "FIXTURE-BOOT-OK arch=x86_64\nFIXTURE-IGNITION-OK platform=metal\n"
    for path, data, uid in (("/etc/passwd", passwd, 0), ("/etc/group", group, 0),
                            ("/home/core/.ssh/authorized_keys.d/ignition", keys, 1000)):  # fmt: skip
        import base64

        log += f"FIXTURE-FILE {path} mode=0600 uid={uid} gid={uid} size={len(data)} sha256={sha(data)}\n"
        log += f"FIXTURE-CONTENT-BEGIN {path}\n{base64.b64encode(data).decode()}\nFIXTURE-CONTENT-END\n"
    st = GuestState.from_serial(qemu.parse_log(log))
    assert st.passwd["core"] == PasswdEntry(1000, 1000, "/home/core")
    assert st.groups["wheel"] == (10, ("core",)) and st.ssh_keys == {"core": (KEY,)}
    assert st.files["/etc/passwd"][:3] == (0o600, 0, 0)
    core = {"name": "core", "sshAuthorizedKeys": [KEY], "groups": ["wheel"]}
    passed, failed = compare(expected_state({"passwd": {"users": [core]}}), qemu.parse_log(log))
    assert failed == [] and passed[:2] == ["system booted", "Ignition succeeded"]


@pytest.mark.parametrize(
    ("line", "ok"),
    [
        ("FIXTURE-ROOTFS source=iso stamp-match=yes", True),
        ("FIXTURE-ROOTFS source=missing stamp-match=no", False),  # the live initramfs found no rootfs
        ("FIXTURE-ROOTFS source=url stamp-match=no", False),  # a rootfs of another build
    ],
)
def test_live_media_must_load_their_own_rootfs(line: str, ok: bool) -> None:
    log = f"FIXTURE-BOOT-OK arch=x86_64\n{line}\nFIXTURE-IGNITION-OK platform=metal\nFIXTURE-DONE\n"
    passed, failed = compare(expected_state({}), qemu.parse_log(log))
    rootfs = [c for c in passed + failed if c.startswith("live rootfs loaded")]
    assert len(rootfs) == 1 and (rootfs[0] in passed) == ok, (passed, failed)
    # not live media: no rootfs line, no check
    assert not [c for c in compare(expected_state({}), qemu.parse_log("FIXTURE-BOOT-OK\n"))[0]
                if c.startswith("live rootfs")]  # fmt: skip


def test_state_script_reads_a_tree_with_busybox_sh(tmp_path: Path) -> None:
    busybox = shutil.which("busybox")
    if busybox is None:
        pytest.skip("busybox (busybox-static) is not installed")
    root = tmp_path
    (root / "etc").mkdir()
    (root / "etc" / "with space").write_text("alpha")
    (root / "etc" / "with space").chmod(0o640)
    (root / "etc" / "l").symlink_to("with space")
    (root / "d").mkdir(mode=0o750)
    (root / "d").chmod(0o750)
    home = root / "home" / "core" / ".ssh" / "authorized_keys.d"
    home.mkdir(parents=True)
    (home / "ignition").write_text(f"# comment\n{KEY}\n{OTHER}")  # no final newline
    (root / "passwd").write_text(f"core:x:1000:1000::{root}/home/core:/bin/sh\n")
    (root / "preset").write_text("enable on.service\n")
    config = {
        "passwd": {"users": [{"name": "core", "sshAuthorizedKeys": [KEY]}]},
        "storage": {
            "files": [{"path": f"{root}/etc/with space", "contents": {"source": "data:,alpha"}},
                      {"path": f"{root}/missing"}],
            "directories": [{"path": f"{root}/d", "mode": 0o750}],
            "links": [{"path": f"{root}/etc/l", "target": "with space"}],
        },
        "systemd": {"units": [{"name": "on.service", "enabled": True}]},
    }  # fmt: skip
    script = ssh.collect_script(expected_state(config))
    script = script.replace("/etc/passwd", str(root / "passwd")).replace(
        expect.PRESET_FILE, str(root / "preset")
    )
    out = subprocess.run([busybox, "sh", "-c", script], capture_output=True, text=True, check=True).stdout
    st = ssh.parse_state(out)
    uid, gid = (root / "d").stat().st_uid, (root / "d").stat().st_gid
    assert st.files == {f"{root}/etc/with space": (0o640, uid, gid, sha(b"alpha"))}
    assert st.dirs == {f"{root}/d": (0o750, uid, gid)}
    assert st.links == {f"{root}/etc/l": ("with space", uid, gid)}
    assert st.ssh_keys == {"core": (KEY, OTHER)}
    assert st.passwd["core"].uid == 1000 and st.presets == "enable on.service\n"
    assert st.unit_states is None or "on.service" in st.unit_states  # is-enabled only where systemd runs
    assert st.source == "ssh"


def test_missing_content_over_ssh_is_taken_from_the_serial_report() -> None:
    over_ssh = GuestState(source="ssh", files={"/etc/k": (0o600, 0, 0, None)})
    serial = GuestState(files={"/etc/k": (0o600, 0, 0, "abc")}, ssh_keys={"alice": (KEY,)}, presets="x\n")
    merged = ssh.merge_serial(over_ssh, serial)
    assert (
        merged.files["/etc/k"][3] == "abc"
        and merged.ssh_keys == {"alice": (KEY,)}
        and merged.presets == "x\n"
    )


def test_forward_to_a_static_address_with_the_hosts_mac() -> None:
    vm = qemu.VmConfig(qemu.Machine("x86_64", "uefi"), disks=(Path("/d.raw"),))
    plain, ports = ssh.forward(vm)
    assert plain.ssh_port == ports[""]
    fwd, ports = ssh.forward(vm, mac="52:54:00:4c:00:11", guest_addr="10.0.2.11")
    netdev = fwd.extra_args[fwd.extra_args.index("-netdev") + 1]
    assert f"hostfwd=tcp:127.0.0.1:{ports['10.0.2.11']}-10.0.2.11:22" in netdev
    assert f"hostfwd=tcp:127.0.0.1:{ports['']}-:22" in netdev
    assert "mac=52:54:00:4c:00:11" in fwd.extra_args[-1] and fwd.ssh_port is None
    with pytest.raises(CoreosInfraError):
        ssh.forward(plain, guest_addr="10.0.2.11")


JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" errors="1" failures="1" skipped="3" tests="6">
<testcase classname="checks" name="test_build_json_present[paramiko://core@127.0.0.1:2222]"
  file="../../work/overlays/base/checks.py" line="17" time="0.5"/>
<testcase classname="checks" name="test_chronyd_active[paramiko://core@127.0.0.1:2222]"
  file="/p/overlays/ntp/checks.py" line="15" time="0.2">
  <failure message="AssertionError: assert False">trace</failure></testcase>
<testcase classname="checks" name="test_coredns_active[paramiko://core@127.0.0.1:2222]"
  file="/p/overlays/dns/checks.py" line="40" time="0">
  <skipped type="pytest.skip"
    message="not applicable: needs container images pulled from registries">x</skipped>
</testcase>
<testcase classname="checks" name="test_other[h]" file="/p/overlays/dns/checks.py" line="9" time="0">
  <skipped type="pytest.skip" message="no zones">x</skipped></testcase>
<testcase classname="checks" name="test_x[h]" file="/p/overlays/base/checks.py" line="9" time="0">
  <error message="failed on setup with &quot;socket.timeout&quot;">e</error></testcase>
<testcase classname="overlays.ntp.checks" name="test_serves_ntp" time="0"/>
</testsuite></testsuites>
"""


def test_junit_report_counts_each_check() -> None:
    r = overlay_checks.parse_junit(JUNIT)
    assert r.passed == ["base::test_build_json_present", "ntp::test_serves_ntp"]
    assert r.failed == ["ntp::test_chronyd_active: AssertionError: assert False",
                        'base::test_x: failed on setup with "socket.timeout"']  # fmt: skip
    assert r.not_applicable == [
        "dns::test_coredns_active: needs container images pulled from registries",
        "dns::test_other: skipped: no zones",
    ]


def test_not_applicable_markers_per_os(tmp_path: Path) -> None:
    """The plugin skips by marker with the OS's reason; unmarked and other checks run (local backend)."""
    pytest.importorskip("testinfra")
    f = tmp_path / "demo" / "checks.py"
    f.parent.mkdir()
    f.write_text(
        textwrap.dedent("""\
        import pytest

        def test_files(host):
            assert host.file("/").is_directory

        @pytest.mark.running
        def test_running(host):
            assert True

        @pytest.mark.running
        @pytest.mark.registry
        def test_pull(host):
            assert False, "must not run offline"
        """)
    )
    key = tmp_path / "unused-key"
    key.write_text("")
    busybox = overlay_checks.run_checks([f], host="local://", identity=key, os_kind="busybox")
    assert busybox.passed == ["demo::test_files"]
    registry = overlay_checks.NOT_APPLICABLE["busybox"]["registry"]
    assert busybox.not_applicable == [
        "demo::test_running: the busybox fixture OS has no systemd (files only)",
        f"demo::test_pull: {registry}",
    ]
    systemd = overlay_checks.run_checks([f], host="local://", identity=key, os_kind="systemd")
    assert systemd.passed == ["demo::test_files", "demo::test_running"] and len(systemd.not_applicable) == 1
    fcos = overlay_checks.run_checks([f], host="local://", identity=key, os_kind="fcos")
    assert fcos.failed and fcos.failed[0].startswith("demo::test_pull: AssertionError: must not run offline")
    assert fcos.not_applicable == []


def test_overlay_checks_needing_registries_or_podman_are_marked() -> None:
    root = Path(__file__).parents[1] / "overlays"
    text = {p.parent.name: p.read_text() for p in root.glob("*/checks.py")}
    assert "@pytest.mark.registry\ndef test_coredns_active" in text["dns"]
    assert "@pytest.mark.podman\ndef test_podman_auto_update_timer" in text["base"]
    assert "registry" not in text["ntp"] and "registry" not in text["network"]  # these run on the fixture


# ------------------------------------------------------------------------------ the boot-test key
def test_site_key_is_checked_with_located_errors(tmp_path: Path) -> None:
    where = Location("recipes/sites/s.yaml", "boot_test.ssh_key", 3, 12)
    with pytest.raises(InputError, match=r"s\.yaml:3:12.*No such file"):
        boottestkey.site_key(tmp_path / "nope", where)
    key = tmp_path / "k"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    key.chmod(0o644)
    with pytest.raises(InputError, match="mode 0644"):
        boottestkey.site_key(key, where)
    key.chmod(0o600)
    good = boottestkey.site_key(key, where)
    assert (
        good.public.startswith("ssh-ed25519 AAAA")
        and good.public.split()[1] in (tmp_path / "k.pub").read_text()
    )
    bad = tmp_path / "bad"
    bad.write_text("ssh-ed25519 AAAA not a private key\n")
    bad.chmod(0o600)
    with pytest.raises(InputError, match="is not an SSH private key"):
        boottestkey.site_key(bad, where)


def test_throwaway_key_is_made_once_private_and_reused(tmp_path: Path) -> None:
    first = boottestkey.throwaway_key("lab", tmp_path / "keys")
    assert first.generated and first.private == tmp_path / "keys" / "lab-boot-test"
    assert first.private.stat().st_mode & 0o777 == 0o600
    assert boottestkey.throwaway_key("lab", tmp_path / "keys") == first
    assert sorted(p.name for p in (tmp_path / "keys").iterdir()) == ["lab-boot-test"]  # no .pub, no temp


def test_site_boot_test_key_is_in_every_render(tmp_path: Path) -> None:
    from coreos_infra.recipes import load_project, render

    root = Path(__file__).parents[1]
    project_root = tmp_path / "p"
    shutil.copytree(root / "recipes", project_root / "recipes")
    shutil.copytree(root / "overlays", project_root / "overlays")
    key = project_root / "recipes" / "sites" / "boot-test-key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    site = project_root / "recipes" / "sites" / "lab.yaml"
    site.write_text(site.read_text() + "\nboot_test:\n  ssh_key: boot-test-key\n")
    project = load_project(project_root)
    assert project.sites["lab"].boot_test_key is not None
    public = project.sites["lab"].boot_test_key.public
    cfg = json.loads(render(project, target="metal", site="lab", host="dns1").ignition)
    core = next(u for u in cfg["passwd"]["users"] if u["name"] == "core")
    assert public in core["sshAuthorizedKeys"] and len(core["sshAuthorizedKeys"]) == 2
    site.write_text(site.read_text().replace("ssh_key: boot-test-key", "ssh_key: missing-key"))
    located = r"lab\.yaml:\d+:\d+: boot_test\.ssh_key: boot-test SSH key .*missing-key"
    with pytest.raises(InputError, match=located):
        load_project(project_root)
