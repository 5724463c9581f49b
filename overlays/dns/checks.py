"""testinfra checks for the dns overlay (CoreDNS quadlet); run against any booted DNS host.

Unmarked checks need only the files Ignition wrote; ``running`` ones need the running FCOS system.
"""

import json

import pytest


def facts(host):
    return json.loads(host.file("/etc/coreos-infra/build.json").content_string)


def test_config_present(host):
    corefile = host.file("/etc/coredns/Corefile")
    assert corefile.exists
    for zone in facts(host)["zones"]:
        assert f"{zone}:53" in corefile.content_string
        assert host.file(f"/etc/coredns/zones/db.{zone}").exists


def test_binds_lan_address_only(host):
    address = facts(host)["host"]["address"]
    binds = {line.split()[1] for line in host.file("/etc/coredns/Corefile").content_string.splitlines()
             if line.strip().startswith("bind ")}  # fmt: skip
    assert binds == {address}  # never 127.0.0.53: systemd-resolved keeps its stub listener


def test_quadlet_present(host):
    quadlet = host.file("/etc/containers/systemd/coredns.container").content_string
    assert "\nImage=" in quadlet and "\nNetwork=host\n" in quadlet


@pytest.mark.running
@pytest.mark.registry
def test_coredns_active(host):
    assert host.service("coredns").is_running


@pytest.mark.running
@pytest.mark.registry
def test_listens_on_lan_address(host):
    address = facts(host)["host"]["address"]
    assert host.socket(f"udp://{address}:53").is_listening
    assert host.socket(f"tcp://{address}:53").is_listening


@pytest.mark.running
def test_resolved_stub_untouched(host):
    assert host.service("systemd-resolved").is_running
    assert host.socket("udp://127.0.0.53:53").is_listening


@pytest.mark.running
@pytest.mark.registry
def test_health_endpoint(host):
    out = host.run("curl -fsS http://127.0.0.1:8080/health")
    assert out.rc == 0 and "OK" in out.stdout


@pytest.mark.running
@pytest.mark.registry
def test_answers_site_names(host):
    f = facts(host)
    out = host.run(f"getent hosts {f['host']['fqdn']}")
    assert f["host"]["address"] in out.stdout
