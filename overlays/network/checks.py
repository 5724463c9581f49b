"""testinfra checks for the network overlay; run against any booted host built with it.

Unmarked checks need only the files Ignition wrote; ``running`` ones need the running FCOS system.
"""

import contextlib
import json

import pytest


def facts(host):
    return json.loads(host.file("/etc/coreos-infra/build.json").content_string)


def _root(host):
    """sudo where there is one (FCOS); the offline fixture OS has none, and its directories are 0755."""
    return host.sudo() if host.exists("sudo") else contextlib.nullcontext()


def _keyfile(host, h):
    return host.file(f"/etc/NetworkManager/system-connections/{h['network']}.nmconnection")


def test_keyfile_for_static_hosts(host):
    h = facts(host)["host"]
    if h is None or h["address"] is None:
        return  # DHCP: FCOS's default, nothing of ours
    with _root(host):
        keyfile = _keyfile(host, h)
        assert keyfile.exists and keyfile.mode == 0o600 and keyfile.user == "root"


@pytest.mark.running
def test_keyfile_contents(host):
    h = facts(host)["host"]
    if h is None or h["address"] is None:
        return
    with host.sudo():
        assert f"address1={h['address']}/{h['prefix']}" in _keyfile(host, h).content_string


@pytest.mark.running
def test_static_address(host):
    h = facts(host)["host"]
    if h is None or h["address"] is None:
        return
    assert f"{h['address']}/{h['prefix']}" in host.run("ip -4 -o addr show").stdout


@pytest.mark.running
def test_default_route(host):
    assert "default" in host.run("ip -4 route show default").stdout
