"""Customize an FCOS metal ``raw.xz`` into a new ``raw.xz``: the pipeline behind the ``metal`` and
``rpi4`` targets.

1. Read the xz block layout. Multi-block single-stream inputs are *spliced*: only the blocks covering
   the GPT, the ESP (if it is edited) and the ``boot`` filesystem are decoded into a sparse working
   file; every other block stays a hole there and is later copied compressed, byte for byte.
   Other inputs (or ``splice=False``) take the full round trip: stream-decompress into a sparse file,
   edit, ``xz -T0``.
2. Edit without mounting: the boot filesystem with debugfs (:mod:`coreos_infra.disk.bootfs`), the ESP
   with mtools (an optional hook, e.g. the Raspberry Pi firmware).
3. Check with independent tools (``sgdisk -v``, ``fsck.vfat -n``, ``e2fsck -fn``).
4. Re-encode only the blocks whose bytes changed, write the output atomically, return the facts.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coreos_infra import xzsplice
from coreos_infra.disk.bootfs import BootCustomization, customize_boot, find_boot_partition
from coreos_infra.disk.check import check_image
from coreos_infra.disk.ext4 import Ext4Image
from coreos_infra.disk.fat import FatImage
from coreos_infra.disk.gpt import TYPE_ESP, Gpt, GptError, Partition, read_gpt
from coreos_infra.errors import CoreosInfraError, WriteError
from coreos_infra.fsutil import atomic_output, naming_write_errors, sha256_file, signals_held
from coreos_infra.log import progress, step

LOG = logging.getLogger("coreos_infra.disk")

EspHook = Callable[[FatImage], dict[str, Any]]
HEAD_BYTES = 1 << 20  # protective MBR + primary GPT (512 or 4K sectors) + partition superblocks


@dataclass(frozen=True)
class RawImageOptions:
    boot: BootCustomization
    xz_preset: int = 9
    splice: bool = True
    threads: int = 0  # 0: all cores
    source_date_epoch: int | None = None
    output_mode: int = 0o644  # 0o600 when the Ignition config carries secrets


def find_esp(gpt: Gpt) -> Partition:
    esps = gpt.by_type(TYPE_ESP)
    if len(esps) == 1:
        return esps[0]
    try:
        return gpt.by_label("EFI-SYSTEM")
    except GptError:
        raise GptError(f"expected one EFI system partition, found {len(esps)}") from None


@contextlib.contextmanager
def _working_file(out_path: Path) -> Iterator[Path]:
    name = ""
    try:
        with signals_held():
            try:
                fd, name = tempfile.mkstemp(
                    prefix=f".{out_path.name}.", suffix=".work.raw", dir=out_path.parent
                )
            except OSError as e:
                raise WriteError(str(out_path), e, stage="open") from None
        os.close(fd)
        with naming_write_errors(Path(name)):
            yield Path(name)
    finally:
        if name:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name)


def _edit(work: Path, gpt: Gpt, opts: RawImageOptions, esp_hook: EspHook | None) -> dict[str, Any]:
    facts: dict[str, Any] = {"sector_size": gpt.sector_size}
    boot = find_boot_partition(work, gpt)
    with step(f"customizing the boot filesystem (partition {boot.number})"):
        res = customize_boot(
            Ext4Image(work, boot.offset, source_date_epoch=opts.source_date_epoch), opts.boot
        )
    facts.update(bls_entry=res.bls_entry, kernel_arguments=res.kargs, boot_files=res.files,
                 ignition_firstboot=res.firstboot)  # fmt: skip
    if res.console_cfg:
        facts["grub_console_cfg"] = res.console_cfg
    if esp_hook is not None:
        esp = find_esp(gpt)
        with step(f"customizing the EFI system partition (partition {esp.number})"):
            facts.update(esp_hook(FatImage(work, esp.offset, source_date_epoch=opts.source_date_epoch)))
    return facts


def _decode(layout: xzsplice.XzLayout, blocks: list[int], fd: int, threads: int) -> dict[int, str]:
    total = sum(layout.blocks[i].uncompressed_size for i in blocks)
    with progress(total, "decoding") as bar:
        return xzsplice.decode_blocks(layout, blocks, fd, threads=threads, progress=bar.update)


def build_raw_image(base: Path, out_path: Path, opts: RawImageOptions,
                    esp_hook: EspHook | None = None) -> dict[str, Any]:  # fmt: skip
    """Write the customized image to ``out_path`` (atomically) and return facts for ``meta.json``."""
    if not 0 <= opts.xz_preset <= 9:
        raise CoreosInfraError(f"xz preset must be 0-9, not {opts.xz_preset}")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    layout = xzsplice.read_layout(base)
    if opts.splice and layout is not None and len(layout.blocks) > 1:
        return _build_spliced(base, layout, out_path, opts, esp_hook)
    if opts.splice:
        why = "it is not a single xz stream" if layout is None else "it is a single xz block"
        LOG.info(
            "cannot splice %s (%s): full decompress/recompress round trip with all cores", base.name, why
        )
    return _build_round_trip(base, out_path, opts, esp_hook)


def _build_spliced(base: Path, layout: xzsplice.XzLayout, out_path: Path, opts: RawImageOptions,
                   esp_hook: EspHook | None) -> dict[str, Any]:  # fmt: skip
    with _working_file(out_path) as work, open(work, "r+b") as wf:
        fd = wf.fileno()
        os.ftruncate(fd, layout.uncompressed_size)
        with step(f"decoding the partition table area of {base.name}"):
            hashes = _decode(layout, layout.blocks_covering([(0, HEAD_BYTES)]), fd, opts.threads)
            # the backup GPT lives in the last sectors
            tail = layout.blocks_covering(
                [(layout.uncompressed_size - HEAD_BYTES, layout.uncompressed_size)]
            )
            hashes.update(_decode(layout, [i for i in tail if i not in hashes], fd, opts.threads))
            gpt = read_gpt(wf, image_size=layout.uncompressed_size)
            # every partition's superblock area, to find the boot filesystem by its label
            heads = layout.blocks_covering([(p.offset, p.offset + 65536) for p in gpt.partitions])
            hashes.update(_decode(layout, [i for i in heads if i not in hashes], fd, opts.threads))
        boot = find_boot_partition(work, gpt)
        edited = [boot] + ([find_esp(gpt)] if esp_hook is not None else [])
        need = layout.blocks_covering([(p.offset, p.end) for p in edited] + gpt.table_ranges())
        with step(f"decoding {len(need)} of {len(layout.blocks)} xz blocks"):
            hashes.update(_decode(layout, [i for i in need if i not in hashes], fd, opts.threads))
        facts = _edit(work, gpt, opts, esp_hook)
        with step("checking the image (sgdisk -v, fsck.vfat -n, e2fsck -fn)"):
            report = check_image(work, partitions=tuple(p.label for p in edited))
        _assert_holes_untouched(fd, layout, set(hashes))
        changed = [i for i in sorted(hashes) if xzsplice.hash_range(fd, *layout.raw_range(i)) != hashes[i]]
        with step(
            f"re-encoding {len(changed)} changed block(s), copying {len(layout.blocks) - len(changed)}"
        ):
            total = sum(layout.blocks[i].uncompressed_size for i in changed)
            with (
                progress(total, "compressing") as bar,
                atomic_output(out_path, mode=opts.output_mode) as out,
            ):
                res = xzsplice.splice(
                    layout, fd, changed, out, preset=opts.xz_preset, threads=opts.threads,
                    decoded=hashes, tmp_dir=out_path.parent, progress=bar.update,
                )  # fmt: skip
    facts.update(
        checks=report.as_meta(),
        xz={
            "spliced": True,
            "blocks": len(layout.blocks),
            "decoded": sorted(hashes),
            "reencoded": list(res.reencoded),
            "preset": opts.xz_preset,
        },  # fmt: skip
        size=res.size,
        sha256=res.sha256,
        uncompressed_size=res.uncompressed_size,
        uncompressed_sha256=res.uncompressed_sha256,
    )
    return facts


def _assert_holes_untouched(fd: int, layout: xzsplice.XzLayout, decoded: set[int]) -> None:
    """No tool may have written into a block we did not decode (it would be silently lost)."""
    for i in range(len(layout.blocks)):
        if i in decoded:
            continue
        start, end = layout.raw_range(i)
        try:
            data = os.lseek(fd, start, os.SEEK_DATA)
        except OSError:
            continue
        if data < end:
            raise CoreosInfraError(
                f"internal error: the edit wrote into xz block {i}, which was not decoded"
            )


def _build_round_trip(base: Path, out_path: Path, opts: RawImageOptions,
                      esp_hook: EspHook | None) -> dict[str, Any]:  # fmt: skip
    with _working_file(out_path) as work:
        with step(f"decompressing {base.name} into a sparse file"), progress(None, "decompressing") as bar:
            size = xzsplice.decompress_to_sparse(base, work, threads=opts.threads, progress=bar.update)
        gpt = read_gpt(work)
        facts = _edit(work, gpt, opts, esp_hook)
        with step("checking the image (sgdisk -v, fsck.vfat -n, e2fsck -fn)"):
            report = check_image(work)
        with step(f"compressing with xz -{opts.xz_preset} -T{opts.threads}"):
            with atomic_output(out_path, mode=opts.output_mode) as out:
                xzsplice.compress_file(work, out, preset=opts.xz_preset, threads=opts.threads)
        h = hashlib.sha256()
        with open(work, "rb") as f:
            while chunk := f.read(xzsplice.CHUNK):
                h.update(chunk)
        uncompressed_sha = h.hexdigest()
    facts.update(
        checks=report.as_meta(),
        xz={"spliced": False, "preset": opts.xz_preset},
        size=out_path.stat().st_size,
        sha256=sha256_file(out_path),
        uncompressed_size=size,
        uncompressed_sha256=uncompressed_sha,
    )
    return facts
