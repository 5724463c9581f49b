"""testinfra checks for the monitoring overlay (node-exporter, Prometheus on monitoring hosts)."""

import json


def facts(host):
    return json.loads(host.file("/etc/coreos-infra/build.json").content_string)


def test_node_exporter(host):
    if not host.file("/etc/containers/systemd/node-exporter.container").exists:
        return  # the site turned node-exporter off
    assert host.service("node-exporter").is_running
    out = host.run("curl -fsS http://127.0.0.1:9100/metrics")
    assert out.rc == 0 and "node_uname_info" in out.stdout


def test_prometheus_on_monitoring_hosts(host):
    h = facts(host)["host"]
    if h is None or "monitoring" not in h["roles"]:
        return
    assert host.service("prometheus").is_running
    assert host.run("curl -fsS http://127.0.0.1:9090/-/healthy").rc == 0
