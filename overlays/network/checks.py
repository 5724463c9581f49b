"""testinfra checks for the network overlay; run against any booted host built with it.

Unmarked checks need only the files Ignition wrote; ``running`` ones need the running FCOS system.
"""

import json

import pytest


def facts(host):
    return json.loads(host.file("/etc/coreos-infra/build.json").content_string)


def test_keyfile_for_static_hosts(host):
    h = facts(host)["host"]
    if h is None or h["address"] is None:
        return  # DHCP: FCOS's default, nothing of ours
    with host.sudo():
        keyfile = host.file(f"/etc/NetworkManager/system-connections/{h['network']}.nmconnection")
        assert keyfile.exists and keyfile.mode == 0o600
        assert f"address1={h['address']}/{h['prefix']}" in keyfile.content_string


@pytest.mark.running
def test_static_address(host):
    h = facts(host)["host"]
    if h is None or h["address"] is None:
        return
    assert f"{h['address']}/{h['prefix']}" in host.run("ip -4 -o addr show").stdout


@pytest.mark.running
def test_default_route(host):
    assert "default" in host.run("ip -4 route show default").stdout
