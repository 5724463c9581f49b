"""The configuration model: site profiles, hosts, target recipes, overlays (frozen dataclasses).

Instances are built only by the loaders (``site.py``, ``target.py``, ``overlay.py``), which validate
everything; code that receives a model can trust it.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coreos_infra.recipes.boottestkey import BootTestKey

ROLES = ("dns", "ntp", "dhcp", "monitoring", "identity")
STREAMS = ("stable", "testing", "next")
DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


# ---------------------------------------------------------------------------------------------- site
@dataclass(frozen=True)
class AdminUser:
    name: str
    ssh_keys: tuple[str, ...]
    groups: tuple[str, ...] = ("wheel",)
    password_hash: str | None = None  # only if the site sets one; never a default


@dataclass(frozen=True)
class Network:
    name: str
    cidr: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address | None = None
    mtu: int | None = None
    ipv6: str = "auto"  # NetworkManager ipv6.method: auto | disabled | ignore


@dataclass(frozen=True)
class DnsRecord:
    name: str  # relative to the zone ("@" for the apex)
    type: str
    value: str
    ttl: int | None = None


@dataclass(frozen=True)
class DnsZone:
    name: str  # e.g. "lab.example"
    records: tuple[DnsRecord, ...] = ()
    ttl: int = 3600
    serial: int = 1
    host_records: bool = False  # add an A record for every site host (the site domain's zone)


@dataclass(frozen=True)
class Dns:
    zones: tuple[DnsZone, ...] = ()
    forwarders: tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...] = ()
    cache_seconds: int = 300
    reverse_zones: bool = True  # in-addr.arpa zones (PTR per static host) for octet-aligned site networks


@dataclass(frozen=True)
class Ntp:
    servers: tuple[str, ...] = ()
    pools: tuple[str, ...] = ()
    allow: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    local_stratum: int = 10  # served when every upstream is unreachable; 0 disables the fallback


@dataclass(frozen=True)
class DhcpRange:
    start: ipaddress.IPv4Address
    end: ipaddress.IPv4Address

    def __str__(self) -> str:
        return f"{self.start} - {self.end}"


@dataclass(frozen=True)
class DhcpReservation:
    mac: str
    address: ipaddress.IPv4Address
    hostname: str | None = None


@dataclass(frozen=True)
class DhcpSubnet:
    id: int
    network: str  # name of a site network
    cidr: ipaddress.IPv4Network
    ranges: tuple[DhcpRange, ...]
    routers: tuple[ipaddress.IPv4Address, ...] = ()
    dns_servers: tuple[ipaddress.IPv4Address, ...] = ()
    ntp_servers: tuple[ipaddress.IPv4Address, ...] = ()
    domain: str = ""
    lease_seconds: int = 3600
    next_server: ipaddress.IPv4Address | None = None
    boot_file: str | None = None
    reservations: tuple[DhcpReservation, ...] = ()


@dataclass(frozen=True)
class Dhcp:
    subnets: tuple[DhcpSubnet, ...] = ()


@dataclass(frozen=True)
class UpdateWindow:
    days: tuple[str, ...]
    start_time: str  # "HH:MM"
    length_minutes: int

    def intervals(self) -> list[tuple[int, int]]:
        """Minute-of-week half-open intervals [start, end) the window covers (may wrap past Sunday)."""
        hh, mm = (int(x) for x in self.start_time.split(":"))
        out = []
        for day in self.days:
            start = DAYS.index(day) * 1440 + hh * 60 + mm
            out.append((start, start + self.length_minutes))
        return out

    def overlaps(self, other: UpdateWindow) -> bool:
        week = 7 * 1440
        for a0, a1 in self.intervals():
            for b0, b1 in other.intervals():
                for shift in (-week, 0, week):
                    if a0 < b1 + shift and b0 + shift < a1:
                        return True
        return False

    def __str__(self) -> str:
        return f"{','.join(self.days)} {self.start_time} +{self.length_minutes}min"


@dataclass(frozen=True)
class Updates:
    strategy: str = "immediate"  # periodic | fleet_lock | immediate (Zincati's default)
    windows: tuple[UpdateWindow, ...] = ()
    time_zone: str = ""  # empty: the site's timezone
    fleet_lock_url: str = ""
    fleet_lock_group: str = ""
    rollout_wariness: float | None = None
    container_auto_update: bool = True  # podman auto-update (AutoUpdate=registry) allowed


@dataclass(frozen=True)
class Monitoring:
    node_exporter: bool = True
    prometheus_retention: str = "15d"


@dataclass(frozen=True)
class Identity:
    realm: str = ""
    domain: str = ""
    setup_dns: bool = False
    admin_password_file: str = ""  # relative to the site file; its contents go into the Ignition
    first_start_timeout: int = 1800
    install_options: tuple[str, ...] = ()


@dataclass(frozen=True)
class Host:
    name: str
    roles: tuple[str, ...]
    mac: str | None  # lower-case, colon separated
    address: ipaddress.IPv4Address | None  # None: DHCP
    network: str | None  # name of the site network the static address is in
    interface: str | None = None
    window_pin: int | None = None  # update_window: index into updates.windows chosen by the site
    update_window: UpdateWindow | None = None  # set by the loader (staggered) for periodic updates

    @property
    def static(self) -> bool:
        return self.address is not None


@dataclass(frozen=True)
class Site:
    name: str
    path: Path
    domain: str
    timezone: str
    admins: tuple[AdminUser, ...]
    networks: tuple[Network, ...]
    hosts: tuple[Host, ...]
    dns: Dns = field(default_factory=Dns)
    ntp: Ntp = field(default_factory=Ntp)
    dhcp: Dhcp = field(default_factory=Dhcp)
    updates: Updates = field(default_factory=Updates)
    monitoring: Monitoring = field(default_factory=Monitoring)
    identity: Identity = field(default_factory=Identity)
    overlay_vars: tuple[OverlayUse, ...] = ()  # the site's values for overlay variables
    source: str = ""  # the file as shown in messages (recipes/sites/lab.yaml)
    # boot_test.ssh_key: its public key is an SSH key of core in every image (None: a throw-away key)
    boot_test_key: BootTestKey | None = None

    def host(self, name: str) -> Host | None:
        return next((h for h in self.hosts if h.name == name), None)

    def network(self, name: str) -> Network | None:
        return next((n for n in self.networks if n.name == name), None)

    def hosts_with(self, role: str) -> tuple[Host, ...]:
        return tuple(h for h in self.hosts if role in h.roles)

    def role_addresses(self, role: str) -> tuple[ipaddress.IPv4Address, ...]:
        return tuple(h.address for h in self.hosts_with(role) if h.address is not None)


# -------------------------------------------------------------------------------------------- target
@dataclass(frozen=True)
class BaseArtifact:
    platform: str
    format: str


@dataclass(frozen=True)
class OverlayUse:
    name: str
    vars: tuple[tuple[str, Any], ...] = ()
    location: str = ""  # "file:line:col" of the reference, for errors


@dataclass(frozen=True)
class TargetRecipe:
    name: str
    path: Path
    kind: str
    arch: str
    stream: str
    release: str  # "" = newest of the stream
    base: BaseArtifact
    options: dict[str, Any]
    overlays: tuple[OverlayUse, ...]
    description: str = ""
    settings: Any = None  # ``options`` as parsed by the kind's target class (coreos_infra.targets)


# ------------------------------------------------------------------------------------------- overlay
@dataclass(frozen=True)
class OverlayVar:
    name: str
    type: str  # str | int | bool | list | map | image | any
    default: Any
    doc: str
    required: bool = False


@dataclass(frozen=True)
class Overlay:
    name: str
    path: Path
    description: str
    variables: tuple[OverlayVar, ...]
    template: Path
    checks: Path | None
    roles: tuple[str, ...] = ()  # site roles that pull this overlay in automatically

    def var(self, name: str) -> OverlayVar | None:
        return next((v for v in self.variables if v.name == name), None)
