"""testinfra checks for the dhcp overlay (ISC Kea quadlet); run against any booted DHCP host."""


def test_kea_active(host):
    assert host.service("kea-dhcp4").is_running


def test_config_present_and_valid(host):
    assert host.file("/etc/kea/kea-dhcp4.conf").exists
    out = host.run("sudo podman exec kea-dhcp4 kea-dhcp4 -t /etc/kea/kea-dhcp4.conf")
    assert out.rc == 0, out.stderr


def test_listens_on_dhcp_port(host):
    assert host.socket("udp://0.0.0.0:67").is_listening


def test_lease_volume(host):
    assert host.run("sudo podman volume exists kea-leases").rc == 0
