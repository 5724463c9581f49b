"""testinfra checks for the dhcp overlay (ISC Kea quadlet); run against any booted DHCP host.

Unmarked checks need only the files Ignition wrote; ``running`` ones need the running FCOS system.
"""

import json

import pytest


def test_config_present(host):
    config = json.loads(host.file("/etc/kea/kea-dhcp4.conf").content_string)
    assert config["Dhcp4"]["subnet4"]


def test_quadlets_present(host):
    assert "\nImage=" in host.file("/etc/containers/systemd/kea-dhcp4.container").content_string
    assert host.file("/etc/containers/systemd/kea-leases.volume").exists


@pytest.mark.running
@pytest.mark.registry
def test_kea_active(host):
    assert host.service("kea-dhcp4").is_running


@pytest.mark.running
@pytest.mark.registry
def test_config_valid(host):
    out = host.run("sudo podman exec kea-dhcp4 kea-dhcp4 -t /etc/kea/kea-dhcp4.conf")
    assert out.rc == 0, out.stderr


@pytest.mark.running
@pytest.mark.registry
def test_listens_on_dhcp_port(host):
    assert host.socket("udp://0.0.0.0:67").is_listening


@pytest.mark.running
@pytest.mark.podman
def test_lease_volume(host):
    assert host.run("sudo podman volume exists kea-leases").rc == 0
