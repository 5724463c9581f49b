"""The download page (``index.html`` at the store root): site → host → target → builds, for people.

One self-contained static file (inline CSS, no scripts, no external resources). Every link is relative to
the store root, so the local directory store can be served as-is by any static web server and the same
page works on S3 or behind a CDN. Everything that comes from an index is untrusted: all text is escaped,
links are built only from keys that are plain relative paths (each component percent-encoded), and
commands shown for copy and paste are shell-quoted.
"""

from __future__ import annotations

import html
import re
import shlex
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

from coreos_infra.errors import CoreosInfraError
from coreos_infra.publish import layout

_CSP = "default-src 'none'; style-src 'unsafe-inline'"
_CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:72rem;
padding:1rem 1.5rem;color:#1d2430;background:#fff}
h1{margin:.2rem 0 .3rem}h2{border-bottom:2px solid #d5dbe5;padding-bottom:.2rem;margin-top:2rem}
h3{margin:1.4rem 0 .4rem}h4{margin:1rem 0 .3rem;font-size:1.05rem}
a{color:#0b5cad}code,pre{font:13px/1.4 ui-monospace,"DejaVu Sans Mono",monospace}
pre{background:#f3f5f8;border:1px solid #dde2ea;border-radius:4px;padding:.5rem .7rem;overflow-x:auto}
table{border-collapse:collapse;width:100%;margin:.3rem 0 .6rem}
th,td{text-align:left;padding:.25rem .5rem;border-bottom:1px solid #e3e7ee;vertical-align:top}
th{background:#f3f5f8;font-weight:600}td.num{text-align:right;white-space:nowrap}
.sha{word-break:break-all;font-size:12px}.build{border:1px solid #d5dbe5;border-radius:6px;
padding:.5rem .8rem;margin:.6rem 0}.build.latest{border-color:#2f7d32;box-shadow:0 0 0 1px #2f7d32}
.badge{display:inline-block;font-size:12px;padding:0 .4rem;border-radius:3px;background:#2f7d32;
color:#fff;margin-left:.4rem}.warn{background:#a85b00}.facts{color:#4a5566;margin:.1rem 0 .4rem}
nav ul{margin:.2rem 0;padding-left:1.2rem}details{margin:.4rem 0}summary{cursor:pointer;font-weight:600}
.muted{color:#6a7585}
"""


def _text(value: Any) -> str:
    """Escaped text of any index value (None and non-scalars shown as a dash)."""
    if value is None or isinstance(value, dict | list):
        return "–"
    return html.escape(str(value), quote=True)


def _href(key: Any) -> str | None:
    """A relative URL for a store key, or None when the key is not a plain relative path."""
    if not isinstance(key, str) or not key or key.startswith("/") or "\\" in key:
        return None
    parts = key.split("/")
    if any(not p or p in (".", "..") or any(ord(c) < 0x20 or ord(c) == 0x7F for c in p) for p in parts):
        return None
    return "/".join(quote(p, safe="") for p in parts)


def _link(key: Any, label: str | None = None) -> str:
    href = _href(key)
    text = _text(label if label is not None else key)
    if href is None:
        return f'<span class="muted" title="invalid key">{text}</span>'
    return f'<a href="{html.escape(href, quote=True)}">{text}</a>'


def _size(n: Any) -> str:
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        return "–"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            human = f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
            return f'<span title="{n} bytes">{human}</span>'
        value /= 1024
    raise AssertionError("unreachable")


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _anchor(*names: Any) -> str:
    return "-".join(re.sub(r"[^A-Za-z0-9_.-]", "_", str(n)) for n in names)


def _safe_key(fn: Any, *args: str) -> str | None:
    try:
        return str(fn(*args))
    except CoreosInfraError:
        return None


def _cmd(*argv: str) -> str:
    return html.escape(shlex.join(argv))


def _flash_commands(site: str, host: str, target: str, disk: str, key_file: str) -> list[str]:
    """How to write a disk image to a stick or card: with coreos-infra, with dd, with coreos-installer."""
    flash_cmds = [
        "# coreos-infra: downloads, verifies, refuses mounted disks and the system disk, reads back",
        _cmd(
            "invoke",
            "flash",
            "--site",
            site,
            "--host",
            host,
            "--target",
            target,
            "--device",
            "/dev/sdX",
            "--keyring",
            key_file,
        ),  # fmt: skip
        "# by hand, after verifying (replace /dev/sdX; check it with lsblk first):",
    ]
    if disk.endswith(".xz"):
        flash_cmds.append(
            _cmd("xz", "-dc", disk)
            + " | "
            + _cmd("sudo", "dd", "of=/dev/sdX", "bs=4M", "conv=fsync", "status=progress")  # fmt: skip
        )
    else:
        flash_cmds.append(
            _cmd("sudo", "dd", f"if={disk}", "of=/dev/sdX", "bs=4M", "conv=fsync", "status=progress")
        )
    if disk.endswith(".raw.xz"):
        flash_cmds += [
            "# or coreos-installer (it knows only Fedora's keys: verify with gpgv first, as above)",
            _cmd("sudo", "coreos-installer", "install", "/dev/sdX", "--image-file", disk, "--insecure"),
        ]
    return flash_cmds


def _how_to(site: str, host: str, target: str, build: dict[str, Any], *, open_: bool) -> str:
    files = [f for f in _list(build.get("files")) if isinstance(f, dict) and isinstance(f.get("name"), str)]
    names = [f["name"] for f in files]
    fmt = str(build.get("format") or "")
    disk = next((n for n in names if fmt and n.endswith("." + fmt)), names[0] if names else "IMAGE")
    key_file = f"{site}.asc"
    lines = [
        "# 1. the site's public key: get it from your site admin or keys/ above, and check its fingerprint",
        _cmd("gpg", "--show-keys", "--with-fingerprint", key_file),
        _cmd("gpg", "--dearmor", "--output", f"{site}.gpg", key_file),
        "# 2. in a directory with the build's files, SHA256SUMS and the .sig files:",
        _cmd("gpgv", "--keyring", f"./{site}.gpg", "SHA256SUMS.sig", "SHA256SUMS"),
        *(
            (_cmd("gpgv", "--keyring", f"./{site}.gpg", f"{n}.sig", n) for n in names)
            if len(names) <= 3
            else [
                html.escape(
                    f'for s in *.sig; do gpgv --keyring ./{shlex.quote(site)}.gpg "$s" "${{s%.sig}}"; done'
                )
            ]
        ),
        _cmd("sha256sum", "--ignore-missing", "-c", "SHA256SUMS"),
    ]
    verify = "\n".join(lines)
    invoke = ["invoke", "download", "--site", site, "--host", host, "--target", target]
    if build.get("build_id"):
        invoke += ["--build", str(build["build_id"])]
    details = "<details open>" if open_ else "<details>"
    parts = [
        f"{details}<summary>How to verify</summary>",
        "<p>Or let coreos-infra do all of it (it resumes, and checks signature and SHA-256 before the "
        "file gets its name):</p>",
        f"<pre>{_cmd(*invoke, '--keyring', key_file)}</pre>",
        f"<pre>{verify}</pre></details>",
    ]
    if fmt == "pxe" or target == "pxe":
        parts.append(
            f"{details}<summary>How to use</summary><p>A netboot bundle: unpack it on your TFTP/HTTP "
            "server; see docs/pxe.md (iPXE, PXELINUX, GRUB, dnsmasq and Kea snippets).</p></details>"
        )
        return "\n".join(parts)
    if fmt.startswith("qcow2"):
        parts.append(
            f"{details}<summary>How to use</summary><pre>"
            + _cmd("xz", "-dk", disk)
            + "   # a VM disk; not for flashing</pre></details>"
        )
        return "\n".join(parts)
    flash_cmds = _flash_commands(site, host, target, disk, key_file)
    parts.append(
        f"{details}<summary>How to flash</summary><pre>" + "\n".join(flash_cmds) + "</pre></details>"
    )
    return "\n".join(parts)


def _build(site: str, host: str, target: str, build: dict[str, Any], latest: Any) -> str:
    build_id = build.get("build_id")
    is_latest = build_id is not None and build_id == latest
    cls = "build latest" if is_latest else "build"
    head = f'<div class="{cls}" id="{_anchor(site, host, target, build_id)}">'
    title = f"<strong>Build <code>{_text(build_id)}</code></strong>"
    if is_latest:
        title += '<span class="badge">latest</span>'
    if build.get("contains_secrets"):
        title += '<span class="badge warn" title="the Ignition config carries password hashes or keys">' \
            "contains secrets</span>"  # fmt: skip
    facts = (
        f'<div class="facts">built {_text(build.get("date"))} · base FCOS {_text(build.get("base_release"))}'
        f" · {_text(build.get('arch'))} · platform {_text(build.get('platform'))}"
        f" · format {_text(build.get('format'))}</div>"
    )
    rows = []
    for f in _list(build.get("files")):
        f = _dict(f)
        sig = f.get("signature")
        rows.append(
            "<tr>"
            f"<td>{_link(f.get('key'), f.get('name'))}</td>"
            f'<td class="num">{_size(f.get("size"))}</td>'
            f'<td><code class="sha">{_text(f.get("sha256"))}</code></td>'
            f"<td>{_link(sig, 'signature') if sig else '<span class=muted>unsigned</span>'}</td>"
            "</tr>"
        )
    table = (
        "<table><thead><tr><th>file</th><th>size</th><th>SHA-256</th><th>.sig</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
    )
    extras = [_link(build["sums"], "SHA256SUMS")] if build.get("sums") else []
    if build.get("sums_signature"):
        extras.append(_link(build["sums_signature"], "SHA256SUMS.sig"))
    if build.get("meta"):
        extras.append(_link(build["meta"], "meta.json"))
    return "\n".join(
        [
            head,
            title,
            facts,
            table,
            f"<div>{' · '.join(extras)}</div>" if extras else "",
            _how_to(site, host, target, build, open_=is_latest),
            "</div>",
        ]
    )


def _sites(indexes: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for index in indexes:
        index = _dict(index)
        yield str(index.get("site", "")), index


def render_page(indexes: list[dict[str, Any]]) -> str:
    """The whole ``index.html`` for the site indexes (format of ``sites/<site>/index.json``)."""
    sites = sorted(_sites(indexes), key=lambda s: s[0])
    nav = ["<nav><strong>Contents</strong><ul>"]
    body = []
    for site, index in sites:
        nav.append(f'<li><a href="#{_anchor(site)}">{_text(site)}</a><ul>')
        key = _safe_key(layout.public_key, site)
        body.append(f'<section id="{_anchor(site)}"><h2>Site {_text(site)}</h2>')
        body.append(
            f'<p class="facts">index generated {_text(index.get("generated"))} · '
            f"signing key: {_link(key) if key else '–'} · "
            f"site index: {_link(_safe_key(layout.site_index, site))}</p>"
        )
        hosts = _dict(index.get("hosts"))
        if not hosts:
            body.append("<p class=muted>No builds published yet.</p>")
        for host in sorted(hosts):
            targets = _dict(_dict(hosts[host]).get("targets"))
            nav.append(f'<li><a href="#{_anchor(site, host)}">{_text(host)}</a>: ')
            nav.append(
                ", ".join(f'<a href="#{_anchor(site, host, t)}">{_text(t)}</a>' for t in sorted(targets))
            )
            nav.append("</li>")
            stream = _safe_key(layout.stream, site, host)
            body.append(f'<section id="{_anchor(site, host)}"><h3>Host {_text(host)}</h3>')
            body.append(
                f'<p class="facts">FCOS stream metadata: {_link(stream) if stream else "–"} '
                f"(stream <code>{_text(f'{site}-{host}')}</code>)</p>"
            )
            for target in sorted(targets):
                entry = _dict(targets[target])
                builds = [_dict(b) for b in _list(entry.get("builds"))]
                body.append(f'<section id="{_anchor(site, host, target)}"><h4>{_text(target)}</h4>')
                pointer = _safe_key(layout.latest, site, host, target)
                body.append(f'<p class="facts">{len(builds)} build(s); latest: '
                            f"<code>{_text(entry.get('latest'))}</code>"
                            f" ({_link(pointer, 'latest.json') if pointer else '–'})</p>")  # fmt: skip
                body.extend(_build(site, host, target, b, entry.get("latest")) for b in builds)
                body.append("</section>")
            body.append("</section>")
        body.append("</section>")
        nav.append("</ul></li>")
    nav.append("</ul></nav>")
    if not sites:
        body.append("<p class=muted>Nothing published yet.</p>")
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
            "<title>Site images</title>",
            f"<style>{_CSS}</style></head><body>",
            "<h1>Site images</h1>",
            "<p>Fedora CoreOS images built for each site and host. Each build lists its files with size and "
            "SHA-256, a detached OpenPGP signature per file and a signed <code>SHA256SUMS</code>. Verify "
            "with the site's public key obtained from your site admin (the copy on this page is only as "
            "trustworthy as this server).</p>",
            *nav,
            *body,
            "</body></html>",
            "",
        ]
    )
