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
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from coreos_infra.cpio import Readable
from coreos_infra.errors import CoreosInfraError, InputError, Location
from coreos_infra.fsutil import CHUNK, atomic_output, copying_meanwhile
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
from coreos_infra.live.xzencoder import InitrdEncoder, encode_initrd

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
    initramfs: bytes | Readable, opts: CustomizeOptions, *, source: str, encoder: InitrdEncoder | None = None
) -> PxeCustomization:
    """Check ``initramfs`` (bytes or a file, read as a stream) is a pristine CoreOS live initramfs and build
    the archive for ``opts`` (with ``encoder`` if given: one set up while the input was read)."""
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
    archive = encoder.encode(result.initrd) if encoder else encode_initrd(result.initrd)
    return PxeCustomization(archive, result, tuple(notices))


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
    with src, InitrdEncoder() as encoder:
        st = os.fstat(src.fileno())
        if output is None:
            out = stdout if stdout is not None else sys.stdout.buffer
            if stat.S_ISREG(st.st_mode):
                plan = _read_and_plan(src, initramfs, opts, encoder)
                src.seek(0)
                shutil.copyfileobj(src, out, CHUNK)
            else:  # a pipe is read once: what is read is written on
                plan = _read_and_plan(_Tee(src, out), initramfs, opts, encoder)
            out.write(plan.archive)
            out.flush()
            return plan
        with atomic_output(output, overwrite=overwrite, parents=False, durable=durable) as f:
            if not stat.S_ISREG(st.st_mode):
                plan = _read_and_plan(_Tee(src, f), initramfs, opts, encoder)
                f.write(plan.archive)
                return plan
            # The verbatim copy goes through copy_file_range (reflink where possible), not through
            # Python, while the input is read: three things at once, the kernel copying, Python reading
            # the archives and the encoder's setup.
            with copying_meanwhile(initramfs, src, f):
                plan = _read_and_plan(src, initramfs, opts, encoder)
            f.seek(0, os.SEEK_END)
            if f.tell() != st.st_size:
                raise CoreosInfraError(f"{initramfs}: changed while it was being read")
            f.write(plan.archive)
    return plan


class _Tee:
    """A stream input that writes on every byte read from it (an input that cannot be read twice)."""

    def __init__(self, src: BinaryIO, out: BinaryIO) -> None:
        self.src, self.out = src, out

    def read(self, n: int = -1) -> bytes:
        data = self.src.read(n)
        self.out.write(data)
        return data


def _read_and_plan(
    src: Readable, initramfs: Path, opts: CustomizeOptions, encoder: InitrdEncoder
) -> PxeCustomization:
    """One streaming pass over the archives (the big zstd one decompressed in pieces, its bodies skipped)
    while ``encoder`` is being set up in its thread."""
    try:
        return plan_customization(src, opts, source=str(initramfs), encoder=encoder)
    except OSError as e:
        raise InputError(f"reading initramfs: {e.strerror}", Location(file=str(initramfs))) from e
