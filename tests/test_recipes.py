"""Site profiles and target recipes: loading the shipped ones, and every class of bad input reported with its
exact message and position (``file:line:col: path: message``)."""

from __future__ import annotations

import ipaddress
from itertools import product
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from recipes_testlib import REPO, SITE, TARGET, make_project

from coreos_infra.errors import InputError
from coreos_infra.recipes import load_project
from coreos_infra.recipes.model import UpdateWindow
from coreos_infra.recipes.site import load_site


@pytest.fixture(scope="module")
def project():
    return load_project(REPO)


def test_shipped_project_loads(project):
    # every recipe file is a target, the five original ones among them (a new kind adds its recipe)
    assert set(project.targets) == {p.stem for p in (REPO / "recipes").glob("*.yaml")}
    assert set(project.targets) >= {"usb", "live", "pxe", "rpi4", "metal"}
    assert "lab" in project.sites
    assert set(project.overlays) == {"base", "network", "dns", "ntp", "dhcp", "monitoring", "identity"}


def test_lab_site_model(project):
    lab = project.site("lab")
    assert lab.domain == "lab.example"
    assert lab.timezone == "Europe/Berlin"
    assert [h.name for h in lab.hosts] == ["dns1", "dns2", "dhcp1"]
    dns = lab.hosts_with("dns")
    assert [h.name for h in dns] == ["dns1", "dns2"]
    assert all("ntp" in h.roles for h in dns)
    assert [h.name for h in lab.hosts_with("dhcp")] == ["dhcp1"]
    dns1 = lab.host("dns1")
    assert dns1 is not None
    assert dns1.mac == "52:54:00:4c:00:11"
    assert dns1.address == ipaddress.IPv4Address("10.0.2.11")
    assert dns1.network == "lan"
    # YAML 1.1 would read an unquoted 22:30 as a base-60 integer; start times stay strings
    assert all(isinstance(w.start_time, str) for w in lab.updates.windows)
    subnet = lab.dhcp.subnets[0]
    assert [str(a) for a in subnet.dns_servers] == ["10.0.2.11", "10.0.2.12"]  # default: the DNS hosts
    assert [str(a) for a in subnet.routers] == ["10.0.2.2"]  # default: the network's gateway
    assert lab.ntp.local_stratum == 10


def test_lab_redundant_hosts_have_disjoint_windows(project):
    lab = project.site("lab")
    dns1, dns2 = lab.hosts_with("dns")
    assert dns1.update_window is not None and dns2.update_window is not None
    assert not dns1.update_window.overlaps(dns2.update_window)


def test_target_models(project):
    usb = project.target("usb")
    assert (usb.kind, usb.arch, usb.stream, usb.release) == ("iso", "x86_64", "stable", "")
    assert (usb.base.platform, usb.base.format) == ("metal", "iso")
    assert usb.options["mode"] == "install" and usb.options["dest_device"] == "/dev/vda"
    assert project.target("live").options["mode"] == "live"
    rpi4 = project.target("rpi4")
    assert (rpi4.arch, rpi4.base.format) == ("aarch64", "raw.xz")
    assert rpi4.options["firmware"] == {"version": "v1.50"}
    assert rpi4.options["ram_limit_3gb"] is False
    assert (project.target("pxe").base.format, project.target("metal").base.format) == ("pxe", "raw.xz")
    assert [u.name for u in usb.overlays] == ["base", "network", "monitoring"]


def test_unknown_site_and_target(project):
    with pytest.raises(InputError, match="unknown site 'nope'"):
        project.site("nope")
    with pytest.raises(InputError, match="unknown target 'floppy'"):
        project.target("floppy")


@pytest.mark.parametrize(
    "a, b, overlap",
    [
        (("Mon", "01:00", 60), ("Mon", "01:30", 60), True),
        (("Mon", "01:00", 60), ("Mon", "02:00", 60), False),  # back to back is fine
        (("Sun", "23:30", 60), ("Mon", "00:00", 10), True),  # wraps past midnight into the next day
        (("Sun", "23:30", 60), ("Mon", "00:30", 10), False),
        (("Tue", "03:00", 60), ("Wed", "03:00", 60), False),
    ],
)
def test_window_overlap(a, b, overlap):
    wa = UpdateWindow(days=(a[0],), start_time=a[1], length_minutes=a[2])
    wb = UpdateWindow(days=(b[0],), start_time=b[1], length_minutes=b[2])
    assert wa.overlaps(wb) is overlap
    assert wb.overlaps(wa) is overlap


def _load(tmp_path: Path, *, site: str = SITE, target: str = TARGET):
    make_project(tmp_path, site=site, target=target)
    return load_project(tmp_path)


def test_minimal_site_loads(tmp_path):
    p = _load(tmp_path)
    a, b = p.site("t").hosts
    assert a.update_window is not None and b.update_window is not None
    assert a.update_window.days == ("Mon",) and b.update_window.days == ("Tue",)


def test_three_hosts_two_roles_stagger(tmp_path):
    site = (
        SITE + '  - name: c\n    roles: [ntp, dns]\n    mac: "52:54:00:00:00:03"\n    address: 10.1.0.12\n'
    )
    site = site.replace(
        '    - {days: [Tue], start_time: "01:00", length_minutes: 60}\n',
        '    - {days: [Tue], start_time: "01:00", length_minutes: 60}\n'
        '    - {days: [Wed], start_time: "01:00", length_minutes: 60}\n',
    )
    hosts = _load(tmp_path, site=site).site("t").hosts
    windows = [h.update_window for h in hosts]
    for i in range(3):
        for j in range(i + 1, 3):
            assert not windows[i].overlaps(windows[j])  # type: ignore[union-attr]


def test_pinned_window_is_respected(tmp_path):
    site = SITE.replace(
        '    mac: "52:54:00:00:00:01"\n', '    mac: "52:54:00:00:00:01"\n    update_window: 1\n'
    )
    a, b = _load(tmp_path, site=site).site("t").hosts
    assert a.update_window.days == ("Tue",)  # type: ignore[union-attr]
    assert b.update_window.days == ("Mon",)  # type: ignore[union-attr]


SITE_ERRORS = {
    "unknown key": (SITE + "dnss: {}\n", "recipes/sites/t.yaml:25:1: dnss: unknown key"),
    "unknown nested key": (
        SITE.replace('    mac: "52:54:00:00:00:02"', '    macc: "52:54:00:00:00:02"'),
        "recipes/sites/t.yaml:23:5: hosts[1].macc: unknown key",
    ),
    "wrong type": (
        SITE.replace(
            '"01:00", length_minutes: 60}\n    - {days: [Tue]',
            '"01:00", length_minutes: "60"}\n    - {days: [Tue]',
        ),
        "recipes/sites/t.yaml:14:58: updates.windows[0].length_minutes: expected an integer, got a string",
    ),
    "wrong type, list": (
        SITE.replace("forwarders: [10.1.0.1]", "forwarders: 10.1.0.1"),
        "recipes/sites/t.yaml:10:15: dns.forwarders: expected a list, got a string",
    ),
    "bad MAC": (
        SITE.replace('"52:54:00:00:00:02"', '"52:54:00:00:00:0g"'),
        "recipes/sites/t.yaml:23:10: hosts[1].mac: not a MAC address",
    ),
    "bad IP": (
        SITE.replace("10.1.0.11", "10.1.0.300"),
        "recipes/sites/t.yaml:24:14: hosts[1].address: not an IPv4 address",
    ),
    "bad CIDR": (
        SITE.replace("10.1.0.0/24", "10.1.0.0/33"),
        "recipes/sites/t.yaml:7:11: networks[0].cidr: not a CIDR network (expected ADDRESS/PREFIX, e.g. 192.168.50.0/24)",  # noqa: E501
    ),
    "CIDR with host bits": (
        SITE.replace("10.1.0.0/24", "10.1.0.5/24"),
        "recipes/sites/t.yaml:7:11: networks[0].cidr: not a CIDR network: host bits set (did you mean 10.1.0.0/24?)",  # noqa: E501
    ),
    "missing required value": (
        SITE.replace("domain: t.example\n", "timezone: UTC\n"),
        "recipes/sites/t.yaml:1:1: domain: missing required value",
    ),
    "missing host name": (
        SITE.replace("  - name: b\n    roles: [dns]\n", "  - roles: [dns]\n"),
        "recipes/sites/t.yaml:21:5: hosts[1].name: missing required value",
    ),
    "empty value": (
        SITE.replace("    gateway: 10.1.0.1\n", "    gateway:\n"),
        None,  # an empty optional value means "not set": loads
    ),
    "duplicate host name": (
        SITE.replace("  - name: b\n", "  - name: a\n"),
        "recipes/sites/t.yaml:21:5: hosts[1]: duplicate host name 'a' (also hosts[0])",
    ),
    "duplicate address": (
        SITE.replace("10.1.0.11", "10.1.0.10"),
        "recipes/sites/t.yaml:24:14: hosts[1].address: duplicate address 10.1.0.10 (also hosts[0])",
    ),
    "duplicate MAC": (
        SITE.replace('"52:54:00:00:00:02"', '"52:54:00:00:00:01"'),
        "recipes/sites/t.yaml:23:10: hosts[1].mac: duplicate MAC 52:54:00:00:00:01 (also hosts[0])",
    ),
    "windows impossible to stagger": (
        SITE.replace("[Tue], start_time", "[Mon], start_time"),
        "recipes/sites/t.yaml:12:3: updates.windows: cannot stagger updates: the dns hosts (a, b) need 2 update "  # noqa: E501
        "windows that do not overlap, but updates.windows has only 1 such window(s)",
    ),
    "no updates section for redundant hosts": (
        SITE.split("updates:")[0] + "hosts:" + SITE.split("hosts:")[1],
        "recipes/sites/t.yaml:1:1: updates: missing updates section: the dns hosts (a, b) would all reboot as "  # noqa: E501
        "soon as an update lands",
    ),
    "unknown role": (
        SITE.replace(
            'roles: [dns]\n    mac: "52:54:00:00:00:02"', 'roles: [dnss]\n    mac: "52:54:00:00:00:02"'
        ),
        "recipes/sites/t.yaml:22:13: hosts[1].roles[0]: unknown role 'dnss'",
    ),
    "DNS host on DHCP": (
        SITE.replace("10.1.0.11", "dhcp"),
        "recipes/sites/t.yaml:24:14: hosts[1].address: a host with role dns needs a static address, not dhcp",  # noqa: E501
    ),
    "address outside the networks": (
        SITE.replace("10.1.0.11", "10.2.0.11"),
        "recipes/sites/t.yaml:24:14: hosts[1].address: address 10.2.0.11 is not inside any site network",
    ),
    "address is the gateway": (
        SITE.replace("10.1.0.11", "10.1.0.1"),
        "recipes/sites/t.yaml:24:14: hosts[1].address: address 10.1.0.1 is the gateway of network lan",
    ),
    "YAML syntax": (
        SITE.replace("  - name: lan\n", "  - name: lan\n   x: [\n"),
        "recipes/sites/t.yaml:7:4: YAML syntax error: expected <block end>, but found '<block mapping start>'",  # noqa: E501
    ),
    "duplicate key": (
        SITE.replace("    gateway: 10.1.0.1\n", "    gateway: 10.1.0.1\n    gateway: 10.1.0.2\n"),
        "recipes/sites/t.yaml:9:5: networks[0].gateway: duplicate key (first defined on line 8)",
    ),
    "bad time of day": (
        SITE.replace(
            '"01:00", length_minutes: 60}\n    - {days: [Tue]',
            '"25:00", length_minutes: 60}\n    - {days: [Tue]',
        ),
        'recipes/sites/t.yaml:14:33: updates.windows[0].start_time: not a time of day (expected "HH:MM", 24-hour clock)',  # noqa: E501
    ),
    "bad SSH key": (
        SITE.replace("AAAAC3Nz", "BBBBC3Nz"),
        "recipes/sites/t.yaml:4:16: admins[0].ssh_keys[0]: not an SSH public key",
    ),
    "plain password": (
        SITE.replace("    ssh_keys:", "    password_hash: hunter2\n    ssh_keys:"),
        "recipes/sites/t.yaml:4:20: admins[0].password_hash: not a crypt(3) password hash",
    ),
    "unknown overlay variable": (
        SITE + "overlays:\n  dns:\n    imagee: x\n",
        "recipes/sites/t.yaml:27:5: overlays.dns.imagee: unknown variable for overlay dns",
    ),
    "image not pinned": (
        SITE + "overlays:\n  dns:\n    image: docker.io/coredns/coredns:latest\n",
        "recipes/sites/t.yaml:27:12: overlays.dns.image: image tag 'latest' is not a pin; use a version tag",
    ),
    "image without tag": (
        SITE + "overlays:\n  dns:\n    image: docker.io/coredns/coredns\n",
        "recipes/sites/t.yaml:27:12: overlays.dns.image: image is not pinned by tag (add :TAG, optionally "
        "@sha256:DIGEST)",
    ),
    "overlay variable type": (
        SITE + "overlays:\n  dns:\n    health_port: eighty\n",
        "recipes/sites/t.yaml:27:18: overlays.dns.health_port: expected an integer, got a string",
    ),
    "unknown overlay in site": (
        SITE + "overlays:\n  dnz: {}\n",
        "recipes/sites/t.yaml:26:3: overlays.dnz: unknown overlay 'dnz'",
    ),
    "DHCP range over a static host": (
        SITE + "dhcp:\n  subnets:\n    - network: lan\n      ranges: ['10.1.0.5 - 10.1.0.20']\n",
        "recipes/sites/t.yaml:28:16: dhcp.subnets[0].ranges[0]: range contains the static address 10.1.0.10 of "  # noqa: E501
        "host a",
    ),
    "DHCP range outside the subnet": (
        SITE + "dhcp:\n  subnets:\n    - network: lan\n      ranges: [{start: 10.1.0.100, end: 10.1.1.5}]\n",
        "recipes/sites/t.yaml:28:41: dhcp.subnets[0].ranges[0].end: address 10.1.1.5 is not inside lan (10.1.0.0/24)",  # noqa: E501
    ),
    "DHCP role without subnets": (
        SITE.replace(
            'roles: [dns]\n    mac: "52:54:00:00:00:02"', 'roles: [dns, dhcp]\n    mac: "52:54:00:00:00:02"'
        ),
        "recipes/sites/t.yaml:22:12: hosts[1].roles: role dhcp needs dhcp.subnets in the site",
    ),
    "forwarding to itself": (
        SITE.replace("forwarders: [10.1.0.1]", "forwarders: [9.9.9.9, 10.1.0.11]"),
        "recipes/sites/t.yaml:10:25: dns.forwarders[1]: forwarder 10.1.0.11 is the site's own DNS host b: "
        "queries would loop",
    ),
    "site name differs from the file": (
        "name: other\n" + SITE,
        "recipes/sites/t.yaml:1:7: name: site name 'other' does not match the file name 't'",
    ),
}


@pytest.mark.parametrize("case", list(SITE_ERRORS))
def test_site_errors(tmp_path, case):
    text, expected = SITE_ERRORS[case]
    if expected is None:
        _load(tmp_path, site=text)
        return
    with pytest.raises(InputError) as e:
        _load(tmp_path, site=text)
    assert str(e.value).splitlines()[0] == expected


TARGET_ERRORS = {
    "unknown kind": (
        TARGET.replace("kind: iso", "kind: floppy"),
        "recipes/t.yaml:1:7: kind: unknown target kind 'floppy'",
    ),
    "unknown overlay": (TARGET + "  - nope\n", "recipes/t.yaml:8:5: overlays[2]: unknown overlay 'nope'"),
    "overlay listed twice": (
        TARGET + "  - base\n",
        "recipes/t.yaml:8:5: overlays[2]: overlay 'base' listed twice",
    ),
    "install without a device": (
        TARGET.replace("  dest_device: /dev/vda\n", ""),
        "recipes/t.yaml:3:3: options.dest_device: mode install needs dest_device (the disk to install to)",
    ),
    "live with a device": (
        TARGET.replace("mode: install", "mode: live"),
        "recipes/t.yaml:4:16: options.dest_device: dest_device is only used with mode install",
    ),
    "unknown option": (
        TARGET.replace("  mode: install\n", "  mode: install\n  colour: blue\n"),
        "recipes/t.yaml:4:3: options.colour: unknown key",
    ),
    "rpi4 is aarch64": (
        "kind: rpi4\narch: x86_64\n",
        "recipes/t.yaml:2:7: arch: the Raspberry Pi 4 target is aarch64",
    ),
    "overlay variable type": (
        TARGET.replace("  - network\n", "  - {name: network, vars: {dns_servers: 1.2.3.4}}\n"),
        "recipes/t.yaml:7:41: overlays[1].vars.dns_servers: expected a list, got a string",
    ),
    "bad release": (
        TARGET + "release: 40.2024\n",
        "recipes/t.yaml:8:10: release: not an FCOS release such as 40.20240519.3.0",
    ),
    "bad stream": (TARGET + "stream: nightly\n", "recipes/t.yaml:8:9: stream: unknown stream 'nightly'"),
    "wrong base artifact": (
        TARGET + "base: {platform: metal, format: raw.xz}\n",
        "recipes/t.yaml:8:7: base: the iso target cannot start from metal/raw.xz",
    ),
    "bad device": (
        TARGET.replace("/dev/vda", "sda"),
        "recipes/t.yaml:4:16: options.dest_device: not a device path (e.g. /dev/vda or /dev/disk/by-id/...)",
    ),
    "kernel argument with a space": (
        TARGET.replace("  mode: install\n", "  mode: install\n  kernel_args: ['quiet splash']\n"),
        "recipes/t.yaml:4:17: options.kernel_args[0]: one kernel argument per list item, without spaces",
    ),
    "firmware URL without checksum": (
        "kind: rpi4\noptions:\n  firmware: {version: v1.50, url: 'https://example.com/fw.zip'}\n",
        "recipes/t.yaml:3:13: options.firmware.sha256: a firmware url needs its sha256 (nothing unverified is used)",  # noqa: E501
    ),
}


@pytest.mark.parametrize("case", list(TARGET_ERRORS))
def test_target_errors(tmp_path, case):
    text, expected = TARGET_ERRORS[case]
    with pytest.raises(InputError) as e:
        _load(tmp_path, target=text)
    assert str(e.value).splitlines()[0] == expected


def test_error_hint_lists_allowed_keys(tmp_path):
    with pytest.raises(InputError) as e:
        _load(tmp_path, site=SITE + "dnss: {}\n")
    assert e.value.hint is not None and "dns" in e.value.hint.split(": ", 1)[1].split(", ")


def test_yaml_11_traps_stay_strings(tmp_path):
    # Unquoted MAC (base-60 integer in YAML 1.1) and an unquoted HH:MM time are read as written.
    site = SITE.replace('"52:54:00:00:00:01"', "52:54:00:00:00:01").replace('"01:00"', "01:00")
    p = _load(tmp_path, site=site)
    a = p.site("t").hosts[0]
    assert a.mac == "52:54:00:00:00:01"
    assert p.site("t").updates.windows[0].start_time == "01:00"


def test_fleet_lock_policy(tmp_path):
    site = (
        SITE.split("updates:")[0]
        + ("updates:\n  strategy: fleet_lock\n  fleet_lock: {url: 'http://lock.t.example:8080'}\n")
        + "hosts:"
        + SITE.split("hosts:")[1]
    )
    s = _load(tmp_path, site=site).site("t")
    assert s.updates.strategy == "fleet_lock"
    assert s.updates.fleet_lock_url == "http://lock.t.example:8080"
    assert s.updates.fleet_lock_group == "t"
    assert all(h.update_window is None for h in s.hosts)


# ------------------------------------------------------------------------------------ staggering, property
_DAYS = ["Mon", "Tue", "Wed"]


@settings(max_examples=60, deadline=None)
@given(
    windows=st.lists(
        st.tuples(st.sampled_from(_DAYS), st.integers(0, 23), st.sampled_from([30, 60, 180, 1500])),
        min_size=1,
        max_size=4,
    ),
    roles=st.lists(
        st.sets(st.sampled_from(["dns", "ntp", "monitoring"]), max_size=2), min_size=1, max_size=5
    ),
)
def test_stagger_property(tmp_path_factory, windows, roles):
    """Hosts sharing a role get non-overlapping windows, or the error says no such assignment exists."""
    lines = [
        "domain: t.example",
        "admins: [{name: core, ssh_keys: ['" + SITE.split('ssh_keys: ["')[1].split('"')[0] + "']}]",
        "networks: [{name: lan, cidr: 10.1.0.0/24}]",
        "dns: {forwarders: [10.1.0.1]}",
        "updates:",
        "  strategy: periodic",
        "  windows:",
    ]
    lines += [f"    - {{days: [{d}], start_time: '{h:02d}:00', length_minutes: {n}}}" for d, h, n in windows]
    lines.append("hosts:")
    for i, r in enumerate(roles):
        lines.append(f"  - {{name: h{i}, roles: [{', '.join(sorted(r))}], mac: '52:54:00:00:01:{i:02x}', "
                     f"address: 10.1.0.{10 + i}}}")  # fmt: skip
    path = tmp_path_factory.mktemp("stagger") / "t.yaml"
    path.write_text("\n".join(lines) + "\n")
    ws = [UpdateWindow(days=(d,), start_time=f"{h:02d}:00", length_minutes=n) for d, h, n in windows]

    def valid(assign: tuple[int, ...]) -> bool:
        return all(
            not (roles[i] & roles[j]) or not ws[assign[i]].overlaps(ws[assign[j]])
            for i in range(len(roles))
            for j in range(i + 1, len(roles))
        )

    possible = any(valid(a) for a in product(range(len(ws)), repeat=len(roles)))
    try:
        site = load_site(path, "t.yaml", {})
    except InputError as e:
        assert not possible, str(e)
        assert "cannot stagger updates" in str(e)
        return
    assert possible
    chosen = tuple(ws.index(h.update_window) for h in site.hosts)  # type: ignore[arg-type]
    assert valid(chosen)


def test_yaml_anchors_and_merge_keys(tmp_path):
    site = SITE.replace("  - name: a\n    roles: [dns]\n", "  - &dns\n    name: a\n    roles: [dns]\n")
    site = site.replace("  - name: b\n    roles: [dns]\n", "  - <<: *dns\n    name: b\n")
    a, b = _load(tmp_path, site=site).site("t").hosts
    assert (a.name, b.name) == ("a", "b") and a.roles == b.roles == ("dns",)
    assert b.mac == "52:54:00:00:00:02"  # the host's own value wins over the merged one


def test_dhcp_dns_defaults_to_forwarders_without_dns_hosts(tmp_path):
    site = SITE.replace("roles: [dns]", "roles: []").replace(
        "forwarders: [10.1.0.1]", 'forwarders: [10.1.0.1, "::1"]'
    )
    site = site.split("updates:")[0] + "hosts:" + site.split("hosts:")[1]
    site += "dhcp:\n  subnets:\n    - network: lan\n      ranges: ['10.1.0.100 - 10.1.0.110']\n"
    subnet = _load(tmp_path, site=site).site("t").dhcp.subnets[0]
    assert [str(a) for a in subnet.dns_servers] == ["10.1.0.1"]  # IPv4 forwarders only
    assert subnet.ntp_servers == ()


# ------------------------------------------------------------------------------- YAML size limits


def _alias_bomb(levels: int, width: int = 9, indent: str = "") -> str:
    """``a0: &a0 [x, x, ...]``, ``a1: &a1 [*a0, *a0, ...]`` ...: ``width ** levels`` values expanded."""
    lines = [f"{indent}a0: &a0 [{', '.join(['x'] * width)}]"]
    for i in range(1, levels):
        lines.append(f"{indent}a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


def test_yaml_alias_bomb_is_refused_with_its_line() -> None:
    from coreos_infra.recipes.yamlsrc import MAX_NODES, parse_yaml

    text = "name: t\n" + _alias_bomb(9)  # 9 ** 9 = 387 million values when expanded
    with pytest.raises(InputError) as e:
        parse_yaml(text, "sites/t.yaml")
    # 9 ** 6 > MAX_NODES >= 9 ** 5: the first list that expands too far is a5 on line 7
    assert 9**5 < MAX_NODES < 9**6
    assert str(e.value).startswith("sites/t.yaml:7:")
    assert "aliases expand this value to more than" in str(e.value)
    assert "recipes/README.md" in str(e.value)


def test_yaml_recursive_alias_and_depth_are_refused() -> None:
    from coreos_infra.recipes.yamlsrc import MAX_DEPTH, parse_yaml

    with pytest.raises(InputError, match=r"^t.yaml:2:.*recursive YAML alias"):
        parse_yaml("a: 1\nb: &x [1, *x]\n", "t.yaml").plain()
    with pytest.raises(InputError, match=f"^t.yaml:.*nested more than {MAX_DEPTH} levels"):
        parse_yaml("a: " + "[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5) + "\n", "t.yaml")
    with pytest.raises(InputError, match=f"^t.yaml.*nested more than {MAX_DEPTH} levels"):
        parse_yaml("a: " + "[" * 5000 + "]" * 5000 + "\n", "t.yaml")  # the composer itself recurses
    # within the limits, shared anchors are fine
    assert parse_yaml(_alias_bomb(4), "t.yaml").plain()["a3"][0][0][0] == ["x"] * 9


def test_site_with_alias_bomb_fails_with_located_error(tmp_path: Path) -> None:
    site = SITE + "description:\n" + _alias_bomb(7, indent="  ")
    root = make_project(tmp_path, site=site)
    with pytest.raises(InputError) as e:
        load_project(root)
    assert "recipes/sites/t.yaml:" in str(e.value) and "aliases expand" in str(e.value)
