"""Rendering (site, target[, host]) into Butane + Ignition: every shipped combination renders, validates with
our validator and Debian's ignition-validate, is reproducible, and carries the right service configs."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from recipes_testlib import REPO, SITE, TARGET, add_overlay, ign_files, ign_text, make_project

from coreos_infra import ignition
from coreos_infra.errors import CoreosInfraError, InputError
from coreos_infra.recipes import load_project, render, render_butane
from coreos_infra.recipes.output import render_dir, write_render
from coreos_infra.run import find_binary, run

SHIPPED = load_project(REPO)
COMBOS = [
    (target, site.name, host)
    for target in sorted(SHIPPED.targets)
    for site in SHIPPED.sites.values()
    for host in [None, *(h.name for h in site.hosts)]
]


def relabel_for_debian(ign: bytes) -> bytes:
    """Debian 12's ignition-validate (2.14.0) knows 3.0.0-3.3.0 and 3.4.0-experimental only."""
    cfg = json.loads(ign)
    if cfg["ignition"]["version"] in ("3.4.0", "3.5.0"):
        cfg["ignition"]["version"] = "3.4.0-experimental"
    return json.dumps(cfg).encode()


@pytest.fixture(scope="module")
def rendered():
    return {(t, s, h): render(SHIPPED, target=t, site=s, host=h) for t, s, h in COMBOS}


@pytest.mark.parametrize("combo", COMBOS, ids=lambda c: f"{c[0]}-{c[1]}-{c[2] or 'site'}")
def test_every_combination_renders_and_validates(rendered, combo, tmp_path):
    r = rendered[combo]
    cfg = json.loads(r.ignition)
    assert cfg["ignition"]["version"] == "3.4.0"
    assert not [rep for rep in ignition.validate(cfg) if rep.is_error]
    assert not r.reports  # strict translation: no warnings either
    f = tmp_path / "config.ign"
    f.write_bytes(relabel_for_debian(r.ignition))
    out = run([find_binary("ignition-validate"), str(f)], check=False, capture=True)
    assert out.returncode == 0, out.stdout.decode() + out.stderr.decode()
    assert out.stdout.strip() == b""  # not even a warning
    # no password anywhere unless a site sets one (the lab site does not)
    assert b"passwordHash" not in r.ignition and not r.contains_secrets
    assert len(r.build_id) == 64 and all(c in "0123456789abcdef" for c in r.build_id)


def test_build_ids_are_distinct(rendered):
    ids = [r.build_id for r in rendered.values()]
    assert len(set(ids)) == len(ids)


def test_reproducible(rendered):
    again = load_project(REPO)
    for combo in [("usb", "lab", "dns1"), ("rpi4", "lab", "dhcp1"), ("pxe", "lab", None)]:
        t, s, h = combo
        r2 = render(again, target=t, site=s, host=h)
        assert r2.ignition == rendered[combo].ignition
        assert r2.butane == rendered[combo].butane
        assert r2.build_id == rendered[combo].build_id


def test_merged_butane_translates_standalone(rendered):
    """The written Butane is a real document: translating it again (files_dir=overlays) gives the same bytes."""  # noqa: E501
    from coreos_infra import butane

    r = rendered[("usb", "lab", "dns1")]
    again = butane.translate(r.butane.encode(), files_dir=REPO / "overlays", strict=True)
    assert again.to_json() == r.ignition


def test_dns_host_contents(rendered):
    ign = rendered[("usb", "lab", "dns1")].ignition
    files = ign_files(ign)
    quadlet = ign_text(ign, "/etc/containers/systemd/coredns.container")
    assert "\nImage=docker.io/coredns/coredns:1.11.3\n" in quadlet
    assert "\nNetwork=host\n" in quadlet
    assert "\nVolume=/etc/coredns:/etc/coredns:ro,Z\n" in quadlet
    assert "\nExec=-conf /etc/coredns/Corefile\n" in quadlet
    assert "\nAutoUpdate=registry\n" in quadlet
    assert "\nTimeoutStartSec=900\n" in quadlet
    assert "http://127.0.0.1:8080/health" in quadlet  # health gate
    assert "[Install]\nWantedBy=multi-user.target" in quadlet
    corefile = ign_text(ign, "/etc/coredns/Corefile")
    assert "lab.example:53 {" in corefile and ".:53 {" in corefile
    binds = [line.strip() for line in corefile.splitlines() if line.strip().startswith("bind ")]
    assert set(binds) == {"bind 10.0.2.11"} and len(binds) == 3  # lab.example, reverse zone, "."
    # never 0.0.0.0 or 127.0.0.53: systemd-resolved keeps its stub listener
    assert "2.0.10.in-addr.arpa:53 {" in corefile
    assert "forward . 10.0.2.3 9.9.9.9" in corefile
    assert "file /etc/coredns/zones/db.lab.example" in corefile
    assert "health 127.0.0.1:8080" in corefile
    zone = ign_text(ign, "/etc/coredns/zones/db.lab.example").splitlines()
    assert "$ORIGIN lab.example." in zone
    assert "@ IN SOA dns1.lab.example. hostmaster.lab.example. 1 7200 3600 1209600 3600" in zone
    assert "@ IN NS dns1.lab.example." in zone and "@ IN NS dns2.lab.example." in zone
    for record in ("dns1 IN A 10.0.2.11", "dns2 IN A 10.0.2.12", "dhcp1 IN A 10.0.2.13", "gw IN A 10.0.2.2",
                   "ntp IN CNAME dns1", '@ IN TXT "coreos-infra lab"'):  # fmt: skip
        assert record in zone
    chrony = ign_text(ign, "/etc/chrony.conf")
    assert files["/etc/chrony.conf"]["overwrite"] is True  # replaces Fedora's file
    assert "pool 2.fedora.pool.ntp.org iburst" in chrony
    assert "server 10.0.2.12 iburst" in chrony and "server 10.0.2.11" not in chrony  # the peer, not itself
    assert "\nallow 10.0.2.0/24\n" in chrony
    assert "local stratum 10 orphan" in chrony
    keyfile = "/etc/NetworkManager/system-connections/lan.nmconnection"
    assert files[keyfile]["mode"] == 0o600
    kf = ign_text(ign, keyfile)
    assert "mac-address=52:54:00:4C:00:11" in kf
    assert "address1=10.0.2.11/24,10.0.2.2" in kf
    assert "dns=10.0.2.11;10.0.2.12;" in kf and "dns-search=lab.example;" in kf
    zincati = ign_text(ign, "/etc/zincati/config.d/55-updates-strategy.toml")
    assert 'strategy = "periodic"' in zincati and 'time_zone = "Europe/Berlin"' in zincati
    assert 'days = ["Tue", "Thu"]' in zincati and 'start_time = "03:00"' in zincati
    assert ign_text(ign, "/etc/hostname") == "dns1\n"
    build = json.loads(ign_text(ign, "/etc/coreos-infra/build.json"))
    assert build["build_id"] == rendered[("usb", "lab", "dns1")].build_id
    assert build["host"]["roles"] == ["dns", "ntp"]
    # no services of other roles
    assert not any("kea" in p or "freeipa" in p for p in files)
    cfg = json.loads(ign)
    units = {u["name"]: u for u in cfg["systemd"]["units"]}
    assert units["podman-auto-update.timer"]["enabled"] is True
    links = {link["path"]: link["target"] for link in cfg["storage"]["links"]}
    assert links["/etc/localtime"] == "../usr/share/zoneinfo/Europe/Berlin"
    users = cfg["passwd"]["users"]
    assert users == [{"name": "core", "sshAuthorizedKeys": [SHIPPED.site("lab").admins[0].ssh_keys[0]]}]


def test_redundant_dns_hosts_get_other_windows(rendered):
    z1 = ign_text(
        rendered[("usb", "lab", "dns1")].ignition, "/etc/zincati/config.d/55-updates-strategy.toml"
    )
    z2 = ign_text(
        rendered[("usb", "lab", "dns2")].ignition, "/etc/zincati/config.d/55-updates-strategy.toml"
    )
    assert 'days = ["Tue", "Thu"]' in z1 and 'days = ["Wed", "Fri"]' in z2
    corefile2 = ign_text(rendered[("usb", "lab", "dns2")].ignition, "/etc/coredns/Corefile")
    assert "bind 10.0.2.12" in corefile2


def test_dhcp_host_contents(rendered):
    ign = rendered[("metal", "lab", "dhcp1")].ignition
    kea = json.loads(ign_text(ign, "/etc/kea/kea-dhcp4.conf"))["Dhcp4"]
    assert kea["lease-database"]["name"] == "/var/lib/kea/dhcp4.leases"
    (subnet,) = kea["subnet4"]
    assert subnet["subnet"] == "10.0.2.0/24" and subnet["id"] == 1
    assert subnet["pools"] == [{"pool": "10.0.2.100 - 10.0.2.199"}]
    options = {o["name"]: o["data"] for o in subnet["option-data"]}
    assert options == {
        "routers": "10.0.2.2",
        "domain-name-servers": "10.0.2.11, 10.0.2.12",
        "ntp-servers": "10.0.2.11, 10.0.2.12",
        "domain-name": "lab.example",
        "domain-search": "lab.example",
    }
    assert subnet["reservations"] == [
        {"hw-address": "52:54:00:4c:00:99", "ip-address": "10.0.2.99", "hostname": "printer"}
    ]
    quadlet = ign_text(ign, "/etc/containers/systemd/kea-dhcp4.container")
    assert "\nImage=docker.cloudsmith.io/isc/docker/kea-dhcp4:2.6.1\n" in quadlet
    assert "\nVolume=kea-leases.volume:/var/lib/kea:Z\n" in quadlet
    assert "CAP_NET_RAW" in quadlet and "\nNetwork=host\n" in quadlet
    assert "VolumeName=kea-leases" in ign_text(ign, "/etc/containers/systemd/kea-leases.volume")
    files = ign_files(ign)
    assert "/etc/coredns/Corefile" not in files
    # not an NTP server, but a client of the site's NTP hosts
    chrony = ign_text(ign, "/etc/chrony.conf")
    assert "server 10.0.2.11 iburst\nserver 10.0.2.12 iburst\n" in chrony and "allow" not in chrony


def test_node_exporter_everywhere(rendered):
    for r in rendered.values():
        q = ign_text(r.ignition, "/etc/containers/systemd/node-exporter.container")
        assert "\nPodmanArgs=--pid=host\n" in q and "\nVolume=/:/host:ro,rslave\n" in q
        assert "--path.rootfs=/host" in q
        assert "/etc/containers/systemd/prometheus.container" not in ign_files(
            r.ignition
        )  # no monitoring role


def test_site_wide_render_has_no_host_parts(rendered):
    r = rendered[("live", "lab", None)]
    files = ign_files(r.ignition)
    assert "/etc/hostname" not in files
    assert not any(p.startswith("/etc/NetworkManager/") for p in files)  # DHCP everywhere
    assert r.host is None and r.overlays == ("base", "network", "monitoring")


def test_checks_follow_overlays(rendered):
    r = rendered[("usb", "lab", "dns1")]
    assert [p.parent.name for p in r.checks] == ["base", "network", "monitoring", "dns", "ntp"]
    assert all(p.name == "checks.py" and p.is_file() for p in r.checks)
    assert [p.parent.name for p in rendered[("usb", "lab", "dhcp1")].checks][-1] == "dhcp"


# ------------------------------------------------------------------------------------------ build identity
def test_build_id_inputs(tmp_path):
    root = make_project(tmp_path / "p", copy_recipes=True)
    p = load_project(root)
    first = render(p, target="usb", site="lab", host="dns1")
    base = first.build_id
    # where the checkout lives does not matter
    shipped = render(SHIPPED, target="usb", site="lab", host="dns1")
    assert (base, first.ignition) == (shipped.build_id, shipped.ignition)
    assert render(p, target="usb", site="lab", host="dns1", base_release="40.20240519.3.0").build_id != base
    assert render(p, target="usb", site="lab", host="dns1", firmware_version="v1.50").build_id != base
    # a comment in the site file does not change anything
    site = root / "recipes" / "sites" / "lab.yaml"
    site.write_text("# a comment\n" + site.read_text())
    assert render(load_project(root), target="usb", site="lab", host="dns1").build_id == base
    # an overlay the host does not use does not change its ID; one it uses does
    kea = root / "overlays" / "dhcp" / "kea-dhcp4.conf.j2"
    kea.write_text(kea.read_text() + "\n")
    assert render(load_project(root), target="usb", site="lab", host="dns1").build_id == base
    corefile = root / "overlays" / "dns" / "Corefile.j2"
    corefile.write_text(corefile.read_text() + "# changed\n")
    changed = render(load_project(root), target="usb", site="lab", host="dns1")
    assert changed.build_id != base
    assert (
        b"# changed"
        in json.dumps(ign_files(changed.ignition)["/etc/coredns/Corefile"]["data"].decode()).encode()
    )
    # a site value changes it
    site.write_text(site.read_text().replace("cache_seconds", "cache_seconds").replace("9.9.9.9", "1.1.1.1"))
    assert render(load_project(root), target="usb", site="lab", host="dns1").build_id != changed.build_id


def test_extra_ssh_keys(tmp_path):
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBootTestKeyBootTestKeyBootTestKeyBootTest1 boot-test"
    r = render(SHIPPED, target="usb", site="lab", host="dns1", extra_ssh_keys=[key])
    users = json.loads(r.ignition)["passwd"]["users"]
    assert users[0]["name"] == "core" and users[0]["sshAuthorizedKeys"][-1] == key
    assert r.build_id != render(SHIPPED, target="usb", site="lab", host="dns1").build_id
    with pytest.raises(InputError, match="not a public key"):
        render(
            SHIPPED, target="usb", site="lab", host="dns1", extra_ssh_keys=["-----BEGIN OPENSSH PRIVATE KEY"]
        )


# ------------------------------------------------------------------------------------------ render errors
def test_unknown_host():
    with pytest.raises(InputError, match="unknown host 'dns9' in site lab"):
        render(SHIPPED, target="usb", site="lab", host="dns9")


def test_undefined_jinja_variable(tmp_path):
    root = make_project(tmp_path, target="kind: metal\noverlays: [base, oops]\n")
    add_overlay(root, "oops", "variant: fcos\nversion: 1.5.0\n# {{ site.name }}\n{{ site.nosuchthing }}\n")
    with pytest.raises(InputError) as e:
        render(load_project(root), target="t", site="t", host="a")
    assert str(e.value) == (
        "overlays/oops/butane.yaml.j2:4: undefined template variable: 'coreos_infra.recipes.model.Site object' "  # noqa: E501
        "has no attribute 'nosuchthing'"
    )


def test_undefined_variable_in_included_template(tmp_path):
    root = make_project(tmp_path, target="kind: metal\noverlays: [oops]\n")
    d = add_overlay(root, "oops", 'storage:\n  files:\n    - path: /etc/x\n      contents:\n'
                    '        inline: {{ render("x.j2") | quote }}\n')  # fmt: skip
    (d / "x.j2").write_text("line one\n{{ vars.missing }}\n")
    with pytest.raises(InputError) as e:
        render(load_project(root), target="t", site="t")
    assert (
        str(e.value)
        == "overlays/oops/x.j2:2: undefined template variable: 'dict object' has no attribute 'missing'"
    )


def test_two_overlays_write_one_path(tmp_path):
    root = make_project(tmp_path, target="kind: metal\noverlays: [base, one, two]\n")
    fragment = "storage:\n  files:\n    - path: /etc/motd\n      contents: {inline: '%s'}\n"
    add_overlay(root, "one", fragment % "one")
    add_overlay(root, "two", fragment % "two")
    with pytest.raises(InputError) as e:
        render(load_project(root), target="t", site="t")
    assert (
        str(e.value).splitlines()[0]
        == "overlays/two/butane.yaml.j2: path /etc/motd is written by overlays one and two"
    )


def test_overlay_cannot_take_a_base_path(tmp_path):
    root = make_project(tmp_path, target="kind: metal\noverlays: [base, hijack]\n")
    add_overlay(
        root, "hijack", "storage:\n  files:\n    - path: /etc/hostname\n      contents: {inline: x}\n"
    )
    with pytest.raises(InputError, match="path /etc/hostname is written by overlays base and hijack"):
        render(load_project(root), target="t", site="t", host="a")


def test_identical_directories_merge(tmp_path):
    root = make_project(tmp_path, target="kind: metal\noverlays: [base, one]\n")
    add_overlay(root, "one", "storage:\n  directories:\n    - path: /etc/coreos-infra\n      mode: 0755\n")
    r = render(load_project(root), target="t", site="t", host="a")
    dirs = [d["path"] for d in json.loads(r.ignition)["storage"]["directories"]]
    assert dirs.count("/etc/coreos-infra") == 1


def test_unit_defined_twice_differently(tmp_path):
    root = make_project(tmp_path, target="kind: metal\noverlays: [base, one]\n")
    add_overlay(
        root, "one", "systemd:\n  units:\n    - name: podman-auto-update.timer\n      enabled: false\n"
    )
    with pytest.raises(
        InputError, match="systemd unit podman-auto-update.timer is defined by overlays base and one"
    ):
        render(load_project(root), target="t", site="t", host="a")


def test_local_file_outside_overlay(tmp_path):
    root = make_project(tmp_path, target="kind: metal\noverlays: [one]\n")
    add_overlay(
        root,
        "one",
        "storage:\n  files:\n    - path: /etc/x\n      contents: {local: ../../base/overlay.yaml}\n",
    )
    with pytest.raises(InputError, match="points outside the overlay's files/ directory"):
        render(load_project(root), target="t", site="t")


def test_local_file_from_overlay(tmp_path):
    root = make_project(tmp_path, target="kind: metal\noverlays: [one]\n")
    d = add_overlay(root, "one", "storage:\n  files:\n    - path: /etc/x\n      contents: {local: x.txt}\n")
    (d / "files").mkdir()
    (d / "files" / "x.txt").write_text("static file\n")
    r = render(load_project(root), target="t", site="t")
    assert ign_text(r.ignition, "/etc/x") == "static file\n"
    assert "local: one/files/x.txt" in r.butane


def test_template_syntax_error(tmp_path):
    root = make_project(tmp_path, target="kind: metal\noverlays: [one]\n")
    add_overlay(root, "one", "storage:\n{% if %}\n")
    with pytest.raises(InputError, match=r"^overlays/one/butane.yaml.j2:2: template syntax error"):
        render(load_project(root), target="t", site="t")


def test_rendered_yaml_error_points_into_output(tmp_path):
    root = make_project(tmp_path, target="kind: metal\noverlays: [one]\n")
    add_overlay(root, "one", "storage:\n  files: [\n")
    with pytest.raises(
        InputError, match=r"^overlays/one/butane.yaml.j2 \(rendered\):3:1: YAML syntax error"
    ):
        render(load_project(root), target="t", site="t")


def test_invalid_butane_from_overlay(tmp_path):
    root = make_project(tmp_path, target="kind: metal\noverlays: [one]\n")
    add_overlay(root, "one", "storage:\n  files:\n    - path: etc/relative\n")
    with pytest.raises(CoreosInfraError, match="path not absolute"):
        render(load_project(root), target="t", site="t")


def test_required_overlay_variable(tmp_path):
    root = make_project(tmp_path, target="kind: metal\noverlays: [one]\n")
    meta = "description: x\nvariables:\n  token:\n    type: str\n    required: true\n    doc: the token\n"
    add_overlay(root, "one", "variant: fcos\n", meta=meta)
    with pytest.raises(InputError, match="overlay one: required variable 'token' is not set"):
        render(load_project(root), target="t", site="t")


def test_overlay_variable_layers(tmp_path):
    """Defaults < recipe < site."""
    target = "kind: metal\noverlays: [base, {name: dns, vars: {health_port: 8081, log_queries: true}}]\n"
    site = SITE + "overlays:\n  dns:\n    health_port: 8082\n"
    root = make_project(tmp_path, site=site, target=target)
    r = render(load_project(root), target="t", site="t", host="a")
    corefile = ign_text(r.ignition, "/etc/coredns/Corefile")
    assert "health 127.0.0.1:8082" in corefile  # site wins
    assert "\n    log\n" in corefile  # recipe value
    assert "ready 127.0.0.1:8181" in corefile  # default


# ------------------------------------------------------------------------------------------ secrets, identity  # noqa: E501
IDENTITY_SITE = SITE.replace("roles: [dns]\n    mac: \"52:54:00:00:00:02\"", "roles: [identity]\n    mac: \"52:54:00:00:00:02\"") + (  # noqa: E501
    "identity:\n  realm: T.EXAMPLE\n  admin_password_file: ipa-admin.txt\n  first_start_timeout: 2400\n"
)  # fmt: skip


def test_identity_host_is_marked_secret(tmp_path):
    root = make_project(tmp_path, site=IDENTITY_SITE, target="kind: metal\noverlays: [base, network]\n")
    (root / "recipes" / "sites" / "ipa-admin.txt").write_text("Secret123-lab\n")
    p = load_project(root)
    r = render(p, target="t", site="t", host="b")
    assert r.contains_secrets
    files = ign_files(r.ignition)
    assert files["/etc/freeipa/freeipa.env"]["mode"] == 0o600
    assert files["/etc/freeipa/freeipa.env"]["data"] == b"PASSWORD=Secret123-lab\n"
    q = ign_text(r.ignition, "/etc/containers/systemd/freeipa.container")
    assert "\nTimeoutStartSec=2400\n" in q
    assert "\nHostName=b.t.example\n" in q
    assert "--realm=T.EXAMPLE --domain=t.example --no-ntp" in q
    assert "\nVolume=freeipa-data.volume:/data:Z\n" in q
    assert "PublishPort=10.1.0.11:443:443/tcp" in q
    assert "AutoUpdate" not in q  # IPA is upgraded deliberately
    assert "Secret123" not in q
    # written with mode 0600 because of the secret
    out = write_render(r, tmp_path / "out")
    assert stat.S_IMODE(out.ignition.stat().st_mode) == 0o600
    assert stat.S_IMODE(out.butane.stat().st_mode) == 0o600
    # the other host has no secret
    assert not render(p, target="t", site="t", host="a").contains_secrets
    # the password is part of the build identity
    (root / "recipes" / "sites" / "ipa-admin.txt").write_text("Other-secret-99\n")
    assert render(load_project(root), target="t", site="t", host="b").build_id != r.build_id


def test_identity_password_file_missing(tmp_path):
    root = make_project(tmp_path, site=IDENTITY_SITE, target="kind: metal\noverlays: [base]\n")
    with pytest.raises(InputError) as e:
        render(load_project(root), target="t", site="t", host="b")
    assert str(e.value) == (
        "recipes/sites/t.yaml: identity.admin_password_file: cannot read the password file ipa-admin.txt: "
        "No such file or directory"
    )


def test_admin_password_hash_is_secret(tmp_path):
    pw = "$y$j9T$abcdefghijklmnopqrstu.$ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopq"
    site = SITE.replace("    ssh_keys:", f"    password_hash: '{pw}'\n    ssh_keys:")
    root = make_project(tmp_path, site=site)
    r = render(load_project(root), target="t", site="t", host="a")
    assert r.contains_secrets
    assert json.loads(r.ignition)["passwd"]["users"][0]["passwordHash"] == pw


# ------------------------------------------------------------------------------------------ tasks
def _invoke(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COREOS_INFRA_ROOT": str(root)}
    invoke = Path(sys.executable).parent / "invoke"
    return subprocess.run([str(invoke), "-r", str(REPO), *args], env=env, capture_output=True, text=True,
                          timeout=120)  # fmt: skip


def test_invoke_render_writes_files(tmp_path):
    root = tmp_path / "p"
    shutil.copytree(REPO / "recipes", root / "recipes")
    shutil.copytree(REPO / "overlays", root / "overlays")
    out = _invoke(root, "render", "--target", "usb", "--host", "dns1")
    assert out.returncode == 0, out.stderr
    expected = render(load_project(root), target="usb", site="lab", host="dns1")
    d = render_dir(root / "artifacts", expected)
    assert d == root / "artifacts" / "render" / "lab" / "dns1" / "usb"
    assert (d / "lab-dns1-usb.ign").read_bytes() == expected.ignition
    assert (d / "lab-dns1-usb.bu").read_text() == expected.butane
    info = json.loads((d / "render.json").read_text())
    assert info["build_id"] == expected.build_id and info["contains_secrets"] is False
    assert f"build ID: {expected.build_id}" in out.stdout
    assert str(d / "lab-dns1-usb.ign") in out.stdout
    assert not [p for p in d.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_invoke_render_error_is_clean(tmp_path):
    root = tmp_path / "p"
    shutil.copytree(REPO / "recipes", root / "recipes")
    shutil.copytree(REPO / "overlays", root / "overlays")
    out = _invoke(root, "render", "--target", "usb", "--host", "nope")
    assert out.returncode == 1
    assert "Error: unknown host 'nope' in site lab" in out.stderr and "Traceback" not in out.stderr
    assert not (root / "artifacts" / "render").exists()


def test_invoke_list(tmp_path):
    root = tmp_path / "p"
    shutil.copytree(REPO / "recipes", root / "recipes")
    shutil.copytree(REPO / "overlays", root / "overlays")
    out = _invoke(root, "list", "--overlays")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    for word in (
        "lab",
        "dns1",
        "dns2",
        "dhcp1",
        "usb",
        "rpi4",
        "pxe",
        "metal",
        "live",
        "identity",
        "monitoring",
    ):
        assert word in text
    assert "window Tue,Thu 03:00 +60min" in text and "window Wed,Fri 03:00 +60min" in text
    assert 'image (image) = "docker.io/coredns/coredns:1.11.3"' in text


def test_render_butane_without_engine_is_yaml():
    b = render_butane(SHIPPED, target="usb", site="lab", host="dns2")
    text, build_id = b.butane, b.build_id
    parsed = yaml.safe_load(text)
    assert parsed["variant"] == "fcos" and parsed["version"] == "1.5.0"
    assert build_id in text.splitlines()[1]
    modes = {f["path"]: f.get("mode") for f in parsed["storage"]["files"]}
    assert modes["/etc/NetworkManager/system-connections/lan.nmconnection"] == 0o600
    assert "mode: 0600" in text  # written the way people read modes


def test_reproducible_across_processes():
    """Same bytes and IDs in fresh interpreters with different hash seeds (no set/dict-order leaks)."""
    code = (
        "import hashlib, sys; from pathlib import Path\n"
        "from coreos_infra.recipes import load_project, render\n"
        "p = load_project(Path(sys.argv[1])); h = hashlib.sha256()\n"
        "for t in sorted(p.targets):\n"
        "    for host in [None, 'dns1', 'dhcp1']:\n"
        "        r = render(p, target=t, site='lab', host=host)\n"
        "        h.update(r.ignition + r.build_id.encode())\n"
        "print(h.hexdigest())"
    )
    digests = set()
    for seed in ("1", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", code, str(REPO)], env=env, capture_output=True, text=True, timeout=120
        )
        assert out.returncode == 0, out.stderr
        digests.add(out.stdout.strip())
    assert len(digests) == 1


def test_invoke_render_all(tmp_path):
    root = tmp_path / "p"
    shutil.copytree(REPO / "recipes", root / "recipes")
    shutil.copytree(REPO / "overlays", root / "overlays")
    out = _invoke(root, "render", "--all")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == len(SHIPPED.targets) * (1 + len(SHIPPED.site("lab").hosts))
    written = sorted((root / "artifacts" / "render" / "lab").rglob("*.ign"))
    assert len(written) == len(lines)
    expected = render(SHIPPED, target="rpi4", site="lab", host="dhcp1")
    assert (root / "artifacts/render/lab/dhcp1/rpi4/lab-dhcp1-rpi4.ign").read_bytes() == expected.ignition


LINKED = "storage:\n  files:\n    - path: /etc/linked.conf\n      contents:\n        local: conf/x.conf\n"


def test_build_id_follows_symlinked_directories_in_files(tmp_path):
    """An edit behind a symlinked directory in files/ changes the Ignition and so must change the ID."""
    root = make_project(tmp_path / "p", target=TARGET + "  - linked\n")
    d = add_overlay(root, "linked", LINKED)
    (d / "shared").mkdir()
    (d / "shared" / "x.conf").write_text("one\n")
    (d / "files").mkdir()
    os.symlink("../shared", d / "files" / "conf")
    os.symlink("..", d / "files" / "loop")  # a cycle is walked once
    first = render(load_project(root), target="t", site="t", host="a")
    assert ign_text(first.ignition, "/etc/linked.conf") == "one\n"
    hashed = json.loads(first.identity)["overlays"]["linked"]
    assert "files/conf/x.conf" in hashed  # hashed under the path the render reads
    (d / "shared" / "x.conf").write_text("two\n")
    second = render(load_project(root), target="t", site="t", host="a")
    assert ign_text(second.ignition, "/etc/linked.conf") == "two\n"
    assert second.build_id != first.build_id


def test_symlink_escaping_the_overlay_is_refused(tmp_path):
    root = make_project(tmp_path / "p", target=TARGET + "  - linked\n")
    d = add_overlay(root, "linked", LINKED)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "x.conf").write_text("one\n")
    (d / "files").mkdir()
    os.symlink(tmp_path / "elsewhere", d / "files" / "conf")
    with pytest.raises(InputError, match="files/conf: symbolic link to .* leads outside the overlay linked"):
        render(load_project(root), target="t", site="t", host="a")


BAD_SOURCE = """\
storage:
  files:
{% for i in range(3) %}
    - path: /etc/fill{{ i }}
      contents:
        inline: "x"
{% endfor %}
    - path: /etc/bad
      contents:
        source: {{ "data:text/plain;base64" }}
"""


def test_butane_errors_point_at_the_overlay_template_line(tmp_path):
    root = make_project(tmp_path / "p", target=TARGET + "  - bad\n")
    add_overlay(root, "bad", BAD_SOURCE)
    with pytest.raises(CoreosInfraError) as e:
        render(load_project(root), target="t", site="t", host="a")
    text = str(e.value)
    line = text.splitlines()[1]
    assert line.startswith("overlays/bad/butane.yaml.j2:10: error at storage.files.")
    assert ".contents.source: unterminated parameter sequence (merged Butane line " in line
    assert text.splitlines()[-1] == "Error translating config: config generated was invalid"
