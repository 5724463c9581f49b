"""testinfra checks for the identity overlay (FreeIPA server container); run against an identity host.

Unmarked checks need only the files Ignition wrote; ``running`` ones need the running FCOS system. The
first start runs ipa-server-install (many minutes): run the ``running`` checks after the unit started.
"""

import json

import pytest


def facts(host):
    return json.loads(host.file("/etc/coreos-infra/build.json").content_string)


def test_quadlet_present(host):
    quadlet = host.file("/etc/containers/systemd/freeipa.container").content_string
    assert "\nTimeoutStartSec=" in quadlet and "\nEnvironmentFile=/etc/freeipa/freeipa.env\n" in quadlet
    assert host.file("/etc/containers/systemd/freeipa-data.volume").exists


@pytest.mark.running
def test_password_file_private(host):
    with host.sudo():
        f = host.file("/etc/freeipa/freeipa.env")
        assert f.exists and f.mode == 0o600 and f.user == "root"


@pytest.mark.running
@pytest.mark.registry
def test_freeipa_running(host):
    assert host.service("freeipa").is_running


@pytest.mark.running
@pytest.mark.registry
def test_ldap_and_kerberos_ports(host):
    address = facts(host)["host"]["address"]
    for port in (389, 636, 88, 443):
        assert host.socket(f"tcp://{address}:{port}").is_listening
