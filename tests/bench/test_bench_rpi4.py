"""rpi4 build speed and memory (``invoke bench``; marker ``bench``).

Targets (issue 7), on a multi-block FCOS-like aarch64 image (``BENCH_RPI4_MIB``, default 2560 MiB):
- the whole rpi4 build (block splicing) at most 0.3x the time of ``xz -dc | xz -9 -T0`` on the same
  image, measured in the same run;
- with ``splice: false`` at most 1.1x of that round trip (skip with ``BENCH_RPI4_NOSPLICE=0``);
- peak RSS of the build does not grow with the image size (a second image of half the size).

The image: GPT with the FCOS layout (1 MiB reserved, 127 MiB ESP, 384 MiB boot with 80 MiB of
incompressible kernel/initramfs, root the rest), a root ext4 holding a sparse file with 1 MiB of random
and 3 MiB of text-like data every 8 MiB (half the root used, like an FCOS image), compressed
like FCOS as multi-block xz (192 MiB blocks; preset 3 to keep the setup shorter - the copied blocks'
preset does not matter, the re-encoded ones use -9 like the baseline). Run with ``-s`` to see numbers.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchlib import python_measure  # noqa: E402
from rawdisk_helpers import MIB, sh  # noqa: E402

from coreos_infra.fixtures.firmware import firmware_files, make_zip  # noqa: E402

pytestmark = pytest.mark.bench

ROOT = Path(__file__).resolve().parent.parent.parent
SIZE_MIB = int(os.environ.get("BENCH_RPI4_MIB", "2560"))
NOSPLICE = os.environ.get("BENCH_RPI4_NOSPLICE", "1") != "0"
BLOCK = 192 * MIB


def make_image(d: Path, size_mib: int) -> Path:
    """Build ``d/base.raw.xz`` (and remove the raw file)."""
    d.mkdir(parents=True, exist_ok=True)
    raw = d / "base.raw"
    root_mib = size_mib - 1 - 1 - 127 - 384 - 1
    with open(raw, "wb") as f:
        f.truncate(size_mib * MIB)
    sh("sgdisk", "-Z", raw, "-U", "00000000-0000-4000-a000-000000000001",
       "-n", "1:0:+1M", "-c", "1:reserved", "-t", "1:8DA63339-0007-60C0-C436-083AC8230908",
       "-n", "2:0:+127M", "-c", "2:EFI-SYSTEM", "-t", "2:C12A7328-F81F-11D2-BA4B-00A0C93EC93B",
       "-n", "3:0:+384M", "-c", "3:boot", "-t", "3:BC13C2FF-59E6-4262-A352-B275FD6F7172",
       "-n", f"4:0:+{root_mib}M", "-c", "4:root",
       "-t", "4:B921B045-1DF0-41C3-AF44-4C6F280D3FAE")  # fmt: skip
    rnd = random.Random(size_mib)
    bootfs = d / "bootfs"
    (bootfs / "loader" / "entries").mkdir(parents=True, exist_ok=True)
    (bootfs / "loader" / "entries" / "ostree-1-fedora-coreos.conf").write_text(
        "title Fedora CoreOS\nversion 1\nlinux /ostree/a/vmlinuz\ninitrd /ostree/a/initramfs.img\n"
        "options mitigations=auto,nosmt ignition.platform.id=metal $ignition_firstboot "
        "ostree=/ostree/boot.1/a\n"
    )
    (bootfs / "ostree" / "a").mkdir(parents=True, exist_ok=True)
    # like FCOS: an already-compressed kernel and (zstd) initramfs, ~80 MiB of incompressible data
    (bootfs / "ostree" / "a" / "vmlinuz").write_bytes(rnd.randbytes(16 * MIB))
    (bootfs / "ostree" / "a" / "initramfs.img").write_bytes(rnd.randbytes(64 * MIB))
    (bootfs / "ignition.firstboot").write_text("")
    rootfs = d / "rootfs"
    rootfs.mkdir(exist_ok=True)
    text = b"".join(b"line %d of a fairly compressible text file with words\n" % i for i in range(40000))[
        : 2 * MIB
    ]
    with open(rootfs / "filler", "wb") as f:
        for pos in range(0, (root_mib - 64) * MIB, 8 * MIB):
            f.seek(pos)
            f.write(rnd.randbytes(MIB) + text + text[:MIB])
    parts = {}
    for n in (2, 3, 4):
        out = sh("sgdisk", "-i", str(n), raw).stdout.decode()
        parts[n] = int(
            next(x for x in out.splitlines() if x.startswith("First sector")).split(":")[1].split()[0]
        )
    sh("mkfs.vfat", "-C", "-n", "EFI-SYSTEM", d / "esp.img", str(127 * 1024))
    sh("mmd", "-i", d / "esp.img", "::/EFI", "::/EFI/BOOT")
    (d / "BOOTAA64.EFI").write_bytes(rnd.randbytes(MIB))
    sh("mcopy", "-i", d / "esp.img", d / "BOOTAA64.EFI", "::/EFI/BOOT/")
    sh("mke2fs", "-q", "-t", "ext4", "-L", "boot", "-d", bootfs, d / "boot.img", "384M")
    sh("mke2fs", "-q", "-t", "ext4", "-L", "root", "-d", rootfs, d / "root.img", f"{root_mib}M")
    for name, n in (("esp.img", 2), ("boot.img", 3), ("root.img", 4)):
        sh("dd", f"if={d / name}", f"of={raw}", "bs=1M", f"seek={parts[n] * 512}", "oflag=seek_bytes",
           "conv=notrunc,sparse", "status=none")  # fmt: skip
        (d / name).unlink()
    (rootfs / "filler").unlink()
    with open(d / "base.raw.xz", "wb") as f:
        subprocess.run(["xz", "-3", "-T2", f"--block-size={BLOCK}", "-c", str(raw)], stdout=f, check=True)
    raw.unlink()
    return d / "base.raw.xz"


CHILD = """
import json, sys, time
from pathlib import Path
from coreos_infra.build import BuildRequest
from coreos_infra.targets import rpi4
base, out, fw, splice = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4] == "1"
req = BuildRequest(target="bench", kind="rpi4", arch="aarch64",
                   ignition=b'{"ignition":{"version":"3.3.0"}}', base={"disk": base}, base_release="40",
                   build_id="bench", out_dir=out, cache_dir=out / "cache",
                   options={"firmware": {"url": "file://" + fw}, "firmware_lock": str(out / "fw.lock"),
                            "ram_limit_3gb": False, "console": ["ttyAMA0,115200"], "splice": splice,
                            "xz_preset": 9})
t = time.perf_counter()
res = rpi4.build(req)
elapsed = time.perf_counter() - t
print(json.dumps({"seconds": elapsed, "xz": res.meta["image"]["xz"], "size": res.meta["image"]["size"]}))
"""


def run_build(base: Path, out: Path, fw: Path, *, splice: bool) -> dict[str, object]:
    """The build in its own process; ``maxrss_kib``: the peak of its largest process (see benchlib)."""
    m = python_measure(CHILD, str(base), str(out), str(fw), "1" if splice else "0")
    data: dict[str, object] = json.loads(m.stdout.decode().strip().splitlines()[-1])
    data["maxrss_kib"] = m.peak_kib
    return data


def baseline(base: Path, out: Path) -> float:
    t = time.perf_counter()
    subprocess.run(["bash", "-c", f"set -o pipefail; xz -dc '{base}' | xz -9 -T0 > '{out}'"], check=True)
    return time.perf_counter() - t


def test_bench_rpi4_vs_xz_round_trip(tmp_path: Path) -> None:
    fw = tmp_path / "fw.zip"
    fw.write_bytes(make_zip(firmware_files()))
    t0 = time.perf_counter()
    big = make_image(tmp_path / "big", SIZE_MIB)
    print(f"\nbench image: {SIZE_MIB} MiB raw, {big.stat().st_size / MIB:.1f} MiB xz, built in "
          f"{time.perf_counter() - t0:.0f} s")  # fmt: skip
    t_base = baseline(big, tmp_path / "rt.xz")
    print(f"baseline xz -dc | xz -9 -T0: {t_base:.1f} s")
    spliced = run_build(big, tmp_path / "out-splice", fw, splice=True)
    ratio = float(spliced["seconds"]) / t_base  # type: ignore[arg-type]
    print(
        f"rpi4 build, splicing: {spliced['seconds']:.1f} s = {ratio:.3f}x the round trip (target <= 0.3); "
        f"xz {spliced['xz']}; peak RSS {int(spliced['maxrss_kib']) / 1024:.0f} MiB"  # type: ignore[call-overload]
    )  # type: ignore[call-overload]
    results = {"size_mib": SIZE_MIB, "baseline_s": t_base, "splice": spliced, "splice_ratio": ratio}
    if NOSPLICE:
        full = run_build(big, tmp_path / "out-full", fw, splice=False)
        ratio_full = float(full["seconds"]) / t_base  # type: ignore[arg-type]
        print(f"rpi4 build, splice off: {full['seconds']:.1f} s = {ratio_full:.3f}x (target <= 1.1); "
              f"peak RSS {int(full['maxrss_kib']) / 1024:.0f} MiB")  # type: ignore[call-overload]  # fmt: skip
        results.update(full=full, full_ratio=ratio_full)
    # memory: half the size, same build
    half_mib = max(SIZE_MIB // 2, 640)
    half = make_image(tmp_path / "half", half_mib)
    small = run_build(half, tmp_path / "out-half", fw, splice=True)
    rss_big, rss_small = int(spliced["maxrss_kib"]), int(small["maxrss_kib"])  # type: ignore[call-overload]
    print(f"peak RSS (splicing): {half_mib} MiB image {rss_small / 1024:.0f} MiB, {SIZE_MIB} MiB image "
          f"{rss_big / 1024:.0f} MiB")  # fmt: skip
    results.update(half=small)
    print("BENCH-RPI4 " + json.dumps(results))
    assert ratio <= 0.3
    if NOSPLICE:
        assert ratio_full <= 1.1
    assert rss_big <= rss_small * 1.25 + 64 * 1024, "peak memory must not grow with the image size"
