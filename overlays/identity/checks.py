"""testinfra checks for the identity overlay (FreeIPA server container); run against an identity host.

The first start runs ipa-server-install (many minutes); run these after the unit has finished starting.
"""

import json


def facts(host):
    return json.loads(host.file("/etc/coreos-infra/build.json").content_string)


def test_password_file_private(host):
    f = host.file("/etc/freeipa/freeipa.env")
    assert f.exists and f.mode == 0o600 and f.user == "root"


def test_freeipa_running(host):
    assert host.service("freeipa").is_running


def test_ldap_and_kerberos_ports(host):
    address = facts(host)["host"]["address"]
    for port in (389, 636, 88, 443):
        assert host.socket(f"tcp://{address}:{port}").is_listening
