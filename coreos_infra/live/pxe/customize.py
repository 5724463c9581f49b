"""``pxe customize``: a live initramfs with a customization archive appended (coreos-installer compatible).

The input initramfs is copied verbatim (its compressed archives are never re-encoded) and the §1.2 xz
archive built by :mod:`coreos_infra.live.customize` (live ``config.ign``, installer configs, hooks, network
keyfiles) is appended right after it, with no padding — even when there is nothing to customize (a
trailer-only archive), as coreos-installer does. Before that the input is read once, as a stream,
across all its archives (an FCOS initramfs is an early-microcode cpio, the zstd dracut archive and the
gzip live-build archive): it must carry the live stamp ``etc/coreos-live-initramfs`` and no earlier
customization; ``etc/coreos/features.json`` says what the OS supports.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from coreos_infra.cpio import initrd_to_bytes
from coreos_infra.errors import CoreosInfraError, InputError, Location
from coreos_infra.fsutil import CHUNK, atomic_output, copy_file_fast
from coreos_infra.live.customize import (
    CustomizeError,
    CustomizeOptions,
    CustomizeResult,
    Features,
    customize,
)
from coreos_infra.live.pxe.wrap import (
    FEATURES_PATH,
    IGNITION_PATH,
    LIVE_STAMP_PATH,
    NETWORK_GLOB,
    read_members,
)

KARGS_NOTICE = (
    "PXE configuration must include kernel arguments:\n\tignition.firstboot ignition.platform.id=metal"
)
REQUIRED_KARGS = ("ignition.firstboot", "ignition.platform.id=metal")


@dataclass(frozen=True)
class PxeCustomization:
    """The archive to append and what the customization printed/decided."""

    archive: bytes
    result: CustomizeResult
    notices: tuple[str, ...]  # everything coreos-installer prints to stderr, in order

    @property
    def needs_ignition_kargs(self) -> bool:
        return self.result.live_config is not None


def plan_customization(
    initramfs: bytes | BinaryIO, opts: CustomizeOptions, *, source: str
) -> PxeCustomization:
    """Check ``initramfs`` (bytes or a file, read as a stream) is a pristine CoreOS live initramfs and build
    the archive for ``opts``."""
    members = read_members(
        initramfs, [LIVE_STAMP_PATH, FEATURES_PATH, IGNITION_PATH, NETWORK_GLOB], source=source
    )
    if LIVE_STAMP_PATH not in members:
        raise CustomizeError(f"{source}: not a CoreOS live initramfs image")
    if IGNITION_PATH in members or any(k != LIVE_STAMP_PATH and k != FEATURES_PATH for k in members):
        raise CustomizeError(f"{source}: input is already customized")
    features = Features()
    if FEATURES_PATH in members:
        features = Features.parse(members[FEATURES_PATH], f"{source}:/{FEATURES_PATH}")
    result = customize(opts, features, flavor="pxe")
    notices = [*result.warnings, *result.messages]
    if result.live_config is not None:
        notices.append(KARGS_NOTICE)
    return PxeCustomization(initrd_to_bytes(result.initrd), result, tuple(notices))


def customize_initramfs_bytes(
    initramfs: bytes, opts: CustomizeOptions, *, source: str
) -> tuple[bytes, PxeCustomization]:
    """The customized initramfs (input + appended archive) and the plan."""
    plan = plan_customization(initramfs, opts, source=source)
    return initramfs + plan.archive, plan


def customize_initramfs(
    initramfs: Path, output: Path | None, opts: CustomizeOptions, *, overwrite: bool = False,
    stdout: BinaryIO | None = None, durable: bool = False,
) -> PxeCustomization:  # fmt: skip
    """``pxe customize -o OUTPUT INITRAMFS``; ``output`` None writes to ``stdout`` (default sys.stdout).

    The output appears atomically and, like coreos-installer, never replaces an existing file unless
    ``overwrite``; it is fsynced before the rename only if ``durable`` (like ``cp`` and coreos-installer).
    """
    if output is not None and not overwrite and output.exists():
        raise CoreosInfraError(f"{output}: refusing to overwrite an existing file")
    try:
        src = open(initramfs, "rb")  # noqa: SIM115
    except OSError as e:
        raise InputError(f"opening initramfs: {e.strerror}", Location(file=str(initramfs))) from e
    with src:
        size = os.fstat(src.fileno()).st_size
        # One streaming pass reads the archives (the big zstd one is decompressed in pieces, its bodies
        # skipped); the output is then the input's bytes copied untouched plus the appended archive.
        try:
            plan = plan_customization(src, opts, source=str(initramfs))
        except OSError as e:
            raise InputError(f"reading initramfs: {e.strerror}", Location(file=str(initramfs))) from e
        src.seek(0)
        if output is None:
            out = stdout if stdout is not None else sys.stdout.buffer
            shutil.copyfileobj(src, out, CHUNK)
            out.write(plan.archive)
            out.flush()
            return plan
        with atomic_output(output, overwrite=overwrite, parents=False, durable=durable) as f:
            # the verbatim copy goes through copy_file_range (reflink where possible), not through Python
            copy_file_fast(src, f)
            f.seek(0, os.SEEK_END)
            if f.tell() != size:
                raise CoreosInfraError(f"{initramfs}: changed while it was being read")
            f.write(plan.archive)
    return plan
