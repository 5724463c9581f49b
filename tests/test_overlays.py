"""The shipped service overlays: metadata, pinned images, no default password, quadlet hygiene, variants of
the site (auto-update off, fleet_lock, monitoring host, richer DHCP), and the testinfra checks."""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType

import pytest
from recipes_testlib import REPO, SITE, ign_files, ign_text, make_project

from coreos_infra.recipes import checks as value_checks
from coreos_infra.recipes import load_project, render
from coreos_infra.recipes.yamlsrc import parse_yaml
from coreos_infra.run import find_binary, run

PROJECT = load_project(REPO)
KEA_CONF = "/etc/kea/kea-dhcp4.conf"
OVERLAYS = sorted(PROJECT.overlays)


@pytest.mark.parametrize("name", OVERLAYS)
def test_overlay_metadata(name):
    o = PROJECT.overlay(name)
    assert len(o.description) > 40
    for v in o.variables:
        assert v.doc.strip(), f"{name}.{v.name} has no doc"
        if v.type == "image":
            value_checks.image(parse_yaml(json.dumps(v.default), "default"))  # pinned by tag, not latest
            assert ":" in v.default.rsplit("/", 1)[1]
    assert o.checks is not None and o.checks.is_file()


def test_role_overlays():
    roles = {name: PROJECT.overlay(name).roles for name in OVERLAYS}
    assert roles == {
        "base": (),
        "network": (),
        "dns": ("dns",),
        "ntp": ("ntp",),
        "dhcp": ("dhcp",),
        "monitoring": ("monitoring",),
        "identity": ("identity",),
    }


def test_no_default_password_anywhere():
    for path in (REPO / "overlays").rglob("*"):
        if not path.is_file() or path.suffix == ".pyc":
            continue
        text = path.read_text()
        if "password_hash" in text:
            # only the base template, and only inside a guard on the site's own value
            assert path.name == "butane.yaml.j2" and path.parent.name == "base", path
            assert "{% if admin.password_hash %}" in text
        assert not re.search(r"\$(6|y|2b)\$", text), f"{path} contains a crypt hash"


def _quadlets(ign: bytes) -> dict[str, str]:
    return {
        path: f["data"].decode()
        for path, f in ign_files(ign).items()
        if path.startswith("/etc/containers/systemd/")
    }


def _parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for line in text.splitlines():
        if not line.strip() or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            assert line.endswith("]"), line
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"key outside a section: {line}"
        key, sep, value = line.partition("=")
        assert sep and key and key == key.strip(), f"not a key=value line: {line!r}"
        current.setdefault(key, []).append(value)
    return sections


IDENTITY_SITE = (
    SITE.replace(
        'roles: [dns]\n    mac: "52:54:00:00:00:02"', 'roles: [identity]\n    mac: "52:54:00:00:00:02"'
    )
    + "identity:\n  realm: T.EXAMPLE\n  admin_password_file: pw.txt\n"
)
MONITORING_SITE = SITE + (
    '  - name: mon\n    roles: [monitoring]\n    mac: "52:54:00:00:00:05"\n    address: 10.1.0.20\n'
)


@pytest.fixture(scope="module")
def all_quadlets(tmp_path_factory):
    """Quadlets of every lab host plus a monitoring host and an identity host."""
    out = {}
    for host in PROJECT.site("lab").hosts:
        out.update(_quadlets(render(PROJECT, target="metal", site="lab", host=host.name).ignition))
    root = make_project(tmp_path_factory.mktemp("mon"), site=MONITORING_SITE)
    out.update(_quadlets(render(load_project(root), target="t", site="t", host="mon").ignition))
    site = SITE.replace(
        'roles: [dns]\n    mac: "52:54:00:00:00:02"', 'roles: [identity]\n    mac: "52:54:00:00:00:02"'
    )
    site += "identity:\n  realm: T.EXAMPLE\n  admin_password_file: pw.txt\n"
    root = make_project(tmp_path_factory.mktemp("ipa"), site=site)
    (root / "recipes" / "sites" / "pw.txt").write_text("Secret123-lab\n")
    out.update(_quadlets(render(load_project(root), target="t", site="t", host="b").ignition))
    return out


def test_quadlet_set(all_quadlets):
    names = sorted(Path(p).name for p in all_quadlets)
    assert names == [
        "coredns.container",
        "freeipa-data.volume",
        "freeipa.container",
        "kea-dhcp4.container",
        "kea-leases.volume",
        "node-exporter.container",
        "prometheus-data.volume",
        "prometheus.container",
    ]


def test_quadlet_hygiene(all_quadlets):
    for path, text in all_quadlets.items():
        unit = _parse_unit(text)
        if path.endswith(".volume"):
            assert unit["Volume"]["VolumeName"]
            continue
        c = unit["Container"]
        (image,) = c["Image"]
        value_checks.image(parse_yaml(json.dumps(image), path))  # fully qualified, pinned by tag
        assert c["ContainerName"]
        assert unit["Install"]["WantedBy"] == ["multi-user.target"], path
        timeout = int(unit["Service"]["TimeoutStartSec"][0])
        assert timeout >= 900, path  # first start pulls the image
        assert unit["Unit"]["After"] == ["network-online.target"]
        if "freeipa" in path:
            assert "AutoUpdate" not in c and timeout >= 1800
        else:
            assert c["AutoUpdate"] == ["registry"], path
        for vol in c.get("Volume", []):
            src = vol.split(":")[0]
            assert src.startswith("/") or src.endswith(".volume"), vol


def test_quadlets_are_files_not_units():
    cfg = json.loads(render(PROJECT, target="usb", site="lab", host="dns1").ignition)
    assert [u["name"] for u in cfg["systemd"]["units"]] == ["podman-auto-update.timer"]


def test_prometheus_on_monitoring_host(tmp_path):
    root = make_project(tmp_path, site=MONITORING_SITE)
    p = load_project(root)
    ign = render(p, target="t", site="t", host="mon").ignition
    prom = ign_text(ign, "/etc/prometheus/prometheus.yml")
    import yaml

    cfg = yaml.safe_load(prom)
    jobs = {j["job_name"]: j["static_configs"][0]["targets"] for j in cfg["scrape_configs"]}
    assert jobs["node"] == ["10.1.0.10:9100", "10.1.0.11:9100", "10.1.0.20:9100"]
    assert jobs["coredns"] == ["10.1.0.10:9153", "10.1.0.11:9153"]
    volume = ign_text(ign, "/etc/containers/systemd/prometheus-data.volume")
    assert "User=65534" in volume
    # other hosts do not run Prometheus
    assert "/etc/prometheus/prometheus.yml" not in ign_files(
        render(p, target="t", site="t", host="a").ignition
    )


def test_auto_update_off(tmp_path):
    site = SITE.replace("  strategy: periodic\n", "  strategy: periodic\n  container_auto_update: false\n")
    root = make_project(tmp_path, site=site)
    ign = render(load_project(root), target="t", site="t", host="a").ignition
    assert "AutoUpdate" not in ign_text(ign, "/etc/containers/systemd/coredns.container")
    assert "systemd" not in json.loads(ign) or not json.loads(ign)["systemd"].get("units")


def test_fleet_lock_zincati(tmp_path):
    site = SITE.split("updates:")[0] + (
        "updates:\n  strategy: fleet_lock\n  rollout_wariness: 0.5\n"
        "  fleet_lock: {url: 'http://lock.t.example:8080', group: infra}\n"
    ) + "hosts:" + SITE.split("hosts:")[1]  # fmt: skip
    root = make_project(tmp_path, site=site)
    z = ign_text(render(load_project(root), target="t", site="t", host="a").ignition,
                 "/etc/zincati/config.d/55-updates-strategy.toml")  # fmt: skip
    assert z.splitlines()[1:] == [
        "[identity]",
        'group = "infra"',
        "rollout_wariness = 0.5",
        "",
        "[updates]",
        'strategy = "fleet_lock"',
        "",
        "[updates.fleet_lock]",
        'base_url = "http://lock.t.example:8080"',
    ]


def _richer_dhcp_ignition(tmp_path: Path) -> bytes:
    site = SITE.replace(
        'roles: [dns]\n    mac: "52:54:00:00:00:02"', 'roles: [dhcp]\n    mac: "52:54:00:00:00:02"'
    )
    site = site.replace(
        "networks:\n", "networks:\n  - name: iot\n    cidr: 10.9.0.0/16\n    gateway: 10.9.0.1\n"
    )
    site += (
        "dhcp:\n  subnets:\n"
        "    - network: lan\n      ranges: ['10.1.0.100 - 10.1.0.150', {start: 10.1.0.200, end: 10.1.0.210}]\n"  # noqa: E501
        "      next_server: 10.1.0.10\n      boot_file: 'ipxe.efi'\n      lease_seconds: 600\n"
        "    - network: iot\n      ranges: ['10.9.1.0 - 10.9.1.255']\n      dns_servers: [10.9.0.53]\n"
        "      domain: iot.t.example\n"
        "      reservations: [{mac: '02:00:00:00:00:01', address: 10.9.0.7}]\n"
    )
    root = make_project(tmp_path, site=site)
    return render(load_project(root), target="t", site="t", host="b").ignition


def test_richer_dhcp(tmp_path):
    ign = _richer_dhcp_ignition(tmp_path)
    kea = json.loads(ign_text(ign, "/etc/kea/kea-dhcp4.conf"))["Dhcp4"]
    lan, iot = kea["subnet4"]
    assert [s["id"] for s in (lan, iot)] == [1, 2]
    assert lan["pools"] == [{"pool": "10.1.0.100 - 10.1.0.150"}, {"pool": "10.1.0.200 - 10.1.0.210"}]
    assert lan["next-server"] == "10.1.0.10" and lan["boot-file-name"] == "ipxe.efi"
    assert lan["valid-lifetime"] == 600
    lan_opts = {o["name"]: o["data"] for o in lan["option-data"]}
    assert lan_opts["domain-name-servers"] == "10.1.0.10"  # the site's DNS host
    assert "ntp-servers" not in lan_opts  # the site has no NTP host
    iot_opts = {o["name"]: o["data"] for o in iot["option-data"]}
    assert iot_opts["domain-name-servers"] == "10.9.0.53" and iot_opts["domain-name"] == "iot.t.example"
    assert iot_opts["routers"] == "10.9.0.1"
    assert iot["reservations"] == [{"hw-address": "02:00:00:00:00:01", "ip-address": "10.9.0.7"}]


# ------------------------------------------------------------------------------------ testinfra checks
def _load_checks(name: str) -> ModuleType:
    path = REPO / "overlays" / name / "checks.py"
    spec = importlib.util.spec_from_file_location(f"overlay_checks_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", OVERLAYS)
def test_checks_are_testinfra_tests(name):
    module = _load_checks(name)
    tests = [getattr(module, n) for n in dir(module) if n.startswith("test_")]
    assert len(tests) >= 2
    for fn in tests:
        tree = ast.parse((REPO / "overlays" / name / "checks.py").read_text())
        args = {
            node.name: [a.arg for a in node.args.args]
            for node in tree.body
            if isinstance(node, ast.FunctionDef)
        }
        assert args[fn.__name__] == ["host"], fn.__name__  # the testinfra fixture


class _File:
    def __init__(self, files: dict, links: dict, path: str) -> None:
        self._f, self._links, self.path = files.get(path), links, path

    @property
    def exists(self) -> bool:
        return self._f is not None or self.path in self._links

    @property
    def content_string(self) -> str:
        assert self._f is not None, f"{self.path} does not exist"
        return self._f["data"].decode()

    @property
    def mode(self) -> int:
        assert self._f is not None
        return self._f["mode"]

    @property
    def user(self) -> str:
        return "root"

    @property
    def is_symlink(self) -> bool:
        return self.path in self._links

    @property
    def linked_to(self) -> str:
        return "/" + self._links[self.path].lstrip("./")


class IgnitionHost:
    """A stand-in for testinfra's ``host`` that only knows the files the Ignition config writes.

    It lets the file-based checks run offline against the rendered config, so checks and overlays cannot
    drift apart; checks that need a running system (services, sockets, commands) raise NeedsBoot, and
    are marked ``running`` in the check files.
    """

    class NeedsBoot(Exception):
        pass

    def __init__(self, ignition: bytes) -> None:
        self.files = ign_files(ignition)
        cfg = json.loads(ignition)
        self.links = {link["path"]: link["target"] for link in cfg.get("storage", {}).get("links", [])}
        users = cfg.get("passwd", {}).get("users", [])
        self.users = {u["name"]: u.get("sshAuthorizedKeys", []) for u in users}

    def file(self, path: str) -> _File:
        if path == "/home/core/.ssh/authorized_keys.d/ignition":  # Ignition writes it from passwd.users
            keys = "\n".join(self.users.get("core", [])) + "\n"
            return _File({path: {"data": keys.encode(), "mode": 0o600}}, {}, path)
        return _File(self.files, self.links, path)

    def sudo(self):
        return contextlib.nullcontext()

    def exists(self, command: str) -> bool:
        return False  # no sudo or other programs: only files

    def check_output(self, command: str) -> str:
        verb, _, path = command.partition(" ")
        if verb == "readlink" and path in self.links:
            return self.links[path]
        raise IgnitionHost.NeedsBoot(command)

    def __getattr__(self, name: str):
        raise IgnitionHost.NeedsBoot(name)


def _is_running_check(fn) -> bool:
    return any(m.name == "running" for m in getattr(fn, "pytestmark", []))


@pytest.mark.parametrize("host_name", [None, "dns1", "dns2", "dhcp1", "mon", "ipa"])
def test_file_checks_pass_on_rendered_config(host_name, tmp_path):
    """Every check not marked ``running`` passes against the files of the rendered config alone."""
    if host_name in ("mon", "ipa"):
        site = MONITORING_SITE if host_name == "mon" else IDENTITY_SITE
        root = make_project(
            tmp_path, site=site, target="kind: metal\noverlays: [base, network, monitoring]\n"
        )
        (root / "recipes" / "sites" / "pw.txt").write_text("Secret123-lab\n")
        r = render(load_project(root), target="t", site="t", host="mon" if host_name == "mon" else "b")
    else:
        r = render(PROJECT, target="usb", site="lab", host=host_name)
    host = IgnitionHost(r.ignition)
    ran, running = [], []
    for path in r.checks:
        module = _load_checks(path.parent.name)
        for name in sorted(n for n in dir(module) if n.startswith("test_")):
            fn = getattr(module, name)
            if _is_running_check(fn):
                running.append(name)
                continue
            fn(host)  # must pass
            ran.append(f"{path.parent.name}.{name}")
    assert "base.test_build_json_present" in ran and "base.test_zincati_strategy" in ran
    assert "test_system_running" in running
    used = {p.parent.name for p in r.checks}
    for overlay in used:
        assert any(x.startswith(overlay + ".") for x in ran), f"{overlay} has no file-level check"


def test_file_checks_catch_a_wrong_config():
    r = render(PROJECT, target="usb", site="lab", host="dns1")
    host = IgnitionHost(r.ignition)
    zincati = "/etc/zincati/config.d/55-updates-strategy.toml"
    host.files[zincati] = {**host.files[zincati], "data": b'[updates]\nstrategy = "immediate"\n'}
    with pytest.raises(AssertionError):
        _load_checks("base").test_zincati_strategy(host)
    del host.files["/etc/coredns/zones/db.lab.example"]
    with pytest.raises(AssertionError):
        _load_checks("dns").test_config_present(host)


# ------------------------------------------------------------------------------------ real config checkers
def test_kea_accepts_rendered_config(tmp_path):
    """Debian's kea-dhcp4 (2.2) parses the rendered config (the container runs 2.6, which accepts 2.2's)."""
    kea = find_binary("kea-dhcp4", reason="check the dhcp overlay's Kea config")
    configs = [ign_text(render(PROJECT, target="metal", site="lab", host="dhcp1").ignition, KEA_CONF)]
    configs.append(ign_text(_richer_dhcp_ignition(tmp_path), KEA_CONF))
    for i, text in enumerate(configs):
        path = tmp_path / f"kea-{i}.conf"
        path.write_text(text)
        out = run([kea, "-t", str(path)], check=False, capture=True)
        assert out.returncode == 0, out.stdout.decode() + out.stderr.decode()
    # and it does reject a broken one: the checker is real
    bad = tmp_path / "bad.conf"
    bad.write_text(configs[0].replace('"10.0.2.100 - 10.0.2.199"', '"10.0.2.100 - 10.0.9.199"'))
    assert run([kea, "-t", str(bad)], check=False, capture=True).returncode != 0


def test_chrony_accepts_rendered_config(tmp_path):
    chronyd = find_binary("chronyd", reason="check the ntp overlay's chrony.conf")
    text = ign_text(render(PROJECT, target="metal", site="lab", host="dns2").ignition, "/etc/chrony.conf")
    path = tmp_path / "chrony.conf"
    path.write_text(text)
    out = run([chronyd, "-p", "-f", str(path)], check=False, capture=True)
    assert out.returncode == 0, out.stderr.decode()
    printed = out.stdout.decode().splitlines()
    assert "allow 10.0.2.0/24" in printed and "server 10.0.2.11 iburst" in printed
    client = ign_text(render(PROJECT, target="metal", site="lab", host="dhcp1").ignition, "/etc/chrony.conf")
    (tmp_path / "client.conf").write_text(client)
    out = run([chronyd, "-p", "-f", str(tmp_path / "client.conf")], check=False, capture=True)
    assert out.returncode == 0, out.stderr.decode()
    assert "server 10.0.2.11 iburst" in out.stdout.decode() and "allow" not in out.stdout.decode()
    path.write_text(text + "alow 10.0.0.0/8\n")
    assert run([chronyd, "-p", "-f", str(path)], check=False, capture=True).returncode != 0


def test_zone_file_parses():
    """dnspython's RFC 1035 parser reads the rendered zone: names, types and values as the site says."""
    import dns.rdatatype
    import dns.zone

    text = ign_text(
        render(PROJECT, target="metal", site="lab", host="dns1").ignition,
        "/etc/coredns/zones/db.lab.example",
    )
    zone = dns.zone.from_text(text, origin="lab.example.", relativize=False, check_origin=True)
    soa = zone.find_rdataset("lab.example.", dns.rdatatype.SOA)[0]
    assert str(soa.mname) == "dns1.lab.example." and soa.serial == 1
    ns = sorted(str(r.target) for r in zone.find_rdataset("lab.example.", dns.rdatatype.NS))
    assert ns == ["dns1.lab.example.", "dns2.lab.example."]
    a = {str(name): str(rds[0]) for name, rds in zone.iterate_rdatasets(dns.rdatatype.A)}
    assert a == {
        "gw.lab.example.": "10.0.2.2",
        "dns1.lab.example.": "10.0.2.11",
        "dns2.lab.example.": "10.0.2.12",
        "dhcp1.lab.example.": "10.0.2.13",
    }
    cname = zone.find_rdataset("ntp.lab.example.", dns.rdatatype.CNAME)[0]
    assert str(cname.target) == "dns1.lab.example."
    txt = zone.find_rdataset("lab.example.", dns.rdatatype.TXT)[0]
    assert txt.strings == (b"coreos-infra lab",)


def test_checks_pytest_args():
    from coreos_infra.recipes.output import checks_pytest_args

    r = render(PROJECT, target="usb", site="lab", host="dns1")
    args = checks_pytest_args(r, "ssh://core@127.0.0.1:2222", running=False)
    assert args[:4] == [
        "-p",
        "no:cacheprovider",
        "--import-mode=importlib",
        "--hosts=ssh://core@127.0.0.1:2222",
    ]
    assert args[4:6] == ["-m", "not running"]
    assert [Path(a).parent.name for a in args[6:]] == ["base", "network", "monitoring", "dns", "ntp"]
    assert "-m" not in checks_pytest_args(r, "local://")


def test_checks_collect_with_testinfra(tmp_path):
    """pytest + testinfra collect every overlay check file (the 'running' marker is registered)."""
    import subprocess
    import sys

    r = render(PROJECT, target="usb", site="lab", host="dns1")
    from coreos_infra.recipes.output import checks_pytest_args

    args = checks_pytest_args(r, "local://", running=False)
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", *args], cwd=REPO,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    collected = [line for line in out.stdout.splitlines() if "::test_" in line]
    assert any("dns/checks.py::test_config_present" in line for line in collected)
    assert not any("test_coredns_active" in line for line in collected)  # deselected: needs a running system


def test_reverse_zone():
    import dns.rdatatype
    import dns.zone

    ign = render(PROJECT, target="metal", site="lab", host="dns2").ignition
    text = ign_text(ign, "/etc/coredns/zones/db.2.0.10.in-addr.arpa")
    zone = dns.zone.from_text(text, origin="2.0.10.in-addr.arpa.", relativize=False)
    ptr = {str(name): str(rds[0]) for name, rds in zone.iterate_rdatasets(dns.rdatatype.PTR)}
    assert ptr == {
        "11.2.0.10.in-addr.arpa.": "dns1.lab.example.",
        "12.2.0.10.in-addr.arpa.": "dns2.lab.example.",
        "13.2.0.10.in-addr.arpa.": "dhcp1.lab.example.",
    }
    assert "2.0.10.in-addr.arpa" in json.loads(ign_text(ign, "/etc/coreos-infra/build.json"))["zones"]


def test_reverse_zones_off_and_unaligned(tmp_path):
    site = SITE.replace("forwarders: [10.1.0.1]", "forwarders: [10.1.0.1]\n  reverse_zones: false")
    root = make_project(tmp_path / "off", site=site)
    files = ign_files(render(load_project(root), target="t", site="t", host="a").ignition)
    assert not any("in-addr.arpa" in p for p in files)
    site = SITE.replace("10.1.0.0/24", "10.1.0.0/25")
    root = make_project(tmp_path / "unaligned", site=site)
    files = ign_files(render(load_project(root), target="t", site="t", host="a").ignition)
    assert not any("in-addr.arpa" in p for p in files)  # a /25 would need RFC 2317 delegation
    root = make_project(tmp_path / "on")
    files = ign_files(render(load_project(root), target="t", site="t", host="a").ignition)
    assert "/etc/coredns/zones/db.0.1.10.in-addr.arpa" in files


# Keys of podman-systemd.unit(5) the overlays may use (a typo would be silently ignored by quadlet).
QUADLET_KEYS = {
    "Container": set(
        """ContainerName Image Network PublishPort Volume Mount Exec Entrypoint Environment EnvironmentFile
        Secret AddCapability DropCapability AddDevice HealthCmd HealthInterval HealthRetries
        HealthStartPeriod
        HealthTimeout HealthOnFailure Notify ReadOnly NoNewPrivileges SecurityLabelType SecurityLabelDisable
        UserNS User Group Pull LogDriver Sysctl Timezone PodmanArgs HostName AutoUpdate Tmpfs""".split()
    ),
    "Volume": set("VolumeName User Group Label Driver Options Copy".split()),
}


def test_quadlet_keys_are_known(all_quadlets):
    for path, text in all_quadlets.items():
        unit = _parse_unit(text)
        kind = "Container" if path.endswith(".container") else "Volume"
        unknown = set(unit[kind]) - QUADLET_KEYS[kind]
        assert not unknown, f"{path}: {unknown}"
        assert set(unit) <= {"Unit", kind, "Service", "Install"}, path


def test_zincati_toml_parses():
    import tomllib

    for host in ("dns1", "dns2", "dhcp1", None):
        ign = render(PROJECT, target="usb", site="lab", host=host).ignition
        doc = tomllib.loads(ign_text(ign, "/etc/zincati/config.d/55-updates-strategy.toml"))
        assert doc["updates"]["strategy"] == "periodic"
        assert doc["updates"]["periodic"]["time_zone"] == "Europe/Berlin"
        (window,) = doc["updates"]["periodic"]["window"]
        assert set(window) == {"days", "start_time", "length_minutes"}
        assert window["length_minutes"] == 60 and window["start_time"] == "03:00"


def test_zone_txt_values_with_backslashes_stay_terminated(tmp_path):
    import dns.rdatatype
    import dns.zone

    root = make_project(tmp_path / "p", copy_recipes=True)
    site = root / "recipes" / "sites" / "lab.yaml"
    old = '{name: "@", type: TXT, value: "coreos-infra lab"}'
    assert old in site.read_text()
    records = ["{name: t1, type: TXT, value: 'ends with\\'}", "{name: t2, type: TXT, value: 'a\\b'}"]
    new = old + "".join(f"\n        - {r}" for r in records)
    site.write_text(site.read_text().replace(old, new))
    text = ign_text(
        render(load_project(root), target="metal", site="lab", host="dns1").ignition,
        "/etc/coredns/zones/db.lab.example",
    )
    zone = dns.zone.from_text(text, origin="lab.example.", relativize=False, check_origin=True)
    assert zone.find_rdataset("t1.lab.example.", dns.rdatatype.TXT)[0].strings == (b"ends with\\",)
    assert zone.find_rdataset("t2.lab.example.", dns.rdatatype.TXT)[0].strings == (b"a\\b",)
