"""Test support for the fetch tests: a real loopback HTTP server and a small signed mirror.

The server serves a directory like the official builds server, honours ``Range``/``If-Range``, records
every request, and can be told to drop the connection part-way through a file, answer with an error
status a number of times, stall, or announce a huge ``Content-Length``.
"""

from __future__ import annotations

import contextlib
import hashlib
import lzma
import os
import random
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import BinaryIO

from coreos_infra import gpg
from coreos_infra.stream import ArtifactFile, artifact_filename, write_mirror

STREAM = "stable"
RELEASE = "43.20261101.3.0"
OLD_RELEASE = "43.20261015.3.1"


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class Behaviour:
    drop_after: dict[str, int] = field(default_factory=dict)  # path -> bytes of body sent, then drop (once)
    fail: dict[str, list[int]] = field(default_factory=dict)  # path -> statuses to answer first
    fail_ranged: dict[str, list[int]] = field(default_factory=dict)  # same, only for Range requests
    stall: dict[str, float] = field(default_factory=dict)  # path -> seconds to sleep before the body (once)
    fake_length: dict[str, int] = field(default_factory=dict)  # path -> Content-Length to announce
    ignore_range: bool = False
    rate: float | None = None  # bytes per second every body is paced to (a link slower than loopback)


class MirrorServer:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.requests: list[Request] = []
        self.behaviour = Behaviour()
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_HEAD(self) -> None:
                self.do_GET()

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                with server.lock:
                    server.requests.append(Request(self.command, path, dict(self.headers.items())))
                    b = server.behaviour
                    failures = b.fail.get(path)
                    if "Range" in self.headers and b.fail_ranged.get(path):
                        failures = b.fail_ranged[path]
                    status = failures.pop(0) if failures else None
                    drop = b.drop_after.pop(path, None)
                    stall = b.stall.pop(path, None)
                    fake = b.fake_length.get(path)
                if status is not None:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                file = server.root / path.lstrip("/")
                if ".." in Path(path).parts or not file.is_file():
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data = file.read_bytes()
                st = file.stat()
                etag = f'"{st.st_size:x}-{st.st_mtime_ns:x}"'
                start = 0
                rng = self.headers.get("Range")
                if_range = self.headers.get("If-Range")
                if rng and not b.ignore_range and (if_range is None or if_range == etag):
                    start = int(rng.removeprefix("bytes=").split("-")[0])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(fake if fake is not None else len(body)))
                self.send_header("ETag", etag)
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                if self.command == "HEAD":
                    return
                if stall:
                    time.sleep(stall)
                if drop is not None:
                    with contextlib.suppress(OSError):
                        self.wfile.write(body[:drop])
                        self.wfile.flush()
                        self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                with contextlib.suppress(OSError):
                    if b.rate:
                        _paced(self.wfile, body, b.rate)
                    else:
                        self.wfile.write(body)
                if fake is not None:
                    self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def requests_for(self, suffix: str) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if r.path.endswith(suffix)]

    def clear(self) -> None:
        with self.lock:
            self.requests.clear()

    def __enter__(self) -> MirrorServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


def _paced(out: BinaryIO, body: bytes, rate: float) -> None:
    """Write ``body`` no faster than ``rate`` bytes per second."""
    view, step, start = memoryview(body), 256 << 10, time.monotonic()
    for at in range(0, len(view), step):
        out.write(view[at : at + step])
        ahead = start + (at + step) / rate - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)


@contextlib.contextmanager
def serve(root: Path) -> Iterator[MirrorServer]:
    with MirrorServer(root) as server:
        yield server


def pseudo_random(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


@dataclass(frozen=True)
class MirrorFixture:
    root: Path
    key: gpg.SigningKey
    public_key: Path  # armored public key of the signing key
    contents: dict[tuple[str, str, str, str], bytes]  # (arch, platform, fmt, role) -> file content

    def path_of(
        self, arch: str, platform: str, fmt: str, role: str = "disk", release: str = RELEASE
    ) -> Path:
        name = artifact_filename(release, arch, platform, fmt, role)
        return self.root / "prod" / "streams" / STREAM / "builds" / release / arch / name

    def url_path(
        self, arch: str, platform: str, fmt: str, role: str = "disk", release: str = RELEASE
    ) -> str:
        return "/" + str(self.path_of(arch, platform, fmt, role, release).relative_to(self.root))


def build_mirror(root: Path, key: gpg.SigningKey, work: Path) -> MirrorFixture:
    """A mirror with two releases: metal raw.xz/iso/pxe/4k.raw.xz for x86_64, raw.xz for aarch64, qemu
    qcow2.xz."""
    work.mkdir(parents=True, exist_ok=True)
    contents: dict[tuple[str, str, str, str], bytes] = {}
    for release, seed in ((OLD_RELEASE, 100), (RELEASE, 200)):
        files = []
        specs = [
            ("x86_64", "metal", "raw.xz", "disk", 600 << 10),
            ("x86_64", "metal", "iso", "disk", 300 << 10),
            ("x86_64", "metal", "pxe", "kernel", 40 << 10),
            ("x86_64", "metal", "pxe", "initramfs", 80 << 10),
            ("x86_64", "metal", "pxe", "rootfs", 120 << 10),
            ("aarch64", "metal", "raw.xz", "disk", 200 << 10),
            ("x86_64", "qemu", "qcow2.xz", "disk", 100 << 10),
            ("x86_64", "metal", "4k.raw.xz", "disk", 60 << 10),  # the metal4k recipe's base
        ]
        for i, (arch, platform, fmt, role, size) in enumerate(specs):
            raw = pseudo_random(size, seed + i)
            name = artifact_filename(release, arch, platform, fmt, role)
            uncompressed = None
            data = raw
            if fmt.endswith(".xz"):
                data = lzma.compress(raw, preset=0)
                uncompressed = hashlib.sha256(raw).hexdigest()
            path = work / release / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            if release == RELEASE:
                contents[(arch, platform, fmt, role)] = data
            files.append(ArtifactFile(arch, platform, fmt, role, path, uncompressed_sha256=uncompressed))
        write_mirror(root, STREAM, release, files, signer=key.sign)
    public = work / "mirror-key.asc"
    public.write_bytes(key.public_key())
    return MirrorFixture(root, key, public, contents)


def copy_mirror(mirror: MirrorFixture, dest: Path) -> MirrorFixture:
    shutil.copytree(mirror.root, dest)
    return MirrorFixture(dest, mirror.key, mirror.public_key, mirror.contents)


def cache_state(cache: Path) -> dict[str, list[str]]:
    """What the cache directory holds: verified blobs and anything left in tmp/."""
    blobs = sorted(p.name for p in (cache / "sha256").glob("*")) if (cache / "sha256").exists() else []
    tmp = sorted(p.name for p in (cache / "tmp").glob("*")) if (cache / "tmp").exists() else []
    return {"sha256": blobs, "tmp": tmp}


def assert_cache_clean(cache: Path, digest: str) -> None:
    """Nothing for ``digest`` was kept and no partial download remains."""
    state = cache_state(cache)
    assert not [n for n in state["sha256"] if n.startswith(digest)], state
    assert state["tmp"] == [], state
    assert all(os.access(cache / "sha256" / n, os.R_OK) for n in state["sha256"])
