"""Fetch speed (``invoke bench``; marker ``bench``).

Targets (issue 4; issue 11 item 15):
- a cold fetch (download + SHA-256 + OpenPGP signature over every byte + durable cache insert) within 2x
  of a plain download of the same file from the same loopback server, and within 1.2x (the goal) over a
  link slower than SHA-256, as every real one is (here 1 Gbit/s: the server paces its bodies), measured
  in the same run, interleaved, best of 5 (3 on the link). The bytes are hashed as they stream (the
  signature's digest with hashlib, checked by :mod:`coreos_infra.openpgp`; gpgv only for what it does not
  support) and written to disk while they arrive: no second pass over the file. The trusted keyring is
  built while the server answers. For scale the bench also prints a plain download followed by ``gpgv``
  over the file (the two-pass way);
- a cache hit costs the same for a small and a big file (no re-hashing, no network): under 0.5 s.

The loopback server runs in its own process, as a mirror would: in this process its thread would compete
for the interpreter lock with the fetch's threads, which no user's download does.

File size ``BENCH_FETCH_MIB`` (default 128 MiB, incompressible). Ratios are printed; run with ``-s``.

Why 1.2x only over a link: on loopback this server delivers ~1.8 GB/s after 0.12 s spent before the
first byte (it reads the whole file first), while SHA-256 (OpenSSL with SHA-NI) does 0.9-1.4 GB/s on this
2-core machine, with the server busy on the other core: a verified fetch needs at least first byte +
hash, 1.3-1.6x a plain download here however well it overlaps. Measured 2026-12-07: loopback 1.92-1.95x
with the keyring built first, 1.24-1.70x with it built while the server answers (a noisy afternoon:
plain 0.17-0.39 s); over 1 Gbit/s 1.08x (plain 1.17 s, verified 1.27 s).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from benchlib import interleaved_min

from coreos_infra import gpg
from coreos_infra.fetch import FetchOptions, fetch_artifacts
from coreos_infra.stream import ArtifactFile, write_mirror

pytestmark = pytest.mark.bench

MIB = int(os.environ.get("BENCH_FETCH_MIB", "128"))
LINK_RATE = 125e6  # bytes/s: a mirror on a 1 Gbit/s LAN, slower than SHA-256 as any real link is


def _median(fn: Callable[[], None], runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


SERVER = """
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from fetch_testlib import serve
with serve(Path(sys.argv[1])) as server:
    server.behaviour.rate = float(sys.argv[3]) or None
    print(server.url, flush=True)
    sys.stdin.read()
"""


@contextlib.contextmanager
def _server_process(root: Path, rate: float = 0) -> Iterator[str]:
    """The tests' mirror server on loopback in a child process (bodies paced to ``rate`` bytes/s if
    given); its base URL."""
    tests = str(Path(__file__).resolve().parent.parent)
    with subprocess.Popen([sys.executable, "-c", SERVER, str(root), tests, str(rate)], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE) as proc:  # fmt: skip
        assert proc.stdin is not None and proc.stdout is not None
        try:
            yield proc.stdout.readline().decode().strip()
        finally:
            proc.stdin.close()
            proc.wait(timeout=30)


def test_bench_fetch(tmp_path: Path) -> None:
    with gpg.throwaway_key(tmp_path) as key:
        big = tmp_path / "files" / "big.iso"
        small = tmp_path / "files" / "small.iso"
        big.parent.mkdir()
        block = os.urandom(1 << 20)
        with open(big, "wb") as f:
            for _ in range(MIB):
                f.write(block)
        small.write_bytes(block[:4096])
        files = [ArtifactFile("x86_64", "metal", "iso", "disk", big),
                 ArtifactFile("x86_64", "qemu", "iso", "disk", small)]  # fmt: skip
        write_mirror(tmp_path / "mirror", "stable", "43.1", files, signer=key.sign)
        pub = tmp_path / "key.asc"
        pub.write_bytes(key.public_key())
    opts = FetchOptions(backoff=0.01)

    def prepare() -> None:
        (tmp_path / "plain").unlink(missing_ok=True)  # a new file, as the cache writes
        shutil.rmtree(tmp_path / "cache", ignore_errors=True)

    def plain_and_cold(base_url: str) -> tuple[Callable[[], None], Callable[[], None]]:
        url = f"{base_url}/prod/streams/stable/builds/43.1/x86_64/big.iso"

        def plain() -> None:
            with urllib.request.urlopen(url) as resp, open(tmp_path / "plain", "wb") as out:
                shutil.copyfileobj(resp, out, 1 << 20)

        def cold() -> None:
            fetch_artifacts(
                base_url=base_url, stream="stable", arch="x86_64", platform="metal", fmt="iso",
                cache_dir=tmp_path / "cache", keyring=pub, options=opts,
            )  # fmt: skip

        return plain, cold

    with _server_process(tmp_path / "mirror") as base_url:
        plain, cold = plain_and_cold(base_url)

        def hit(platform: str) -> Callable[[], None]:
            def run() -> None:
                fetch_artifacts(
                    base_url=base_url, stream="stable", arch="x86_64", platform=platform, fmt="iso",
                    release="43.1", cache_dir=tmp_path / "hot", keyring=pub, options=opts,
                )  # fmt: skip

            run()
            return run

        sig = tmp_path / "mirror" / "prod" / "streams" / "stable" / "builds" / "43.1" / "x86_64"
        keyring = gpg.build_keyring(tmp_path / "trusted.gpg", pinned=[], extra=[pub])

        def two_pass() -> None:
            plain()
            gpg.verify_detached(tmp_path / "plain", (sig / "big.iso.sig").read_bytes(), keyring)

        t_plain, t_cold, t_two = interleaved_min([plain, cold, two_pass], prepare)
        t_hit_big = _median(hit("metal"), runs=5)
        t_hit_small = _median(hit("qemu"), runs=5)
    with _server_process(tmp_path / "mirror", rate=LINK_RATE) as base_url:
        t_link_plain, t_link_cold = interleaved_min(list(plain_and_cold(base_url)), prepare, rounds=3)
    print(
        f"\nfetch {MIB} MiB: plain download {t_plain:.2f} s ({MIB / t_plain:.0f} MiB/s), "
        f"verified fetch {t_cold:.2f} s ({MIB / t_cold:.0f} MiB/s), ratio {t_cold / t_plain:.2f}x "
        f"(target <= 2x); download then gpgv {t_two / t_plain:.2f}x;\n"
        f"over a {LINK_RATE * 8 / 1e9:.0f} Gbit/s link: plain {t_link_plain:.2f} s, verified "
        f"{t_link_cold:.2f} s, ratio {t_link_cold / t_link_plain:.2f}x (goal <= 1.2x);\n"
        f"cache hit big {t_hit_big * 1000:.0f} ms, small {t_hit_small * 1000:.0f} ms "
        "(target < 500 ms, size-independent)"
    )
    assert t_link_cold / t_link_plain <= 1.2
    assert t_cold / t_plain <= 2.0
    assert t_hit_big < 0.5 and t_hit_small < 0.5
