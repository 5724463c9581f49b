"""testinfra checks for the network overlay; run against any booted host built with it."""

import json


def facts(host):
    return json.loads(host.file("/etc/coreos-infra/build.json").content_string)


def test_static_address(host):
    h = facts(host)["host"]
    if h is None or h["address"] is None:
        return  # DHCP: nothing of ours to check
    out = host.run("ip -4 -o addr show").stdout
    assert f"{h['address']}/{h['prefix']}" in out


def test_keyfile_private(host):
    h = facts(host)["host"]
    if h is None or h["address"] is None:
        return
    files = host.run("sudo ls /etc/NetworkManager/system-connections/").stdout.split()
    ours = [f for f in files if f.endswith(".nmconnection")]
    assert ours
    for name in ours:
        assert host.file(f"/etc/NetworkManager/system-connections/{name}").mode == 0o600


def test_default_route(host):
    assert "default" in host.run("ip -4 route show default").stdout
