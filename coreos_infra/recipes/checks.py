"""Value checks shared by the loaders: each returns the normalized value or raises at the node."""

from __future__ import annotations

import ipaddress
import re
import zoneinfo
from collections.abc import Callable
from typing import Any, TypeVar

from coreos_infra.recipes.yamlsrc import Node

T = TypeVar("T")

_MAC = re.compile(r"^[0-9a-fA-F]{2}([:-])[0-9a-fA-F]{2}(\1[0-9a-fA-F]{2}){4}$")
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_HOSTNAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_TIME = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
_SSH_KEY_TYPES = (
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
)
_IMAGE = re.compile(
    r"^(?P<registry>[a-z0-9.-]+(:[0-9]+)?)/(?P<repo>[a-z0-9._/-]+)"
    r"(:(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?(@sha256:(?P<digest>[0-9a-f]{64}))?$"
)
_CRYPT = re.compile(r"^\$(y|gy|7|2[abxy]|6|5|sha1|md5|1)\$[./A-Za-z0-9$=,]+$")


def mac(node: Node) -> str:
    text = node.str().strip()
    if not _MAC.match(text):
        raise node.error("not a MAC address", hint="write it as six hex pairs, e.g. 52:54:00:12:34:56")
    value = text.lower().replace("-", ":")
    if int(value[:2], 16) & 1:
        raise node.error("not a unicast MAC address (multicast bit set)")
    return value


def ipv4(node: Node) -> ipaddress.IPv4Address:
    text = node.str().strip()
    try:
        return ipaddress.IPv4Address(text)
    except ValueError:
        raise node.error("not an IPv4 address") from None


def ip(node: Node) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    text = node.str().strip()
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise node.error("not an IP address") from None


def ipv4_network(node: Node) -> ipaddress.IPv4Network:
    text = node.str().strip()
    if "/" not in text:
        raise node.error("not a CIDR network (expected ADDRESS/PREFIX, e.g. 192.168.50.0/24)")
    try:
        return ipaddress.IPv4Network(text, strict=True)
    except ValueError as e:
        if "has host bits set" in str(e):
            raise node.error(
                f"not a CIDR network: host bits set (did you mean "
                f"{ipaddress.IPv4Network(text, strict=False)}?)"
            ) from None
        raise node.error("not a CIDR network (expected ADDRESS/PREFIX, e.g. 192.168.50.0/24)") from None


def ip_network(node: Node) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    text = node.str().strip()
    try:
        if "/" not in text:
            raise ValueError
        return ipaddress.ip_network(text, strict=True)
    except ValueError:
        raise node.error("not a CIDR network (expected ADDRESS/PREFIX, e.g. 192.168.50.0/24)") from None


def hostname(node: Node) -> str:
    text = node.str()
    if not _HOSTNAME.match(text):
        raise node.error(
            "not a valid host name (lower-case letters, digits and '-', at most 63 characters, "
            "not starting or ending with '-')"
        )
    return text


def domain(node: Node) -> str:
    text = node.str().rstrip(".")
    labels = text.split(".")
    if len(text) > 253 or not all(_LABEL.match(label) for label in labels) or len(labels) < 1:
        raise node.error("not a valid DNS domain name")
    return text


def dns_name_ok(text: str) -> bool:
    if text == "@":
        return True
    if text.startswith("*."):
        text = text[2:]
    labels = text.rstrip(".").split(".")
    return all(re.match(r"^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$", label) for label in labels)


def timezone(node: Node) -> str:
    text = node.str()
    if text in ("UTC", "localtime"):
        return text
    try:
        zoneinfo.ZoneInfo(text)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise node.error("unknown time zone (expected an IANA name such as Europe/Berlin)") from None
    return text


def time_of_day(node: Node) -> str:
    text = node.str().strip()
    if not _TIME.match(text):
        raise node.error('not a time of day (expected "HH:MM", 24-hour clock)')
    return text


def ssh_key(node: Node) -> str:
    text = node.str().strip()
    parts = text.split()
    if len(parts) < 2 or parts[0] not in _SSH_KEY_TYPES or not re.match(r"^AAAA[A-Za-z0-9+/]+=*$", parts[1]):
        raise node.error(
            "not an SSH public key",
            hint="expected a line from a .pub file, e.g. 'ssh-ed25519 AAAAC3Nz... user@host'",
        )
    if "PRIVATE KEY" in text:
        raise node.error("this is a private key; give the public key")
    return text


def password_hash(node: Node) -> str:
    text = node.str().strip()
    if not _CRYPT.match(text):
        raise node.error(
            "not a crypt(3) password hash",
            hint="generate one with `mkpasswd --method=yescrypt`; plain passwords are not accepted",
        )
    return text


def image(node: Node) -> str:
    """A fully qualified container image pinned by tag (a digest may follow); 'latest' is refused."""
    text = node.str().strip()
    m = _IMAGE.match(text)
    if not m or "." not in m.group("registry") and ":" not in m.group("registry"):
        raise node.error(
            "not a fully qualified image reference",
            hint="write registry/repository:tag, e.g. docker.io/coredns/coredns:1.11.3",
        )
    if not m.group("tag"):
        raise node.error("image is not pinned by tag (add :TAG, optionally @sha256:DIGEST)")
    if m.group("tag") == "latest":
        raise node.error("image tag 'latest' is not a pin; use a version tag")
    return text


# --- lists and ranges -------------------------------------------------------------------------------
def each(node: Node | None, fn: Callable[[Node], T]) -> tuple[T, ...]:
    """``fn`` of every item of a list node; ``()`` when the node is absent."""
    return tuple(fn(item) for item in node.list()) if node is not None else ()


def unique(parent: Node | None, items: tuple[Any, ...], key: Callable[[Any], Any], what: str) -> None:
    """Refuse two items of the list ``parent`` with the same ``key`` (``None`` keys are not compared)."""
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


def int_range(node: Node | None, default: int, lo: int, hi: int) -> int:
    """The integer at ``node`` (``default`` when absent), refused outside ``lo..hi``."""
    if node is None:
        return default
    value = node.int()
    if not lo <= value <= hi:
        raise node.error(f"must be between {lo} and {hi}")
    return value
