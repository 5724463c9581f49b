"""testinfra checks for the ntp overlay (host chronyd serving the site); run against any NTP host.

Unmarked checks need only the files Ignition wrote; ``running`` ones need the running FCOS system.
"""

import pytest


def test_config_replaced(host):
    conf = host.file("/etc/chrony.conf").content_string
    assert "Managed by coreos-infra (overlay ntp)" in conf
    assert "\nallow " in conf


@pytest.mark.running
def test_chronyd_active(host):
    assert host.service("chronyd").is_running


@pytest.mark.running
def test_serves_ntp(host):
    assert host.socket("udp://0.0.0.0:123").is_listening or host.socket("udp://:::123").is_listening


@pytest.mark.running
def test_chronyc_tracking(host):
    out = host.run("chronyc -n tracking")
    assert out.rc == 0 and "Stratum" in out.stdout
