"""Render a build (site, target[, host]) into one Butane document, its Ignition config and a build ID.

Steps: choose the overlays (the recipe's list, then the overlays whose ``roles`` match the host's roles),
resolve each overlay's variables (defaults < recipe < site), compute the build ID over every input,
render each overlay's Jinja2 template (StrictUndefined), parse and merge the fragments (conflicts name
both overlays), dump the merged Butane, translate it with :mod:`coreos_infra.butane` and validate the
result with :mod:`coreos_infra.ignition`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from coreos_infra.errors import CoreosInfraError, InputError, Location
from coreos_infra.recipes.buildid import build_identity
from coreos_infra.recipes.merge import merge_fragments
from coreos_infra.recipes.model import AdminUser, DnsRecord, DnsZone, Host, Overlay, Site, TargetRecipe
from coreos_infra.recipes.origins import Origins
from coreos_infra.recipes.overlay import jinja_environment, render_template_lines, resolve_vars
from coreos_infra.recipes.project import Project
from coreos_infra.recipes.yamlsrc import parse_yaml

BUTANE_VARIANT = "fcos"
BUTANE_VERSION = "1.5.0"  # -> Ignition 3.4.0 (FCOS since 2022)


@dataclass(frozen=True)
class Rendered:
    butane: str
    ignition: bytes  # compact JSON
    build_id: str
    target: TargetRecipe
    host: Host | None
    contains_secrets: bool
    checks: list[Path]
    site: Site | None = None
    overlays: tuple[str, ...] = ()
    identity: bytes = b""  # the canonical form the build ID hashes
    reports: tuple[Any, ...] = field(default=())  # warnings from translation/validation

    @property
    def name(self) -> str:
        """File name stem for outputs: ``<site>-<host>-<target>`` or ``<site>-<target>``."""
        parts = [self.site.name if self.site else "site"]
        if self.host is not None:
            parts.append(self.host.name)
        parts.append(self.target.name)
        return "-".join(parts)


@dataclass(frozen=True)
class ButaneRender:
    """The merged Butane of a build, before translation."""

    butane: str
    data: dict[str, Any]
    build_id: str
    identity: bytes
    target: TargetRecipe
    site: Site
    host: Host | None
    overlays: tuple[Overlay, ...]
    contains_secrets: bool
    origins: Origins | None = None  # which overlay template line wrote which part of ``data``


@dataclass(frozen=True)
class Facts:
    """Derived values the templates use, computed once in Python rather than in Jinja2."""

    fqdn: str
    dns_servers: tuple[str, ...]
    ntp_servers: tuple[str, ...]
    network: Any  # the host's Network or None
    prefix: int | None
    time_zone: str  # for Zincati windows
    window: Any  # UpdateWindow or None
    auto_update: bool
    zones: tuple[tuple[DnsZone, tuple[DnsRecord, ...]], ...]
    scrape_targets: tuple[str, ...]
    secrets: dict[str, str]
    admins: tuple[AdminUser, ...]  # the site's admins; extra SSH keys go to core
    dns_hosts: tuple[str, ...]  # FQDNs of the DNS hosts (zone NS records)
    resolvers: tuple[str, ...]  # what static hosts resolve with: the DNS hosts, else the forwarders
    build_json: str  # /etc/coreos-infra/build.json: what was built, for the checks


def select_overlays(project: Project, target: TargetRecipe, host: Host | None) -> list[Overlay]:
    chosen = [project.overlay(u.name) for u in target.overlays]
    if host is not None:
        for o in sorted(project.overlays.values(), key=lambda o: o.name):
            if o not in chosen and any(r in host.roles for r in o.roles):
                chosen.append(o)
    return chosen


def reverse_zones(site: Site) -> list[tuple[DnsZone, tuple[DnsRecord, ...]]]:
    """An ``in-addr.arpa`` zone with a PTR record per static host for each octet-aligned site network
    (/8, /16, /24) that has static hosts; other prefix lengths would need RFC 2317 delegation."""
    out = []
    for net in site.networks:
        if net.cidr.prefixlen not in (8, 16, 24):
            continue
        octets = str(net.cidr.network_address).split(".")[: net.cidr.prefixlen // 8]
        name = ".".join(reversed(octets)) + ".in-addr.arpa"
        records = tuple(
            DnsRecord(
                name=".".join(reversed(str(h.address).split(".")[net.cidr.prefixlen // 8 :])),
                type="PTR",
                value=f"{h.name}.{site.domain}.",
            )
            for h in site.hosts
            if h.address is not None and h.address in net.cidr
        )
        if records:
            out.append((DnsZone(name=name, host_records=False), records))
    return out


def _admins(site: Site, extra_ssh_keys: tuple[str, ...]) -> tuple[AdminUser, ...]:
    admins = list(site.admins)
    if extra_ssh_keys:
        core = next((a for a in admins if a.name == "core"), None)
        if core is None:
            admins.insert(0, AdminUser(name="core", ssh_keys=extra_ssh_keys))
        else:
            keys = core.ssh_keys + tuple(k for k in extra_ssh_keys if k not in core.ssh_keys)
            admins[admins.index(core)] = replace(core, ssh_keys=keys)
    return tuple(admins)


def _facts(
    site: Site,
    host: Host | None,
    target: TargetRecipe,
    secrets: dict[str, str],
    *,
    build_id: str,
    base_release: str,
    overlays: list[Overlay],
    extra_ssh_keys: tuple[str, ...],
) -> Facts:
    net = site.network(host.network) if host is not None and host.network else None
    zones = []
    for z in site.dns.zones:
        records = list(z.records)
        if z.host_records:
            names = {r.name for r in records}
            for h in site.hosts:
                if h.address is not None and h.name not in names:
                    records.append(DnsRecord(name=h.name, type="A", value=str(h.address)))
        zones.append((z, tuple(records)))
    if site.dns.reverse_zones:
        zones.extend(reverse_zones(site))
    window = None
    if site.updates.strategy == "periodic":
        window = host.update_window if host is not None else site.updates.windows[0]
    return Facts(
        fqdn=f"{host.name}.{site.domain}" if host is not None else "",
        dns_servers=tuple(str(a) for a in site.role_addresses("dns")),
        ntp_servers=tuple(str(a) for a in site.role_addresses("ntp")),
        network=net,
        prefix=net.cidr.prefixlen if net is not None else None,
        time_zone=site.updates.time_zone or site.timezone,
        window=window,
        auto_update=site.updates.container_auto_update,
        zones=tuple(zones),
        scrape_targets=tuple(
            f"{h.address if h.address is not None else h.name + '.' + site.domain}:9100" for h in site.hosts
        ),
        secrets=secrets,
        admins=_admins(site, extra_ssh_keys),
        dns_hosts=tuple(f"{h.name}.{site.domain}" for h in site.hosts_with("dns")),
        resolvers=tuple(str(a) for a in site.role_addresses("dns"))
        or tuple(str(a) for a in site.dns.forwarders),
        build_json=_build_json(site, host, target, build_id, base_release, overlays, window, zones),
    )


def _build_json(
    site: Site,
    host: Host | None,
    target: TargetRecipe,
    build_id: str,
    base_release: str,
    overlays: list[Overlay],
    window: Any,
    zones: list[tuple[DnsZone, Any]],
) -> str:
    doc: dict[str, Any] = {
        "build_id": build_id,
        "site": site.name,
        "domain": site.domain,
        "timezone": site.timezone,
        "target": target.name,
        "kind": target.kind,
        "base_release": base_release,
        "overlays": [o.name for o in overlays],
        "host": None,
        "update_strategy": site.updates.strategy,
        "update_window": str(window) if window is not None else None,
        "container_auto_update": site.updates.container_auto_update,
        "dns_servers": [str(a) for a in site.role_addresses("dns")],
        "ntp_servers": [str(a) for a in site.role_addresses("ntp")],
        "zones": [z.name for z, _ in zones],
    }
    if host is not None:
        doc["host"] = {
            "name": host.name,
            "fqdn": f"{host.name}.{site.domain}",
            "roles": list(host.roles),
            "address": str(host.address) if host.address is not None else None,
            "prefix": site.network(host.network).cidr.prefixlen if host.network else None,  # type: ignore[union-attr]
            "mac": host.mac,
            "network": host.network,
        }
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def _read_secrets(site: Site, host: Host | None, overlays: list[Overlay]) -> dict[str, str]:
    secrets: dict[str, str] = {}
    if host is not None and "identity" in host.roles and any(o.name == "identity" for o in overlays):
        rel = site.identity.admin_password_file
        path = (site.path.parent / rel).resolve()
        where = Location(site.source or str(site.path), "identity.admin_password_file")
        try:
            text = path.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as e:
            raise InputError(f"cannot read the password file {rel}: {e.strerror}", where) from None
        if len(text) < 8 or "\n" in text:
            raise InputError(f"the password file {rel} must hold one line of at least 8 characters", where)
        secrets["ipa_admin_password"] = text
    return secrets


class _Dumper(yaml.SafeDumper):
    pass


def _str_presenter(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    if "\n" in data:
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", data)


_Dumper.add_representer(str, _str_presenter)


class _Mode(int):
    """A file mode, dumped in octal as people write them (0644; YAML 1.1 and go-yaml both read octal)."""


def _mode_presenter(dumper: yaml.SafeDumper, data: _Mode) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:int", f"0{int(data):o}" if data else "0")


_Dumper.add_representer(_Mode, _mode_presenter)
TOP_ORDER = ("variant", "version", "ignition", "passwd", "storage", "systemd", "kernel_arguments")


def _modes(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: _Mode(v) if k == "mode" and isinstance(v, int) and not isinstance(v, bool) else _modes(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_modes(v) for v in value]
    return value


def dump_butane(data: dict[str, Any], header: str = "") -> str:
    data = {k: data[k] for k in sorted(data, key=lambda k: TOP_ORDER.index(k) if k in TOP_ORDER else 99)}
    data = _modes(data)
    body = yaml.dump(
        data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True, width=100000
    )
    return header + body


def render_butane(
    project: Project,
    *,
    target: str,
    site: str,
    host: str | None = None,
    base_release: str = "",
    firmware_version: str = "",
    firmware_sha256: str = "",
    extra_ssh_keys: Sequence[str] = (),
) -> ButaneRender:
    """Everything up to the merged Butane (no translation): for ``render`` and for tests."""
    t = project.target(target)
    s = project.site(site)
    h: Host | None = None
    if host is not None:
        h = s.host(host)
        if h is None:
            raise InputError(
                f"unknown host {host!r} in site {s.name}",
                hint=f"hosts: {', '.join(x.name for x in s.hosts)}",
            )
    overlays = select_overlays(project, t, h)
    extra_ssh_keys = _ssh_keys_of(s, extra_ssh_keys)
    secrets = _read_secrets(s, h, overlays)
    build_id, identity = build_identity(
        site=s,
        target=t,
        host=h.name if h else None,
        overlays=overlays,
        base_release=base_release,
        firmware_version=firmware_version,
        firmware_sha256=firmware_sha256,
        secrets=[v.encode() for _, v in sorted(secrets.items())],
        extra={"butane": [BUTANE_VARIANT, BUTANE_VERSION], "extra_ssh_keys": list(extra_ssh_keys)},
    )
    facts = _facts(
        s,
        h,
        t,
        secrets,
        build_id=build_id,
        base_release=base_release,
        overlays=overlays,
        extra_ssh_keys=extra_ssh_keys,
    )
    build = {
        "id": build_id,
        "site": s.name,
        "host": h.name if h else None,
        "target": t.name,
        "base_release": base_release,
        "firmware_version": firmware_version,
    }
    fragments = []
    origins = Origins()
    for o in overlays:
        fragments.append(_render_fragment(project, o, s, h, t, facts, build, origins))
    merged = merge_fragments(fragments, variant=BUTANE_VARIANT, version=BUTANE_VERSION)
    header = (
        f"# Generated by coreos-infra: site {s.name}, host {h.name if h else '-'}, target {t.name}\n"
        f"# build {build_id}; overlays: {', '.join(o.name for o in overlays)}\n"
        f"# Translate with files_dir = {_display(project.root, project.overlays_dir)}/\n"
    )
    contains_secrets = bool(secrets) or any(a.password_hash for a in s.admins)
    return ButaneRender(
        butane=dump_butane(merged, header),
        data=merged,
        build_id=build_id,
        identity=identity,
        target=t,
        site=s,
        host=h,
        overlays=tuple(overlays),
        contains_secrets=contains_secrets,
        origins=origins,
    )


def _ssh_keys_of(s: Site, extra_ssh_keys: Sequence[str]) -> tuple[str, ...]:
    """The extra public keys of ``core`` in the image, the site's boot-test key among them."""
    keys = tuple(extra_ssh_keys)
    if s.boot_test_key is not None and s.boot_test_key.public not in keys:
        keys += (s.boot_test_key.public,)  # the site's boot-test key is in every image
    for key in keys:
        if not key.startswith(("ssh-", "ecdsa-", "sk-")) or "PRIVATE" in key:
            raise InputError(f"extra SSH key is not a public key: {key[:20]}...")
    return keys


def _render_fragment(project: Project, o: Overlay, s: Site, h: Host | None, t: TargetRecipe, facts: Facts,
                     build: dict[str, Any], origins: Origins) -> tuple[str, str, Any]:  # fmt: skip
    """Render one overlay's ``butane.yaml.j2`` into a Butane fragment (``origins`` learns its lines)."""
    display = _display(project.root, o.path)
    recipe_vars = {u.name: u.vars for u in t.overlays}.get(o.name, ())
    site_vars = {u.name: u.vars for u in s.overlay_vars}.get(o.name, ())
    values = resolve_vars(o, recipe_vars, site_vars, where=display)
    context = {"site": s, "host": h, "target": t, "vars": values, "facts": facts, "build": build,
               "butane_version": BUTANE_VERSION}  # fmt: skip
    env = project.jinja_envs.get(o.name)
    if env is None:
        env = project.jinja_envs[o.name] = jinja_environment(o)
    rendered = render_template_lines(o, display, context, env)
    node = parse_yaml(rendered.text, f"{display}/butane.yaml.j2 (rendered)", fast=True)
    data = node.plain() if not node.is_null else {}
    if not isinstance(data, dict):
        raise node.error("the rendered template must be a mapping (a Butane fragment)")
    origins.add(f"{display}/butane.yaml.j2", rendered, node.yaml_node, data)
    return o.name, f"{display}/butane.yaml.j2", data


def _located_reports(b: ButaneRender, error: Any) -> str:
    """Butane's report lines, each pointed at the overlay template line that produced the value (the
    merged document's own line numbers mean nothing to a user)."""
    lines = []
    for r in error.reports:
        where = b.origins.locate(b.data, r.path) if b.origins is not None and r.path else None
        if where is None:
            lines.append(str(r))
            continue
        path = ".".join(str(p) for p in r.path)
        lines.append(f"{where}: {r.kind} at {path}: {r.message} (merged Butane line {r.line})")
    return "".join(f"{line}\n" for line in lines) + error.status_line


def _display(root: Path, path: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def render(
    project: Project,
    *,
    target: str,
    site: str,
    host: str | None = None,
    base_release: str = "",
    firmware_version: str = "",
    firmware_sha256: str = "",
    extra_ssh_keys: Sequence[str] = (),
) -> Rendered:
    """Render (site, target[, host]) into Butane text, compact Ignition JSON and the build ID.

    ``base_release``, ``firmware_version`` and ``firmware_sha256`` (of the firmware archive) are what the
    build will use (they are part of the build ID; fetching them is the caller's job). ``extra_ssh_keys``
    go to the ``core`` user (boot tests use this to log in with a throw-away key); they are part of the
    build ID too.
    """
    b = render_butane(
        project,
        target=target,
        site=site,
        host=host,
        base_release=base_release,
        firmware_version=firmware_version,
        firmware_sha256=firmware_sha256,
        extra_ssh_keys=extra_ssh_keys,
    )
    from coreos_infra import butane, ignition

    what = f"{b.site.name}/{b.host.name if b.host else '-'}/{b.target.name}"
    try:
        translation = butane.translate(
            b.butane.encode(),
            filename=f"{b.site.name}-{b.target.name}.bu",
            files_dir=project.overlays_dir,
            strict=True,
        )
    except butane.ButaneError as e:
        raise CoreosInfraError(
            f"the merged Butane of {what} does not translate:\n{_located_reports(b, e)}"
        ) from None
    problems = [r for r in ignition.validate(translation.config) if r.is_error]
    if problems:
        detail = "\n".join(str(p) for p in problems)
        raise CoreosInfraError(f"the rendered Ignition config of {what} is invalid:\n{detail}")
    return Rendered(
        butane=b.butane,
        ignition=translation.to_json(pretty=False),
        build_id=b.build_id,
        target=b.target,
        host=b.host,
        contains_secrets=b.contains_secrets,
        checks=[o.checks for o in b.overlays if o.checks is not None],
        site=b.site,
        overlays=tuple(o.name for o in b.overlays),
        identity=b.identity,
        reports=tuple(translation.reports),
    )
