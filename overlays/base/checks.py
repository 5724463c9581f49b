"""testinfra checks for the base overlay; run against any booted host built with it.

Unmarked checks need only the files Ignition wrote (they pass on the offline fixture OS too); checks
marked ``running`` need the running FCOS system (systemd, podman, sudo). Facts about the build come from
the host itself: /etc/coreos-infra/build.json, written by this overlay.
"""

import json

import pytest


def facts(host):
    return json.loads(host.file("/etc/coreos-infra/build.json").content_string)


def test_build_json_present(host):
    f = facts(host)
    assert len(f["build_id"]) == 64
    assert "base" in f["overlays"]


def test_hostname_file(host):
    f = facts(host)
    if f["host"] is not None:
        assert host.file("/etc/hostname").content_string.strip() == f["host"]["name"]


def test_core_ssh_key_installed(host):
    keys = host.file("/home/core/.ssh/authorized_keys.d/ignition")
    assert keys.exists
    assert any(
        line.split()[0].startswith(("ssh-", "ecdsa-", "sk-")) for line in keys.content_string.splitlines()
    )


def test_zincati_strategy(host):
    f = facts(host)
    conf = host.file("/etc/zincati/config.d/55-updates-strategy.toml")
    assert conf.exists
    assert f'strategy = "{f["update_strategy"]}"' in conf.content_string
    if f["update_strategy"] == "periodic":
        assert "[[updates.periodic.window]]" in conf.content_string


def test_timezone_link(host):
    assert host.file("/etc/localtime").is_symlink
    target = host.check_output("readlink /etc/localtime")
    assert target == f"../usr/share/zoneinfo/{facts(host)['timezone']}"


def test_journald_limits(host):
    assert "SystemMaxUse=" in host.file("/etc/systemd/journald.conf.d/50-coreos-infra.conf").content_string


def test_sysctl_file(host):
    assert "kernel.panic = " in host.file("/etc/sysctl.d/50-coreos-infra.conf").content_string


@pytest.mark.running
def test_system_running(host):
    state = host.run("systemctl is-system-running --wait").stdout.strip()
    assert state == "running", host.run("systemctl --failed --no-legend").stdout


@pytest.mark.running
def test_hostname_applied(host):
    f = facts(host)
    if f["host"] is not None:
        assert host.run("hostname").stdout.strip().split(".")[0] == f["host"]["name"]


@pytest.mark.running
def test_no_password_set(host):
    # No account may have a usable password unless the site set a hash explicitly (none do by default).
    with host.sudo():
        shadow = host.file("/etc/shadow").content_string
    for line in shadow.splitlines():
        user, pw = line.split(":")[:2]
        assert not pw.startswith("$"), f"{user} has a password hash"


@pytest.mark.running
def test_sysctl_applied(host):
    assert host.run("sysctl -n kernel.panic").stdout.strip() != "0"


@pytest.mark.running
@pytest.mark.podman
def test_podman_auto_update_timer(host):
    if facts(host)["container_auto_update"]:
        assert host.service("podman-auto-update.timer").is_enabled
