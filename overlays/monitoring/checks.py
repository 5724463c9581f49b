"""testinfra checks for the monitoring overlay (node-exporter, Prometheus on monitoring hosts).

Unmarked checks need only the files Ignition wrote; ``running`` ones need the running FCOS system.
"""

import json

import pytest

NODE_EXPORTER = "/etc/containers/systemd/node-exporter.container"


def facts(host):
    return json.loads(host.file("/etc/coreos-infra/build.json").content_string)


def _prometheus_host(host):
    h = facts(host)["host"]
    return h is not None and "monitoring" in h["roles"]


def test_quadlets_present(host):
    if host.file(NODE_EXPORTER).exists:
        assert "--path.rootfs=/host" in host.file(NODE_EXPORTER).content_string
    if _prometheus_host(host):
        assert host.file("/etc/prometheus/prometheus.yml").exists
        assert host.file("/etc/containers/systemd/prometheus.container").exists


@pytest.mark.running
@pytest.mark.registry
def test_node_exporter(host):
    if not host.file(NODE_EXPORTER).exists:
        return  # the site turned node-exporter off
    assert host.service("node-exporter").is_running
    out = host.run("curl -fsS http://127.0.0.1:9100/metrics")
    assert out.rc == 0 and "node_uname_info" in out.stdout


@pytest.mark.running
@pytest.mark.registry
def test_prometheus_on_monitoring_hosts(host):
    if not _prometheus_host(host):
        return
    assert host.service("prometheus").is_running
    assert host.run("curl -fsS http://127.0.0.1:9090/-/healthy").rc == 0
