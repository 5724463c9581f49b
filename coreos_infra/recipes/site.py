"""Load and validate a site profile (``recipes/sites/<site>.yaml``).

Every value is checked where it is read; cross-field rules (addresses inside their networks, duplicate
hosts, DHCP pools, roles that need a static address, staggered update windows) are checked afterwards,
each reported at the offending node.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from coreos_infra.errors import InputError
from coreos_infra.recipes import checks
from coreos_infra.recipes.model import (
    DAYS,
    ROLES,
    AdminUser,
    Dhcp,
    DhcpRange,
    DhcpReservation,
    DhcpSubnet,
    Dns,
    DnsRecord,
    DnsZone,
    Host,
    Identity,
    Monitoring,
    Network,
    Ntp,
    Overlay,
    OverlayUse,
    Site,
    Updates,
    UpdateWindow,
)
from coreos_infra.recipes.overlay import check_overlay_vars
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
)
RECORD_TYPES = ("A", "AAAA", "CNAME", "TXT", "MX", "SRV", "NS", "PTR", "CAA")
STATIC_ROLES = ("dns", "ntp", "dhcp", "identity")  # clients must find these at a fixed address


def _each(node: Node | None, fn: Callable[[Node], T]) -> tuple[T, ...]:
    return tuple(fn(item) for item in node.list()) if node is not None else ()


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
    networks = _each(m.get("networks"), _network)
    _unique(m.get("networks"), networks, lambda n: n.name, "network name")
    hosts_node = m.require("hosts")
    hosts = tuple(_host(h, networks) for h in hosts_node.list())
    _check_hosts(hosts_node, hosts)
    dns = _dns(m.get("dns"), domain) if "dns" in m else Dns()
    ntp = _ntp(m.get("ntp"), networks) if "ntp" in m else Ntp(allow=tuple(n.cidr for n in networks))
    # what the DHCP defaults (routers, DNS and NTP servers) are computed from
    so_far = Site(name=name, path=path, domain=domain, timezone=timezone, admins=admins, networks=networks,
                  hosts=hosts, dns=dns)  # fmt: skip
    dhcp = _dhcp(m.get("dhcp"), so_far, domain) if "dhcp" in m else Dhcp()
    updates_node = m.get("updates")
    updates = _updates(updates_node, name) if updates_node is not None else Updates()
    monitoring = _monitoring(m.get("monitoring")) if "monitoring" in m else Monitoring()
    identity = _identity(m.get("identity"), domain) if "identity" in m else Identity()
    overlay_vars = _site_overlay_vars(m.get("overlays"), overlays)
    _check_roles(hosts_node, hosts, dns, dhcp, identity, ntp)
    _check_forwarders(m.get("dns"), hosts, dns)
    if updates.strategy == "periodic":
        assert updates_node is not None
        hosts = stagger(hosts, updates, updates_node, hosts_node)
    else:
        _no_pins(hosts, hosts_node, updates.strategy)
        if updates_node is None:
            _check_unstaggered(hosts, root)
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
    )


def _unique(parent: Node | None, items: tuple[Any, ...], key: Callable[[Any], Any], what: str) -> None:
    if parent is None:
        return
    nodes = parent.list()
    seen: dict[Any, int] = {}
    for i, item in enumerate(items):
        k = key(item)
        if k is None:
            continue
        if k in seen:
            raise nodes[i].error(f"duplicate {what} {str(k)!r} (also {parent.path}[{seen[k]}])")
        seen[k] = i


# ------------------------------------------------------------------------------------------- admins
def _admins(node: Node) -> tuple[AdminUser, ...]:
    admins = []
    for item in node.list():
        m = item.mapping(("name", "ssh_keys", "groups", "password_hash"))
        name_node = m.require("name")
        name = name_node.str()
        if not re.match(r"^[a-z_][a-z0-9_-]{0,31}$", name):
            raise name_node.error("not a valid user name")
        keys = _each(m.get("ssh_keys"), checks.ssh_key)
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
    _unique(node, tuple(admins), lambda a: a.name, "admin user")
    return tuple(admins)


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
    _unique(node, hosts, lambda h: h.name, "host name")
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


# ---------------------------------------------------------------------------------------------- dns
def _check_forwarders(node: Node | None, hosts: tuple[Host, ...], dns: Dns) -> None:
    """A DNS host forwarding to a DNS host of the site loops (CoreDNS's loop plugin would stop it)."""
    if node is None or "forwarders" not in (m := node.mapping()):
        return
    own: dict[ipaddress.IPv4Address | ipaddress.IPv6Address, str] = {
        h.address: h.name for h in hosts if "dns" in h.roles and h.address is not None
    }
    for item, addr in zip(m.require("forwarders").list(), dns.forwarders, strict=True):
        if addr in own:
            raise item.error(f"forwarder {addr} is the site's own DNS host {own[addr]}: queries would loop")


def _dns(node: Node | None, site_domain: str) -> Dns:
    assert node is not None
    m = node.mapping(("zones", "forwarders", "cache_seconds", "reverse_zones"))
    zones = _each(m.get("zones"), lambda z: _zone(z, site_domain))
    _unique(m.get("zones"), zones, lambda z: z.name, "zone")
    forwarders = _each(m.get("forwarders"), checks.ip)
    cache = 300
    if (c := m.get("cache_seconds")) is not None:
        cache = c.int()
        if not 0 <= cache <= 86400:
            raise c.error("cache_seconds must be between 0 and 86400")
    reverse = m.require("reverse_zones").bool() if "reverse_zones" in m else True
    return Dns(zones=zones, forwarders=forwarders, cache_seconds=cache, reverse_zones=reverse)


def _zone(node: Node, site_domain: str) -> DnsZone:
    m = node.mapping(("name", "records", "ttl", "serial", "host_records"))
    name = checks.domain(m.require("name"))
    records = _each(m.get("records"), _record)
    ttl = _int_range(m.get("ttl"), 3600, 0, 2**31 - 1)
    serial = _int_range(m.get("serial"), 1, 1, 2**32 - 1)
    host_records = m.require("host_records").bool() if "host_records" in m else name == site_domain
    return DnsZone(name=name, records=records, ttl=ttl, serial=serial, host_records=host_records)


def _int_range(node: Node | None, default: int, lo: int, hi: int) -> int:
    if node is None:
        return default
    value = node.int()
    if not lo <= value <= hi:
        raise node.error(f"must be between {lo} and {hi}")
    return value


def _record(node: Node) -> DnsRecord:
    m = node.mapping(("name", "type", "value", "ttl"))
    name_node = m.require("name")
    name = name_node.str()
    if not checks.dns_name_ok(name):
        raise name_node.error("not a valid record name")
    type_node = m.require("type")
    rtype = type_node.str().upper()
    if rtype not in RECORD_TYPES:
        raise type_node.error(f"unsupported record type {rtype!r}", hint=f"types: {', '.join(RECORD_TYPES)}")
    value_node = m.require("value")
    value = value_node.str()
    if rtype == "A":
        value = str(checks.ipv4(value_node))
    elif rtype == "AAAA":
        addr = checks.ip(value_node)
        if addr.version != 6:
            raise value_node.error("not an IPv6 address")
        value = str(addr)
    elif rtype in ("CNAME", "NS", "PTR") and not checks.dns_name_ok(value):
        raise value_node.error("not a valid DNS name")
    elif rtype == "TXT" and ('"' in value or "\n" in value):
        raise value_node.error("TXT values may not contain double quotes or newlines")
    ttl = _int_range(m.get("ttl"), 0, 0, 2**31 - 1) if "ttl" in m else None
    return DnsRecord(name=name, type=rtype, value=value, ttl=ttl)


# ---------------------------------------------------------------------------------------------- ntp
def _ntp(node: Node | None, networks: tuple[Network, ...]) -> Ntp:
    assert node is not None
    m = node.mapping(("servers", "pools", "allow", "local_stratum"))
    servers = _each(m.get("servers"), _ntp_source)
    pools = _each(m.get("pools"), _ntp_source)
    allow = _each(m.get("allow"), checks.ip_network) if "allow" in m else tuple(n.cidr for n in networks)
    stratum = _int_range(m.get("local_stratum"), 10, 0, 15)
    return Ntp(servers=servers, pools=pools, allow=allow, local_stratum=stratum)


def _ntp_source(node: Node) -> str:
    text = node.str()
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        pass
    if not checks.dns_name_ok(text) or text in ("@",) or text.startswith("*"):
        raise node.error("not a host name or IP address")
    return text


# --------------------------------------------------------------------------------------------- dhcp
def _dhcp(node: Node | None, site: Site, domain: str) -> Dhcp:
    assert node is not None
    m = node.mapping(("subnets",))
    subnets = []
    for i, item in enumerate(m.require("subnets").list()):
        subnets.append(_subnet(item, i + 1, site, domain))
    _unique(m.get("subnets"), tuple(subnets), lambda s: s.network, "DHCP subnet for network")
    return Dhcp(subnets=tuple(subnets))


def _subnet(node: Node, sid: int, site: Site, domain: str) -> DhcpSubnet:
    m = node.mapping(
        (
            "network",
            "ranges",
            "routers",
            "dns_servers",
            "ntp_servers",
            "domain",
            "lease_seconds",
            "next_server",
            "boot_file",
            "reservations",
        )
    )
    net_node = m.require("network")
    net = site.network(net_node.str())
    if net is None:
        raise net_node.error(
            f"unknown network {net_node.str()!r}",
            hint=f"networks: {', '.join(n.name for n in site.networks) or 'none defined'}",
        )
    cidr = net.cidr
    statics = {h.address: h.name for h in site.hosts if h.address is not None}

    def inside(n: Node) -> ipaddress.IPv4Address:
        addr = checks.ipv4(n)
        if addr not in cidr:
            raise n.error(f"address {addr} is not inside {net.name} ({cidr})")
        return addr

    ranges: list[DhcpRange] = []
    for r in m.require("ranges").list():
        if r.is_mapping:
            rm = r.mapping(("start", "end"))
            start, end = inside(rm.require("start")), inside(rm.require("end"))
        else:
            text = r.str()
            parts = [p.strip() for p in text.split("-")]
            if len(parts) != 2:
                raise r.error('not an address range (expected "FIRST - LAST" or {start, end})')
            try:
                start, end = ipaddress.IPv4Address(parts[0]), ipaddress.IPv4Address(parts[1])
            except ValueError:
                raise r.error('not an address range (expected "FIRST - LAST" or {start, end})') from None
            for a in (start, end):
                if a not in cidr:
                    raise r.error(f"address {a} is not inside {net.name} ({cidr})")
        if start > end:
            raise r.error(f"range starts after it ends ({start} > {end})")
        for other in ranges:
            if start <= other.end and other.start <= end:
                raise r.error(f"range overlaps {other}")
        for addr, hname in statics.items():
            if start <= addr <= end:
                raise r.error(f"range contains the static address {addr} of host {hname}")
        if net.gateway is not None and start <= net.gateway <= end:
            raise r.error(f"range contains the gateway {net.gateway}")
        if start == cidr.network_address or end == cidr.broadcast_address:
            raise r.error("range contains the network or broadcast address")
        ranges.append(DhcpRange(start, end))
    if not ranges:
        raise m.require("ranges").error("at least one range is required")

    def addr_list(key: str, default: tuple[ipaddress.IPv4Address, ...]) -> tuple[ipaddress.IPv4Address, ...]:
        return _each(m.get(key), checks.ipv4) if key in m else default

    routers = addr_list("routers", (net.gateway,) if net.gateway else ())
    forwarders = tuple(a for a in site.dns.forwarders if isinstance(a, ipaddress.IPv4Address))
    dns_servers = addr_list("dns_servers", site.role_addresses("dns") or forwarders)
    ntp_servers = addr_list("ntp_servers", site.role_addresses("ntp"))
    sub_domain = checks.domain(d) if (d := m.get("domain")) is not None else domain
    lease = _int_range(m.get("lease_seconds"), 3600, 60, 31 * 86400)
    next_server = checks.ipv4(ns) if (ns := m.get("next_server")) is not None else None
    boot_file = bf.str() if (bf := m.get("boot_file")) is not None else None
    reservations = []
    for r in m.get("reservations").list() if "reservations" in m else []:  # type: ignore[union-attr]
        rm = r.mapping(("mac", "address", "hostname"))
        addr = inside(rm.require("address"))
        if addr in statics:
            raise rm.require("address").error(
                f"address {addr} is the static address of host {statics[addr]}"
            )
        hn = checks.hostname(h) if (h := rm.get("hostname")) is not None else None
        reservations.append(DhcpReservation(mac=checks.mac(rm.require("mac")), address=addr, hostname=hn))
    _unique(m.get("reservations"), tuple(reservations), lambda r: r.mac, "reservation MAC")
    _unique(m.get("reservations"), tuple(reservations), lambda r: r.address, "reservation address")
    return DhcpSubnet(
        id=sid,
        network=net.name,
        cidr=cidr,
        ranges=tuple(ranges),
        routers=routers,
        dns_servers=dns_servers,
        ntp_servers=ntp_servers,
        domain=sub_domain,
        lease_seconds=lease,
        next_server=next_server,
        boot_file=boot_file,
        reservations=tuple(reservations),
    )


# ------------------------------------------------------------------------------------------ updates
def _window(node: Node) -> UpdateWindow:
    m = node.mapping(("days", "start_time", "length_minutes"))
    days_node = m.require("days")
    days: tuple[str, ...] = ()
    for d in days_node.list():
        day = d.str()
        if day not in DAYS:
            raise d.error(f"not a day ({', '.join(DAYS)})")
        if day in days:
            raise d.error(f"day {day} listed twice")
        days += (day,)
    if not days:
        raise days_node.error("at least one day is required")
    start = checks.time_of_day(m.require("start_time"))
    length = _int_range(m.require("length_minutes"), 60, 1, 7 * 1440)
    return UpdateWindow(days=days, start_time=start, length_minutes=length)


def _updates(node: Node, site_name: str) -> Updates:
    m = node.mapping(
        ("strategy", "windows", "time_zone", "fleet_lock", "rollout_wariness", "container_auto_update")
    )
    strategy = "periodic"
    if (s := m.get("strategy")) is not None:
        strategy = s.str()
        if strategy not in ("periodic", "fleet_lock", "immediate"):
            raise s.error("expected one of: periodic, fleet_lock, immediate")
    windows = _each(m.get("windows"), _window)
    if strategy == "periodic" and not windows:
        raise node.error("strategy periodic needs at least one window", path=node.child_path("windows"))
    if strategy != "periodic" and windows:
        raise m.require("windows").error(f"windows are only used with strategy periodic (not {strategy})")
    tz = checks.timezone(t) if (t := m.get("time_zone")) is not None else ""
    url, group = "", ""
    if (fl := m.get("fleet_lock")) is not None:
        if strategy != "fleet_lock":
            raise fl.error(f"fleet_lock is only used with strategy fleet_lock (not {strategy})")
        flm = fl.mapping(("url", "group"))
        url_node = flm.require("url")
        url = url_node.str()
        if not re.match(r"^https?://[^\s/]+", url):
            raise url_node.error("not an http(s) URL")
        group = site_name
        if (g := flm.get("group")) is not None:
            group = g.str()
            if not re.match(r"^[a-zA-Z0-9.-]+$", group):
                raise g.error("FleetLock group names may only contain letters, digits, '.' and '-'")
    elif strategy == "fleet_lock":
        raise node.error("strategy fleet_lock needs fleet_lock.url", path=node.child_path("fleet_lock"))
    if strategy == "fleet_lock" and not re.match(r"^[a-zA-Z0-9.-]+$", group):
        group = re.sub(r"[^a-zA-Z0-9.-]", "-", group)
    wariness = None
    if (w := m.get("rollout_wariness")) is not None:
        value = w.plain()
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
            raise w.error("rollout_wariness must be a number between 0.0 and 1.0")
        wariness = float(value)
    auto = m.require("container_auto_update").bool() if "container_auto_update" in m else True
    return Updates(
        strategy=strategy,
        windows=windows,
        time_zone=tz,
        fleet_lock_url=url,
        fleet_lock_group=group,
        rollout_wariness=wariness,
        container_auto_update=auto,
    )


def stagger(
    hosts: tuple[Host, ...], updates: Updates, updates_node: Node, hosts_node: Node
) -> tuple[Host, ...]:
    """Give every host an update window so that hosts sharing a role never have overlapping windows.

    A host may pin a window with ``update_window: N`` (an index into ``updates.windows``). The others
    get the first window that fits, trying in order; a backtracking search finds an assignment if one
    exists. Roles with a single host do not constrain anything.
    """
    windows = updates.windows
    items = hosts_node.list()
    pinned: dict[int, int] = {}
    for i, h in enumerate(hosts):
        if h.window_pin is not None:
            idx = h.window_pin
            if not 0 <= idx < len(windows):
                node = items[i].mapping().require("update_window")
                raise node.error(f"no such update window (updates.windows has {len(windows)})")
            pinned[i] = idx

    def conflicts(a: Host, b: Host) -> bool:
        return any(role in b.roles for role in a.roles)

    def solve(indices: list[int]) -> dict[int, int] | None:
        assigned: dict[int, int] = {}
        budget = [200_000]

        def rec(k: int) -> bool:
            if k == len(indices):
                return True
            budget[0] -= 1
            if budget[0] < 0:
                return False
            i = indices[k]
            # Spread hosts over the windows: start with the one after the previous host's.
            options = [pinned[i]] if i in pinned else [(k + j) % len(windows) for j in range(len(windows))]
            for w in options:
                if all(
                    not (conflicts(hosts[i], hosts[j]) and windows[w].overlaps(windows[assigned[j]]))
                    for j in assigned
                ):
                    assigned[i] = w
                    if rec(k + 1):
                        return True
                    del assigned[i]
            return False

        return dict(assigned) if rec(0) else None

    result = solve(list(range(len(hosts))))
    if result is None:
        where = updates_node.child_path("windows")
        for role in ROLES:
            group = [i for i, h in enumerate(hosts) if role in h.roles]
            if len(group) > 1 and solve(group) is None:
                names = ", ".join(hosts[i].name for i in group)
                raise InputError(
                    f"cannot stagger updates: the {role} hosts ({names}) need {len(group)} update windows "
                    f"that do not overlap, but updates.windows has only "
                    f"{_max_disjoint(windows)} such window(s)",
                    updates_node.location(where),
                    hint="add windows on other days/times, or unpin update_window on those hosts",
                )
        raise InputError(
            "cannot stagger updates: no assignment of update windows keeps hosts that share a role apart",
            updates_node.location(where),
        )
    return tuple(replace(h, update_window=windows[result[i]]) for i, h in enumerate(hosts))


def _no_pins(hosts: tuple[Host, ...], hosts_node: Node, strategy: str) -> None:
    for i, h in enumerate(hosts):
        if h.window_pin is not None:
            node = hosts_node.list()[i].mapping().require("update_window")
            raise node.error(f"update_window needs updates.strategy periodic (not {strategy})")


def _check_unstaggered(hosts: tuple[Host, ...], root: Node) -> None:
    """Without an updates section every host updates immediately: refuse that for redundant hosts."""
    for role in ROLES:
        group = [h.name for h in hosts if role in h.roles]
        if len(group) > 1:
            raise root.error(
                f"missing updates section: the {role} hosts ({', '.join(group)}) would all reboot as soon "
                "as an update lands",
                path="updates",
                hint="add updates: {strategy: periodic, windows: [...]} or a fleet_lock server",
            )


def _max_disjoint(windows: tuple[UpdateWindow, ...]) -> int:
    best = 0
    n = len(windows)
    for mask in range(1, 1 << min(n, 16)):
        chosen = [windows[i] for i in range(n) if mask >> i & 1]
        if len(chosen) > best and all(
            not a.overlaps(b) for x, a in enumerate(chosen) for b in chosen[x + 1 :]
        ):
            best = len(chosen)
    return best


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
    timeout = _int_range(m.get("first_start_timeout"), 1800, 300, 6 * 3600)
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
