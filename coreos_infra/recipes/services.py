"""The site's network services: ``dns`` (zones, records, forwarders), ``ntp`` and ``dhcp`` (subnets,
ranges, reservations), each value checked where it is read and reported at its node."""

from __future__ import annotations

import ipaddress

from coreos_infra.recipes import checks
from coreos_infra.recipes.model import (
    Dhcp,
    DhcpRange,
    DhcpReservation,
    DhcpSubnet,
    Dns,
    DnsRecord,
    DnsZone,
    Host,
    Network,
    Ntp,
    Site,
)
from coreos_infra.recipes.yamlsrc import Node

RECORD_TYPES = ("A", "AAAA", "CNAME", "TXT", "MX", "SRV", "NS", "PTR", "CAA")


# ---------------------------------------------------------------------------------------------- dns
def check_forwarders(node: Node | None, hosts: tuple[Host, ...], dns: Dns) -> None:
    """A DNS host forwarding to a DNS host of the site loops (CoreDNS's loop plugin would stop it)."""
    if node is None or "forwarders" not in (m := node.mapping()):
        return
    own: dict[ipaddress.IPv4Address | ipaddress.IPv6Address, str] = {
        h.address: h.name for h in hosts if "dns" in h.roles and h.address is not None
    }
    for item, addr in zip(m.require("forwarders").list(), dns.forwarders, strict=True):
        if addr in own:
            raise item.error(f"forwarder {addr} is the site's own DNS host {own[addr]}: queries would loop")


def parse_dns(node: Node | None, site_domain: str) -> Dns:
    assert node is not None
    m = node.mapping(("zones", "forwarders", "cache_seconds", "reverse_zones"))
    zones = checks.each(m.get("zones"), lambda z: _zone(z, site_domain))
    checks.unique(m.get("zones"), zones, lambda z: z.name, "zone")
    forwarders = checks.each(m.get("forwarders"), checks.ip)
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
    records = checks.each(m.get("records"), _record)
    ttl = checks.int_range(m.get("ttl"), 3600, 0, 2**31 - 1)
    serial = checks.int_range(m.get("serial"), 1, 1, 2**32 - 1)
    host_records = m.require("host_records").bool() if "host_records" in m else name == site_domain
    return DnsZone(name=name, records=records, ttl=ttl, serial=serial, host_records=host_records)


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
    ttl = checks.int_range(m.get("ttl"), 0, 0, 2**31 - 1) if "ttl" in m else None
    return DnsRecord(name=name, type=rtype, value=value, ttl=ttl)


# ---------------------------------------------------------------------------------------------- ntp
def parse_ntp(node: Node | None, networks: tuple[Network, ...]) -> Ntp:
    assert node is not None
    m = node.mapping(("servers", "pools", "allow", "local_stratum"))
    servers = checks.each(m.get("servers"), _ntp_source)
    pools = checks.each(m.get("pools"), _ntp_source)
    allow = (
        checks.each(m.get("allow"), checks.ip_network) if "allow" in m else tuple(n.cidr for n in networks)
    )
    stratum = checks.int_range(m.get("local_stratum"), 10, 0, 15)
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
def parse_dhcp(node: Node | None, site: Site, domain: str) -> Dhcp:
    assert node is not None
    m = node.mapping(("subnets",))
    subnets = []
    for i, item in enumerate(m.require("subnets").list()):
        subnets.append(_subnet(item, i + 1, site, domain))
    checks.unique(m.get("subnets"), tuple(subnets), lambda s: s.network, "DHCP subnet for network")
    return Dhcp(subnets=tuple(subnets))


SUBNET_KEYS = ("network", "ranges", "routers", "dns_servers", "ntp_servers", "domain", "lease_seconds",
               "next_server", "boot_file", "reservations")  # fmt: skip
Statics = dict[ipaddress.IPv4Address, str]  # static host address -> host name
_RANGE_SYNTAX = 'not an address range (expected "FIRST - LAST" or {start, end})'


def _subnet(node: Node, sid: int, site: Site, domain: str) -> DhcpSubnet:
    m = node.mapping(SUBNET_KEYS)
    net_node = m.require("network")
    net = site.network(net_node.str())
    if net is None:
        raise net_node.error(
            f"unknown network {net_node.str()!r}",
            hint=f"networks: {', '.join(n.name for n in site.networks) or 'none defined'}",
        )
    statics = {h.address: h.name for h in site.hosts if h.address is not None}
    ranges = _ranges(m.require("ranges"), net, statics)

    def addr_list(key: str, default: tuple[ipaddress.IPv4Address, ...]) -> tuple[ipaddress.IPv4Address, ...]:
        return checks.each(m.get(key), checks.ipv4) if key in m else default

    forwarders = tuple(a for a in site.dns.forwarders if isinstance(a, ipaddress.IPv4Address))
    return DhcpSubnet(
        id=sid,
        network=net.name,
        cidr=net.cidr,
        ranges=ranges,
        routers=addr_list("routers", (net.gateway,) if net.gateway else ()),
        dns_servers=addr_list("dns_servers", site.role_addresses("dns") or forwarders),
        ntp_servers=addr_list("ntp_servers", site.role_addresses("ntp")),
        domain=checks.domain(d) if (d := m.get("domain")) is not None else domain,
        lease_seconds=checks.int_range(m.get("lease_seconds"), 3600, 60, 31 * 86400),
        next_server=checks.ipv4(ns) if (ns := m.get("next_server")) is not None else None,
        boot_file=bf.str() if (bf := m.get("boot_file")) is not None else None,
        reservations=_reservations(m.get("reservations"), net, statics),
    )


def _inside(n: Node, net: Network) -> ipaddress.IPv4Address:
    addr = checks.ipv4(n)
    if addr not in net.cidr:
        raise n.error(f"address {addr} is not inside {net.name} ({net.cidr})")
    return addr


def _range_ends(r: Node, net: Network) -> tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]:
    """``{start, end}`` or ``"FIRST - LAST"``, both inside ``net``."""
    if r.is_mapping:
        rm = r.mapping(("start", "end"))
        return _inside(rm.require("start"), net), _inside(rm.require("end"), net)
    parts = [p.strip() for p in r.str().split("-")]
    if len(parts) != 2:
        raise r.error(_RANGE_SYNTAX)
    try:
        start, end = ipaddress.IPv4Address(parts[0]), ipaddress.IPv4Address(parts[1])
    except ValueError:
        raise r.error(_RANGE_SYNTAX) from None
    for a in (start, end):
        if a not in net.cidr:
            raise r.error(f"address {a} is not inside {net.name} ({net.cidr})")
    return start, end


def _ranges(node: Node, net: Network, statics: Statics) -> tuple[DhcpRange, ...]:
    """The pools: inside the network, apart from each other, the static hosts, the gateway, the network and
    broadcast addresses."""
    cidr = net.cidr
    ranges: list[DhcpRange] = []
    for r in node.list():
        start, end = _range_ends(r, net)
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
        raise node.error("at least one range is required")
    return tuple(ranges)


def _reservations(node: Node | None, net: Network, statics: Statics) -> tuple[DhcpReservation, ...]:
    reservations = []
    for r in node.list() if node is not None else []:
        rm = r.mapping(("mac", "address", "hostname"))
        addr = _inside(rm.require("address"), net)
        if addr in statics:
            raise rm.require("address").error(
                f"address {addr} is the static address of host {statics[addr]}"
            )
        hn = checks.hostname(h) if (h := rm.get("hostname")) is not None else None
        reservations.append(DhcpReservation(mac=checks.mac(rm.require("mac")), address=addr, hostname=hn))
    checks.unique(node, tuple(reservations), lambda r: r.mac, "reservation MAC")
    checks.unique(node, tuple(reservations), lambda r: r.address, "reservation address")
    return tuple(reservations)
