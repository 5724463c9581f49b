"""Where each object lives in a store (keys relative to the store root); one function per key.

```
keys/<site>.asc                                    site public signing key (armored)
streams/<site>-<host>.json                         FCOS stream-metadata-compatible, stream "<site>-<host>"
index.html                                         download page (all sites)
sites/<site>/index.json                            site index
sites/<site>/<host>/<target>/latest.json           {"build_id": ..., "meta": "<key of its meta.json>"}
sites/<site>/<host>/<target>/<build_id>/<file>     every file of the build's meta.json, + <file>.sig
sites/<site>/<host>/<target>/<build_id>/meta.json
sites/<site>/<host>/<target>/<build_id>/SHA256SUMS `sha256sum -c` format, + SHA256SUMS.sig
```
"""

from __future__ import annotations

import re

from coreos_infra.errors import CoreosInfraError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")

INDEX_HTML = "index.html"
SIGNATURE_SUFFIX = ".sig"


def check_name(value: str, what: str) -> str:
    """A site, host, target, build ID or file name used as one key component."""
    if not _NAME.match(value) or value in (".", ".."):
        raise CoreosInfraError(f"invalid {what} {value!r} for a store key (letters, digits, '_.+-')")
    return value


def public_key(site: str) -> str:
    return f"keys/{check_name(site, 'site')}.asc"


def stream(site: str, host: str) -> str:
    return f"streams/{stream_name(site, host)}.json"


def stream_name(site: str, host: str) -> str:
    return f"{check_name(site, 'site')}-{check_name(host, 'host')}"


def index_html() -> str:
    return INDEX_HTML


def site_prefix(site: str) -> str:
    return f"sites/{check_name(site, 'site')}/"


def site_index(site: str) -> str:
    return f"{site_prefix(site)}index.json"


def target_prefix(site: str, host: str, target: str) -> str:
    return f"{site_prefix(site)}{check_name(host, 'host')}/{check_name(target, 'target')}/"


def latest(site: str, host: str, target: str) -> str:
    return f"{target_prefix(site, host, target)}latest.json"


def build_prefix(site: str, host: str, target: str, build_id: str) -> str:
    return f"{target_prefix(site, host, target)}{check_name(build_id, 'build ID')}/"


def artifact(site: str, host: str, target: str, build_id: str, name: str) -> str:
    return f"{build_prefix(site, host, target, build_id)}{check_name(name, 'file name')}"


def meta(site: str, host: str, target: str, build_id: str) -> str:
    return f"{build_prefix(site, host, target, build_id)}meta.json"


def sums(site: str, host: str, target: str, build_id: str) -> str:
    return f"{build_prefix(site, host, target, build_id)}SHA256SUMS"


def signature(key: str) -> str:
    """The detached signature next to ``key``."""
    return key + SIGNATURE_SUFFIX


def sums_signature(site: str, host: str, target: str, build_id: str) -> str:
    return signature(sums(site, host, target, build_id))


def parse_build_key(key: str) -> tuple[str, str, str, str] | None:
    """``(site, host, target, build_id)`` of a key inside a build directory, else None."""
    parts = key.split("/")
    if len(parts) >= 6 and parts[0] == "sites":
        return parts[1], parts[2], parts[3], parts[4]
    return None
