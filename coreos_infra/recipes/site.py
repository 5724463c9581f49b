"""Load and validate a site profile (``recipes/sites/<site>.yaml``).

Every value is checked where it is read; cross-field rules (addresses inside their networks, duplicate
hosts, DHCP pools, roles that need a static address, staggered update windows) are checked afterwards,
each reported at the offending node.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from coreos_infra.recipes import boottestkey, checks
from coreos_infra.recipes.model import (
    ROLES,
    AdminUser,
    Dhcp,
    Dns,
    Host,
    Identity,
    Monitoring,
    Network,
    Ntp,
    Overlay,
    OverlayUse,
    Site,
    Updates,
)
from coreos_infra.recipes.overlay import check_overlay_vars
from coreos_infra.recipes.services import check_forwarders, parse_dhcp, parse_dns, parse_ntp
from coreos_infra.recipes.updates import check_no_pins, check_unstaggered, parse_updates, stagger
from coreos_infra.recipes.yamlsrc import Node, load_yaml

T = TypeVar("T")

SITE_KEYS = (
    "name",
    "description",
    "domain",
    "timezone",
    "admins",
    "networks",
    "dns",
    "ntp",
    "dhcp",
    "updates",
    "monitoring",
    "identity",
    "overlays",
    "hosts",
    "publish",  # read by coreos_infra.publish.settings
    "boot_test",
)
STATIC_ROLES = ("dns", "ntp", "dhcp", "identity")  # clients must find these at a fixed address


def load_site(path: Path, display: str, overlays: Mapping[str, Overlay]) -> Site:
    root = load_yaml(path, display)
    m = root.mapping(SITE_KEYS)
    name = path.name.removesuffix(".yaml").removesuffix(".yml")
    if (n := m.get("name")) is not None and n.str() != name:
        raise n.error(f"site name {n.str()!r} does not match the file name {name!r}")
    domain = checks.domain(m.require("domain"))
    tz_node = m.get("timezone")
    timezone = checks.timezone(tz_node) if tz_node is not None else "UTC"
    admins = _admins(m.require("admins"))
    networks = checks.each(m.get("networks"), _network)
    checks.unique(m.get("networks"), networks, lambda n: n.name, "network name")
    hosts_node = m.require("hosts")
    hosts = tuple(_host(h, networks) for h in hosts_node.list())
    _check_hosts(hosts_node, hosts)
    dns = parse_dns(m.get("dns"), domain) if "dns" in m else Dns()
    ntp = parse_ntp(m.get("ntp"), networks) if "ntp" in m else Ntp(allow=tuple(n.cidr for n in networks))
    # what the DHCP defaults (routers, DNS and NTP servers) are computed from
    so_far = Site(name=name, path=path, domain=domain, timezone=timezone, admins=admins, networks=networks,
                  hosts=hosts, dns=dns)  # fmt: skip
    dhcp = parse_dhcp(m.get("dhcp"), so_far, domain) if "dhcp" in m else Dhcp()
    updates_node = m.get("updates")
    updates = parse_updates(updates_node, name) if updates_node is not None else Updates()
    monitoring = _monitoring(m.get("monitoring")) if "monitoring" in m else Monitoring()
    identity = _identity(m.get("identity"), domain) if "identity" in m else Identity()
    overlay_vars = _site_overlay_vars(m.get("overlays"), overlays)
    boot_test_key = _boot_test(m.get("boot_test"), path)
    _check_roles(hosts_node, hosts, dns, dhcp, identity, ntp)
    check_forwarders(m.get("dns"), hosts, dns)
    if updates.strategy == "periodic":
        assert updates_node is not None
        hosts = stagger(hosts, updates, updates_node, hosts_node)
    else:
        check_no_pins(hosts, hosts_node, updates.strategy)
        if updates_node is None:
            check_unstaggered(hosts, root)
    return Site(
        name=name,
        path=path,
        domain=domain,
        timezone=timezone,
        admins=admins,
        networks=networks,
        hosts=hosts,
        dns=dns,
        ntp=ntp,
        dhcp=dhcp,
        updates=updates,
        monitoring=monitoring,
        identity=identity,
        overlay_vars=overlay_vars,
        source=display,
        boot_test_key=boot_test_key,
    )


# ------------------------------------------------------------------------------------------- admins
def _admins(node: Node) -> tuple[AdminUser, ...]:
    admins = []
    for item in node.list():
        m = item.mapping(("name", "ssh_keys", "groups", "password_hash"))
        name_node = m.require("name")
        name = name_node.str()
        if not re.match(r"^[a-z_][a-z0-9_-]{0,31}$", name):
            raise name_node.error("not a valid user name")
        keys = checks.each(m.get("ssh_keys"), checks.ssh_key)
        groups = g.str_list() if (g := m.get("groups")) is not None else ("wheel",)
        pw = checks.password_hash(p) if (p := m.get("password_hash")) is not None else None
        if not keys and pw is None:
            raise item.error(
                "admin user has neither ssh_keys nor password_hash; nobody could log in",
                path=item.child_path("ssh_keys"),
            )
        admins.append(AdminUser(name=name, ssh_keys=keys, groups=tuple(groups), password_hash=pw))
    if not admins:
        raise node.error("at least one admin user with an SSH key is required")
    checks.unique(node, tuple(admins), lambda a: a.name, "admin user")
    return tuple(admins)


def _boot_test(node: Node | None, site_file: Path) -> boottestkey.BootTestKey | None:
    """``boot_test: {ssh_key: <private key, relative to the site file>}`` (see recipes.boottestkey)."""
    if node is None:
        return None
    m = node.mapping(("ssh_key",))
    key = m.require("ssh_key")
    return boottestkey.site_key((site_file.parent / key.str()).resolve(), key.location())


# ----------------------------------------------------------------------------------------- networks
def _network(node: Node) -> Network:
    m = node.mapping(("name", "cidr", "gateway", "mtu", "ipv6"))
    cidr = checks.ipv4_network(m.require("cidr"))
    gateway = None
    if (g := m.get("gateway")) is not None:
        gateway = checks.ipv4(g)
        if gateway not in cidr:
            raise g.error(f"gateway {gateway} is not inside {cidr}")
    mtu = None
    if (mt := m.get("mtu")) is not None:
        mtu = mt.int()
        if not 576 <= mtu <= 9216:
            raise mt.error("mtu must be between 576 and 9216")
    ipv6 = "auto"
    if (v6 := m.get("ipv6")) is not None:
        ipv6 = v6.str()
        if ipv6 not in ("auto", "disabled", "ignore"):
            raise v6.error("expected one of: auto, disabled, ignore")
    return Network(name=checks.hostname(m.require("name")), cidr=cidr, gateway=gateway, mtu=mtu, ipv6=ipv6)


# -------------------------------------------------------------------------------------------- hosts
def _host(node: Node, networks: tuple[Network, ...]) -> Host:
    m = node.mapping(("name", "roles", "mac", "address", "network", "interface", "update_window"))
    name = checks.hostname(m.require("name"))
    roles: tuple[str, ...] = ()
    if (r := m.get("roles")) is not None:
        for item in r.list():
            role = item.str()
            if role not in ROLES:
                raise item.error(f"unknown role {role!r}", hint=f"roles: {', '.join(ROLES)}")
            if role in roles:
                raise item.error(f"role {role!r} listed twice")
            roles += (role,)
    mac = checks.mac(mm) if (mm := m.get("mac")) is not None else None
    address = None
    network = None
    addr_node = m.require("address")
    if addr_node.str() != "dhcp":
        address = checks.ipv4(addr_node)
        net_node = m.get("network")
        if net_node is not None:
            net = next((n for n in networks if n.name == net_node.str()), None)
            if net is None:
                raise net_node.error(
                    f"unknown network {net_node.str()!r}",
                    hint=f"networks: {', '.join(n.name for n in networks) or 'none defined'}",
                )
            if address not in net.cidr:
                raise addr_node.error(f"address {address} is not inside network {net.name} ({net.cidr})")
        else:
            net = next((n for n in networks if address in n.cidr), None)
            if net is None:
                raise addr_node.error(
                    f"address {address} is not inside any site network",
                    hint="add the network under networks:, or set address: dhcp",
                )
        if address in (net.cidr.network_address, net.cidr.broadcast_address):
            raise addr_node.error(f"address {address} is the network or broadcast address of {net.cidr}")
        if address == net.gateway:
            raise addr_node.error(f"address {address} is the gateway of network {net.name}")
        network = net.name
    elif m.get("network") is not None:
        raise m.require("network").error("network is only used with a static address")
    interface = None
    if (i := m.get("interface")) is not None:
        interface = i.str()
        if not re.match(r"^[A-Za-z0-9_.:-]{1,15}$", interface):
            raise i.error("not a network interface name")
    if address is not None and mac is None and interface is None:
        raise node.error(
            "a host with a static address needs mac (or interface) to match its NIC",
            path=node.child_path("mac"),
        )
    pin = None
    if (w := m.get("update_window")) is not None:
        pin = w.int()  # checked against updates.windows by stagger()
    return Host(
        name=name,
        roles=roles,
        mac=mac,
        address=address,
        network=network,
        interface=interface,
        window_pin=pin,
    )


def _check_hosts(node: Node, hosts: tuple[Host, ...]) -> None:
    items = node.list()
    if not items:
        raise node.error("a site needs at least one host")
    checks.unique(node, hosts, lambda h: h.name, "host name")
    seen_addr: dict[Any, int] = {}
    seen_mac: dict[str, int] = {}
    for i, h in enumerate(hosts):
        m = items[i].mapping()
        if h.address is not None:
            if h.address in seen_addr:
                raise m.require("address").error(
                    f"duplicate address {h.address} (also {node.path}[{seen_addr[h.address]}])"
                )
            seen_addr[h.address] = i
        if h.mac is not None:
            if h.mac in seen_mac:
                raise m.require("mac").error(f"duplicate MAC {h.mac} (also {node.path}[{seen_mac[h.mac]}])")
            seen_mac[h.mac] = i


def _check_roles(
    node: Node, hosts: tuple[Host, ...], dns: Dns, dhcp: Dhcp, identity: Identity, ntp: Ntp
) -> None:
    items = node.list()
    for i, h in enumerate(hosts):
        m = items[i].mapping()
        for role in h.roles:
            roles_node = m.require("roles")
            if role in STATIC_ROLES and h.address is None:
                raise m.require("address").error(f"a host with role {role} needs a static address, not dhcp")
            if role == "dhcp" and not dhcp.subnets:
                raise roles_node.error("role dhcp needs dhcp.subnets in the site")
            if role == "dns" and not dns.zones and not dns.forwarders:
                raise roles_node.error("role dns needs dns.zones or dns.forwarders in the site")
            if role == "ntp" and not ntp.servers and not ntp.pools and ntp.local_stratum == 0:
                raise roles_node.error("role ntp needs ntp.servers, ntp.pools or a local_stratum")
            if role == "identity" and identity.setup_dns and "dns" in h.roles:
                raise roles_node.error(
                    "roles dns and identity with identity.setup_dns would both serve port 53 on this host"
                )
            if role == "identity" and (not identity.realm or not identity.admin_password_file):
                raise roles_node.error("role identity needs identity.realm and identity.admin_password_file")


# ----------------------------------------------------------------------------- monitoring, identity
def _monitoring(node: Node | None) -> Monitoring:
    assert node is not None
    m = node.mapping(("node_exporter", "prometheus_retention"))
    ne = m.require("node_exporter").bool() if "node_exporter" in m else True
    retention = "15d"
    if (r := m.get("prometheus_retention")) is not None:
        retention = r.str()
        if not re.match(r"^[0-9]+[smhdwy]$", retention):
            raise r.error("not a duration such as 15d or 12h")
    return Monitoring(node_exporter=ne, prometheus_retention=retention)


def _identity(node: Node | None, domain: str) -> Identity:
    assert node is not None
    m = node.mapping(
        ("realm", "domain", "setup_dns", "admin_password_file", "first_start_timeout", "install_options")
    )
    realm = ""
    if (r := m.get("realm")) is not None:
        realm = r.str()
        if not re.match(r"^[A-Z0-9.-]+$", realm):
            raise r.error("a Kerberos realm is upper case, e.g. LAB.EXAMPLE")
    ipa_domain = checks.domain(d) if (d := m.get("domain")) is not None else domain
    setup_dns = m.require("setup_dns").bool() if "setup_dns" in m else False
    pw_file = p.str() if (p := m.get("admin_password_file")) is not None else ""
    timeout = checks.int_range(m.get("first_start_timeout"), 1800, 300, 6 * 3600)
    opts = m.require("install_options").str_list() if "install_options" in m else ()
    for i, opt in enumerate(opts):
        if not opt.startswith("--"):
            raise m.require("install_options").list()[i].error("ipa-server-install options start with --")
        if re.match(r"^--(admin|ds)-password|^-[pa]\b|^--password", opt):
            raise (
                m.require("install_options")
                .list()[i]
                .error("passwords do not belong in install_options; use admin_password_file")
            )
    return Identity(
        realm=realm,
        domain=ipa_domain,
        setup_dns=setup_dns,
        admin_password_file=pw_file,
        first_start_timeout=timeout,
        install_options=opts,
    )


def _site_overlay_vars(node: Node | None, overlays: Mapping[str, Overlay]) -> tuple[OverlayUse, ...]:
    if node is None:
        return ()
    out = []
    m = node.mapping()
    for name in m:
        key = m.key_node(name)
        if name not in overlays:
            raise key.error(f"unknown overlay {name!r}", hint=f"overlays: {', '.join(sorted(overlays))}")
        values = check_overlay_vars(overlays[name], m.items[name][1])
        out.append(OverlayUse(name=name, vars=values, location=str(key.location())))
    return tuple(out)
