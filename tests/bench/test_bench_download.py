"""Download speed (``invoke bench``; marker ``bench``).

Target (issue 13): ``download`` of a published image — GET from S3, SHA-256 against the signed
SHA256SUMS and gpgv over every byte with the file's own ``.sig``, fsync, rename — at least as fast as a
plain ``rclone copy`` of the same object from the same loopback SeaweedFS server (1.0x), measured in the
same run. Size ``BENCH_DOWNLOAD_MIB`` (default 512 MiB, incompressible). The commands run in turn, six
times each in a rotating order, each after a ``sync`` and a settling pause (untimed) so that none pays
for another's writeback or freed memory; medians.
Run with ``-s`` for the numbers.
"""

from __future__ import annotations

import logging
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import s3server as s3fixtures  # noqa: E402
from benchlib import settle  # noqa: E402
from publish_testlib import ROOT, ensure_builds, fake_build  # noqa: E402
from s3server import S3Server  # noqa: E402

from coreos_infra import gpg  # noqa: E402
from coreos_infra.publish.download import download_build, resolve_build  # noqa: E402
from coreos_infra.publish.publish import PublishOptions, publish  # noqa: E402
from coreos_infra.publish.store import open_store  # noqa: E402

pytestmark = pytest.mark.bench

MIB = int(os.environ.get("BENCH_DOWNLOAD_MIB", "512"))
s3server = s3fixtures.s3server


def _alternating(fns: dict[str, Callable[[], None]], prepare: Callable[[], None],
                 runs: int = 6) -> dict[str, float]:  # fmt: skip
    """Median wall time of each of ``fns``, run in turn ``runs`` times; ``prepare`` (untimed) before each
    run removes the last output and syncs, so that no run pays for the writeback of an earlier one.

    The order rotates every round: whatever runs right after a command that freed much memory (rclone)
    pays extra system time for pages the kernel is still reclaiming, so a fixed order favours one side.
    """
    times: dict[str, list[float]] = {name: [] for name in fns}
    names = list(fns)
    for r in range(runs):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            fn = fns[name]
            prepare()
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    print("\n" + "; ".join(f"{name}: " + " ".join(f"{x:.2f}" for x in t) for name, t in times.items()))
    return {name: statistics.median(t) for name, t in times.items()}


class _StreamCounter(logging.Handler):
    """Records the stream count that each download logs ("<name>: N stream(s)")."""

    def __init__(self, streams: list[int]) -> None:
        super().__init__(logging.DEBUG)
        self.streams = streams

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        if msg.endswith(" stream(s)") and self.streams:
            self.streams[-1] = int(msg.rsplit(" ", 2)[1])


@pytest.fixture
def env(s3server: S3Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Server]:
    for k in list(os.environ):
        if k.startswith("AWS_"):
            monkeypatch.delenv(k)
    for k, v in s3server.env().items():
        monkeypatch.setenv(k, v)
    yield s3server


def test_bench_download_vs_rclone(env: S3Server, tmp_path: Path) -> None:
    rclone = shutil.which("rclone")
    if rclone is None:
        pytest.skip("rclone is not installed (./scripts/setup installs it)")
    builds = ensure_builds(("metal",), tmp_path / "builds")
    big = tmp_path / "big"
    fake_build(builds, big, "metal", "e" * 16, date="2030-01-01T00:00:00Z", size=MIB << 20)
    bucket = env.make_bucket()
    with gpg.throwaway_key(tmp_path) as key:
        publish(PublishOptions(root=ROOT, store=f"s3://{bucket}", build_root=big, gnupg_home=str(key.home),
                               key_id=key.fingerprint))  # fmt: skip
        trusted = tmp_path / "lab.asc"
        trusted.write_bytes(key.public_key())
    store = open_store(f"s3://{bucket}")
    f = resolve_build(store, "lab", "dns1", "metal").disk_image()
    assert f.size == MIB << 20
    conf = tmp_path / "rclone.conf"
    conf.write_text(
        f"[s]\ntype = s3\nprovider = SeaweedFS\nendpoint = {env.endpoint}\nregion = us-east-1\n"
        f"access_key_id = {os.environ['AWS_ACCESS_KEY_ID']}\n"
        f"secret_access_key = {os.environ['AWS_SECRET_ACCESS_KEY']}\n"
    )
    rclone_env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
    work = tmp_path / "work"

    def prepare() -> None:
        shutil.rmtree(work, ignore_errors=True)
        settle()

    def baseline() -> None:
        subprocess.run([rclone, "--config", str(conf), "copy", f"s:{bucket}/{f.key}", str(work / "rclone")],
                       check=True, env=rclone_env)  # fmt: skip

    def ours(verify_each: bool = False) -> None:
        streams.append(0)
        got = download_build(store, "lab", "dns1", "metal", dest=work / "ours", keyring=trusted,
                             names=[f.name], verify_each=verify_each, show_progress=False)  # fmt: skip
        assert got.signed and got.files[f.name].stat().st_size == f.size

    streams: list[int] = []  # how many streams each of our runs chose (see rangefetch.ONE_STREAM_RATE)
    counter = _StreamCounter(streams)
    logging.getLogger("coreos_infra.publish").addHandler(counter)
    logging.getLogger("coreos_infra.publish").setLevel(logging.DEBUG)
    prepare()
    baseline()  # warm up the server and the page cache of its volume
    assert (work / "rclone" / f.name).stat().st_size == f.size
    ours()
    commands = {"rclone": baseline, "ours": ours, "each": lambda: ours(verify_each=True)}
    medians = _alternating(commands, prepare)
    logging.getLogger("coreos_infra.publish").removeHandler(counter)
    print("streams chosen by our runs, in order: " + " ".join(map(str, streams)))
    t_rclone, t_ours, t_each = medians["rclone"], medians["ours"], medians["each"]
    ratio = t_rclone / t_ours
    mbs = f.size / 1e6
    print(f"\ndownload {MIB} MiB: rclone copy {t_rclone:.2f} s ({mbs / t_rclone:.0f} MB/s); "
          f"download+verify {t_ours:.2f} s ({mbs / t_ours:.0f} MB/s): ratio {ratio:.2f}x (target >= 1.0); "
          f"with --verify-each (gpgv over every byte) {t_each:.2f} s: {t_rclone / t_each:.2f}x")  # fmt: skip
    assert ratio >= 1.0
