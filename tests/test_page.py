"""The download page: escaping of untrusted index values, and a real store checked in headless Chromium.

The Chromium test serves a local store over HTTP on 127.0.0.1 (``http.server``, as ``python -m
http.server`` does), loads ``index.html`` with ``--dump-dom``, checks that every build of every index is
on the page and that every link on it answers 200, and keeps a screenshot under ``artifacts/test-output/``.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import html.parser
import http.server
import json
import os
import shutil
import signal
import subprocess
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from coreos_infra import gpg
from coreos_infra.publish import layout
from coreos_infra.publish.localstore import LocalStore
from coreos_infra.publish.page import render_page

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "artifacts" / "test-output"


class _Links(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.ids: set[str] = set()
        self.scripts = 0
        self.srcs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "a" and a.get("href"):
            self.hrefs.append(a["href"] or "")
        if a.get("id"):
            self.ids.add(a["id"] or "")
        if tag == "script":
            self.scripts += 1
        if a.get("src"):
            self.srcs.append(a["src"] or "")


def _parse(page: str) -> _Links:
    p = _Links()
    p.feed(page)
    return p


# --- escaping ----------------------------------------------------------------------------------------------

EVIL = '<script>alert("x")</script>'


def _evil_index() -> dict[str, Any]:
    build = {
        "build_id": f"b1{EVIL}",
        "date": EVIL,
        "base_release": "43.1",
        "arch": "aarch64",
        "platform": "rpi4",
        "format": "raw.xz",
        "contains_secrets": True,
        "meta": "../../../etc/passwd",
        "sums": "javascript:alert(1)",
        "sums_signature": "/etc/shadow",
        "files": [
            {"name": f"x{EVIL}.raw.xz", "key": "sites/lab/dns1/rpi4/b1/x\"onmouseover=alert(1).raw.xz",
             "size": 123456789, "sha256": EVIL, "signature": "https://evil.example/x.sig"},
            {"name": "$(rm -rf ~).raw.xz", "key": "sites/lab/dns1/rpi4/b1/a b.raw.xz", "size": "big"},
        ],
    }  # fmt: skip
    targets = {"rpi4": {"latest": build["build_id"], "builds": [build]}}
    return {"format": 1, "site": "lab", "generated": "2026-12-02T17:00:00Z",
            "hosts": {f"dns1{EVIL}": {"targets": targets}}}  # fmt: skip


def test_untrusted_values_are_escaped() -> None:
    page = render_page([_evil_index()])
    assert "<script" not in page.lower().replace("&lt;script", "")
    links = _parse(page)
    assert links.scripts == 0 and links.srcs == []
    for href in links.hrefs:
        parsed = urllib.parse.urlsplit(href)
        assert not parsed.scheme and not parsed.netloc, href  # relative only
        assert not href.startswith("/") and ".." not in href.split("/"), href
    # The traversal, absolute and foreign keys are shown but not linked.
    assert "../../../etc/passwd" not in links.hrefs and "/etc/shadow" not in links.hrefs
    assert not any("evil.example" in h for h in links.hrefs)
    # javascript: became a harmless relative name; the quote in a key cannot break out of the attribute.
    assert "javascript%3Aalert%281%29" in links.hrefs
    assert any(h.endswith("x%22onmouseover%3Dalert%281%29.raw.xz") for h in links.hrefs)
    assert "a%20b.raw.xz" in links.hrefs[-1] or any("a%20b.raw.xz" in h for h in links.hrefs)
    # Shell commands are quoted: the name with $(...) only ever appears inside single quotes.
    assert "'$(rm -rf ~).raw.xz'" in page.replace("&#x27;", "'")
    assert "contains secrets" in page and "117.7 MiB" in page


def test_empty_and_malformed_indexes_render() -> None:
    page = render_page([])
    assert "Nothing published yet" in page
    page = render_page([{"site": "lab", "hosts": {"h": {"targets": {"t": {"builds": [None, 3, {}]}}}}}])
    assert "Host h" in page and page.count('class="build') == 3


# --- a real store in Chromium ----------------------------------------------------------------------------


def _put(store: LocalStore, key: str, data: bytes) -> None:
    store.put_bytes(key, data, content_type="application/octet-stream", cache_control="no-cache")


def make_store(
    root: Path, key: gpg.SigningKey, builds: dict[tuple[str, str, str], list[str]]
) -> list[dict[str, Any]]:
    """A local store laid out as publish lays it out, with signed files; return the site indexes."""
    store = LocalStore(root)
    tmp = root.parent / "signing"
    tmp.mkdir(exist_ok=True)

    def sign(data: bytes) -> bytes:
        f = tmp / "data"
        f.write_bytes(data)
        return key.sign(f, tmp / "data.sig").read_bytes()

    indexes: dict[str, dict[str, Any]] = {}
    for (site, host, target), ids in builds.items():
        _put(store, layout.public_key(site), key.public_key())
        _put(
            store,
            layout.stream(site, host),
            json.dumps({"stream": f"{site}-{host}", "architectures": {}}).encode(),
        )
        entries = []
        for n, build_id in enumerate(ids):
            fmt = {"pxe": "pxe", "usb": "iso"}.get(target, "raw.xz")
            names = (
                ["kernel", "initramfs.img", "rootfs.img"]
                if fmt == "pxe"
                else [f"{site}-{host}-{target}.{fmt}"]
            )
            files, sums = [], []
            for name in names:
                data = os.urandom(1000 + 777 * n)
                k = layout.artifact(site, host, target, build_id, name)
                _put(store, k, data)
                _put(store, layout.signature(k), sign(data))
                digest = hashlib.sha256(data).hexdigest()
                sums.append(f"{digest}  {name}\n")
                files.append({"name": name, "key": k, "size": len(data), "sha256": digest,
                              "signature": layout.signature(k)})  # fmt: skip
            sums_data = "".join(sums).encode()
            _put(store, layout.sums(site, host, target, build_id), sums_data)
            _put(store, layout.sums_signature(site, host, target, build_id), sign(sums_data))
            _put(store, layout.meta(site, host, target, build_id), b"{}")
            entries.append({
                "build_id": build_id, "date": f"2026-12-0{n + 1}T10:00:00Z",
                "base_release": "43.20261201.3.0",
                "arch": "aarch64" if target == "rpi4" else "x86_64", "platform": target, "format": fmt,
                "contains_secrets": False, "meta": layout.meta(site, host, target, build_id),
                "sums": layout.sums(site, host, target, build_id),
                "sums_signature": layout.sums_signature(site, host, target, build_id), "files": files,
            })  # fmt: skip
        index = indexes.setdefault(site, {"format": 1, "site": site, "generated": "2026-12-02T17:00:00Z",
                                          "hosts": {}})  # fmt: skip
        index["hosts"].setdefault(host, {"targets": {}})["targets"][target] = {
            "latest": ids[0],
            "builds": entries,
        }
        pointer = {"build_id": ids[0], "meta": layout.meta(site, host, target, ids[0])}
        _put(store, layout.latest(site, host, target), json.dumps(pointer).encode())
    for site, index in indexes.items():
        _put(store, layout.site_index(site), json.dumps(index).encode())
    return list(indexes.values())


@contextlib.contextmanager
def serve(directory: Path) -> Iterator[str]:
    """``python -m http.server``'s handler on 127.0.0.1 in a thread; yields the base URL."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(directory))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def chromium(url: str, tmp: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """Run headless Debian chromium on ``url``; the whole process group is killed on a timeout."""
    exe = shutil.which("chromium")
    if exe is None:
        pytest.skip("Debian chromium is not installed (./scripts/setup installs it)")
    argv = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--no-proxy-server", f"--user-data-dir={tmp / 'chromium-profile'}", *extra, url]  # fmt: skip
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        out, err = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise AssertionError(f"chromium did not finish on {url} in 180 s") from None
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, err[-2000:]
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def check_page_in_chromium(
    store_root: Path, indexes: list[dict[str, Any]], tmp: Path, shot_name: str
) -> _Links:
    """Load the store's index.html in chromium: every build shown, every link 200; keep a screenshot."""
    with serve(store_root) as base:
        dom = chromium(f"{base}/index.html", tmp, "--dump-dom").stdout
        links = _parse(dom)
        for index in indexes:
            for host, h in index["hosts"].items():
                for target, t in h["targets"].items():
                    for b in t["builds"]:
                        assert b["build_id"] in dom, (index["site"], host, target, b["build_id"])
                        assert layout.build_prefix(index["site"], host, target, b["build_id"]) in " ".join(
                            links.hrefs
                        )
        files = [h for h in links.hrefs if not h.startswith("#")]
        assert files, "no links on the page"
        for href in links.hrefs:
            if href.startswith("#"):
                assert href[1:] in links.ids, f"dangling anchor {href}"
                continue
            url = urllib.parse.urljoin(f"{base}/index.html", href)
            assert url.startswith(base + "/"), href
            with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(url, timeout=30) as resp:
                assert resp.status == 200, url
        OUTPUT.mkdir(parents=True, exist_ok=True)
        shot = OUTPUT / shot_name
        shot.unlink(missing_ok=True)
        chromium(f"{base}/index.html", tmp, f"--screenshot={shot}", "--window-size=1280,2400",
                 "--hide-scrollbars")  # fmt: skip
        assert shot.stat().st_size > 10_000
    return links


def test_page_in_chromium(tmp_path: Path) -> None:
    with gpg.throwaway_key(tmp_path) as key:
        indexes = make_store(tmp_path / "store", key, {
            ("lab", "dns1", "rpi4"): ["b2222", "b1111"],
            ("lab", "dns1", "usb"): ["u1"],
            ("lab", "ntp1", "pxe"): ["p1"],
            ("edge", "gw1", "metal"): ["m1", "m0", "mm"],
        })  # fmt: skip
    page = render_page(indexes)
    (tmp_path / "store" / "index.html").write_text(page)
    links = check_page_in_chromium(tmp_path / "store", indexes, tmp_path, "download-page.png")
    # Every file, signature, SHA256SUMS(.sig), meta.json, key and stream of the store is linked.
    store = LocalStore(tmp_path / "store")
    published = {i.key for i in store.list("")} - {"index.html"}
    linked = {urllib.parse.unquote(h) for h in links.hrefs if not h.startswith("#")}
    assert published <= linked, sorted(published - linked)
