"""testinfra checks for the dns overlay (CoreDNS quadlet); run against any booted DNS host."""

import json


def facts(host):
    return json.loads(host.file("/etc/coreos-infra/build.json").content_string)


def test_coredns_active(host):
    assert host.service("coredns").is_running


def test_config_present(host):
    corefile = host.file("/etc/coredns/Corefile")
    assert corefile.exists
    for zone in facts(host)["zones"]:
        assert f"{zone}:53" in corefile.content_string
        assert host.file(f"/etc/coredns/zones/db.{zone}").exists


def test_listens_on_lan_address_only(host):
    address = facts(host)["host"]["address"]
    assert host.socket(f"udp://{address}:53").is_listening
    assert host.socket(f"tcp://{address}:53").is_listening


def test_resolved_stub_untouched(host):
    # systemd-resolved keeps its stub listener; CoreDNS did not take it over.
    assert host.service("systemd-resolved").is_running
    assert host.socket("udp://127.0.0.53:53").is_listening


def test_health_endpoint(host):
    out = host.run("curl -fsS http://127.0.0.1:8080/health")
    assert out.rc == 0 and "OK" in out.stdout


def test_answers_site_names(host):
    f = facts(host)
    name = f"{f['host']['name']}.{f['domain']}"
    out = host.run(f"getent hosts {name}")
    assert f["host"]["address"] in out.stdout
