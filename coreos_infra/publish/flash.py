"""Write a verified image to a USB stick or SD card: decompress while writing, then read back and compare.

Safety first, in this order, before a single byte is written:

- the destination is a regular file (tests, or preparing an image file) or a whole-disk block device;
  a partition is refused ("flash the whole disk");
- the disk that holds ``/`` is refused: the device of ``/`` (and the source of the ``/`` mount in
  ``/proc/mounts``) is resolved through ``/sys/dev/block`` to its disk, following device-mapper slaves;
- a disk that is in use is refused: the disk, any of its partitions or any device stacked on them
  (``holders``: LVM, dm-crypt, RAID) mounted (``/proc/self/mountinfo``, ``/proc/mounts``) or used as swap;
- the image must fit (the uncompressed size of an ``.xz`` comes from its index);
- a person confirms (``confirm`` callback) unless the caller passes ``confirm=None`` (``--yes``);
- the block device is opened with ``O_EXCL``, so the kernel refuses it if anything claimed it meanwhile.

Then the image is streamed (``.xz`` decompressed on the fly; a truncated or corrupt stream, or data after
it, is an error), hashed as written, synced, its cached pages dropped, read back and compared.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import lzma
import os
import re
import stat
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from coreos_infra import gpg
from coreos_infra import xz as xzformat
from coreos_infra.errors import CoreosInfraError, VerificationError
from coreos_infra.log import progress

CHUNK = 4 << 20
SYNC_EVERY = 64 << 20  # block devices: fdatasync this often so the progress bar shows real writes
SYS_BLOCK = Path("/sys/dev/block")
NOT_FLASHABLE = (".qcow2", ".qcow2.xz", ".tar", ".tar.gz", ".tar.xz", ".ign", ".json")


class FlashError(CoreosInfraError):
    """The destination is unsafe or unusable, or writing it failed."""


@dataclass(frozen=True)
class Destination:
    """What we are about to overwrite."""

    path: Path  # as given
    real: Path  # symlinks resolved (/dev/disk/by-id/... → /dev/sdb)
    block: bool  # a block device (else a regular file)
    size: int | None  # bytes (block devices)
    description: str  # for the confirmation prompt


@dataclass(frozen=True)
class FlashResult:
    device: Path
    image: Path
    written: int  # bytes written (the decompressed image)
    sha256: str  # of the bytes written, equal to what was read back


# --- block devices through sysfs --------------------------------------------------------------------


def _devnum(major: int, minor: int) -> str:
    return f"{major}:{minor}"


def _sysdir(devnum: str) -> Path | None:
    """``/sys/devices/.../block/<disk>[/<part>]`` of a device number, or None when it is no block device."""
    link = SYS_BLOCK / devnum
    return link.resolve() if link.exists() else None


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _disk_dir(sysdir: Path) -> Path:
    """The whole disk a (partition's) sysfs directory belongs to."""
    return sysdir.parent if (sysdir / "partition").exists() else sysdir


def _disks_below(sysdir: Path, seen: set[Path] | None = None) -> set[Path]:
    """The whole disks a device lives on: itself, or for device-mapper/md the disks of its ``slaves``."""
    seen = set() if seen is None else seen
    disk = _disk_dir(sysdir)
    if disk in seen:
        return set()
    seen.add(disk)
    slaves = sorted((disk / "slaves").glob("*")) if (disk / "slaves").is_dir() else []
    if not slaves:
        return {disk}
    found: set[Path] = set()
    for s in slaves:
        found |= _disks_below(s.resolve(), seen)
    return found


def _devnums_on(disk: Path) -> dict[str, str]:
    """Device numbers of the disk, its partitions and everything stacked on them → their kernel name."""
    out: dict[str, str] = {}
    todo = [disk, *(p for p in disk.iterdir() if (p / "partition").exists())]
    while todo:
        d = todo.pop()
        num = _read(d / "dev")
        if not num or num in out:
            continue
        out[num] = d.name
        if (d / "holders").is_dir():
            todo.extend(h.resolve() for h in (d / "holders").iterdir())
    return out


def _unescape_mount(field: str) -> str:
    """Octal escapes of /proc/mounts (``\\040`` is a space)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def _rdev(path: str) -> str | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISBLK(st.st_mode):
        return None
    return _devnum(os.major(st.st_rdev), os.minor(st.st_rdev))


def _mounted() -> dict[str, str]:
    """Device number → mount point for every mounted block device (and ``swap`` for swap devices)."""
    found: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            fields = line.split()
            if len(fields) < 10 or " - " not in line:
                continue
            after = line.split(" - ", 1)[1].split()
            found.setdefault(fields[2], _unescape_mount(fields[4]))
            if after and len(after) > 1 and after[1].startswith("/dev/"):
                num = _rdev(_unescape_mount(after[1]))
                if num:
                    found.setdefault(num, _unescape_mount(fields[4]))
    with contextlib.suppress(OSError):
        for line in Path("/proc/mounts").read_text().splitlines():
            fields = line.split()
            if len(fields) >= 2 and fields[0].startswith("/dev/"):
                num = _rdev(_unescape_mount(fields[0]))
                if num:
                    found.setdefault(num, _unescape_mount(fields[1]))
    with contextlib.suppress(OSError):
        for line in Path("/proc/swaps").read_text().splitlines()[1:]:
            fields = line.split()
            if fields and fields[0].startswith("/dev/"):
                num = _rdev(_unescape_mount(fields[0]))
                if num:
                    found.setdefault(num, "swap")
    return found


def root_disks() -> set[Path]:
    """The sysfs directories of the whole disk(s) holding ``/``."""
    nums = set()
    st = os.stat("/")
    nums.add(_devnum(os.major(st.st_dev), os.minor(st.st_dev)))
    with contextlib.suppress(OSError):
        for line in Path("/proc/mounts").read_text().splitlines():
            fields = line.split()
            if len(fields) >= 2 and fields[1] == "/" and fields[0].startswith("/dev/"):
                num = _rdev(_unescape_mount(fields[0]))
                if num:
                    nums.add(num)
    disks: set[Path] = set()
    for num in nums:
        sysdir = _sysdir(num)
        if sysdir is not None:
            disks |= _disks_below(sysdir)
    return disks


def _describe(disk: Path, size: int) -> str:
    model = " ".join(x for x in (_read(disk / "device" / "vendor"), _read(disk / "device" / "model")) if x)
    removable = _read(disk / "removable") == "1"
    backing = _read(disk / "loop" / "backing_file")
    parts = [f"{size / 1e9:.1f} GB"]
    if model:
        parts.append(model)
    if backing:
        parts.append(f"loop device of {backing}")
    parts.append("removable" if removable else "NOT removable")
    return ", ".join(parts)


def inspect_destination(device: Path) -> Destination:
    """Check ``device`` is safe to overwrite (see the module docstring) and describe it."""
    device = Path(device)
    real = Path(os.path.realpath(device))
    try:
        st = os.stat(real)
    except FileNotFoundError:
        if device.parent.is_dir() and not str(real).startswith("/dev/"):
            return Destination(device, real, False, None, "a new regular file")
        raise FlashError(f"{device}: no such device") from None
    if stat.S_ISREG(st.st_mode):
        return Destination(device, real, False, None, f"a regular file of {st.st_size} bytes")
    if not stat.S_ISBLK(st.st_mode):
        raise FlashError(f"{device}: not a block device or a regular file")
    num = _devnum(os.major(st.st_rdev), os.minor(st.st_rdev))
    sysdir = _sysdir(num)
    if sysdir is None:
        raise FlashError(f"{device}: block device {num} is not in /sys/dev/block; cannot check it is unused")
    if (sysdir / "partition").exists():
        raise FlashError(
            f"{device} is a partition of /dev/{sysdir.parent.name}",
            hint=f"flash the whole disk (/dev/{sysdir.parent.name}), not one of its partitions",
        )
    if sysdir in root_disks():
        raise FlashError(f"{device} (/dev/{sysdir.name}) is the disk holding the root filesystem /")
    mounted = _mounted()
    for n, name in sorted(_devnums_on(sysdir).items()):
        if n in mounted:
            where = mounted[n]
            what = "used as swap" if where == "swap" else f"mounted on {where}"
            raise FlashError(
                f"{device}: /dev/{name} is {what}",
                hint=f"unmount it first (umount /dev/{name})" if where != "swap" else "swapoff it first",
            )
    if _read(sysdir / "ro") == "1":
        raise FlashError(f"{device} is read-only (write-protect switch?)")
    size = int(_read(sysdir / "size") or 0) * 512
    return Destination(device, real, True, size, _describe(sysdir, size))


# --- images ------------------------------------------------------------------------------------------


def xz_uncompressed_size(path: Path) -> int:
    """Total uncompressed size of an .xz file (every stream), from the stream indexes at its end."""
    total = 0
    with open(path, "rb") as f:
        end = os.fstat(f.fileno()).st_size
        while end > 0:
            f.seek(max(0, end - 4))
            while end >= 4 and f.read(4) == b"\0\0\0\0":
                end -= 4
                f.seek(max(0, end - 4))
            if end < 24:
                raise VerificationError(f"{path}: not a complete xz file")
            f.seek(end - 12)
            footer = f.read(12)
            if footer[10:] != xzformat.FOOTER_MAGIC:
                raise VerificationError(f"{path}: not a complete xz stream (truncated or trailing data)")
            backward = (struct.unpack("<I", footer[4:8])[0] + 1) * 4
            if backward + 24 > end:
                raise VerificationError(f"{path}: truncated xz file")
            f.seek(end - 12 - backward)
            try:
                info = xzformat.parse_stream_tail(f.read(backward + 12))
            except (ValueError, IndexError) as e:
                raise VerificationError(f"{path}: corrupt xz stream: {e}") from None
            total += sum(b.uncompressed_size for b in info.blocks)
            end -= 12 + sum((b.unpadded_size + 3) // 4 * 4 for b in info.blocks) + info.index_size + 12
            if end < 0:
                raise VerificationError(f"{path}: truncated xz file")
    return total


def image_size(image: Path) -> int:
    """The number of bytes ``image`` puts on the device."""
    if image.name.endswith(".xz"):
        return xz_uncompressed_size(image)
    return image.stat().st_size


def check_flashable(name: str) -> None:
    if any(name.endswith(s) for s in NOT_FLASHABLE):
        raise FlashError(
            f"{name}: not a disk image that can be written to a device",
            hint="flash a .raw.xz, .raw, .img or .iso image (qcow2 is for VMs; pxe builds are netbooted)",
        )


def _pieces(image: Path) -> Iterator[bytes]:
    """The bytes to write: the file, or its decompressed .xz streams (all of them, nothing after)."""
    with open(image, "rb") as f:
        if not image.name.endswith(".xz"):
            while chunk := f.read(CHUNK):
                yield chunk
            return
        decoder = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
        try:
            while chunk := f.read(CHUNK):
                while chunk:
                    if decoder.eof:
                        chunk = chunk.lstrip(b"\0")  # stream padding, then maybe another stream
                        if not chunk:
                            break
                        decoder = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
                    yield decoder.decompress(chunk, max_length=CHUNK)
                    while not decoder.eof and not decoder.needs_input:
                        yield decoder.decompress(b"", max_length=CHUNK)
                    chunk = decoder.unused_data if decoder.eof else b""
        except lzma.LZMAError as e:
            raise VerificationError(f"{image}: corrupt xz data or trailing garbage: {e}") from None
        if not decoder.eof:
            raise VerificationError(f"{image}: truncated xz stream")


def verify_local_image(image: Path, *, keyring: Path | None, allow_unsigned: bool) -> bool:
    """Check a local image against its detached ``<image>.sig`` with the trusted ``keyring``.

    Returns whether a signature was verified; without a ``.sig`` (or a keyring) only ``allow_unsigned``
    lets it through. A bad signature is always an error.
    """
    from coreos_infra.publish.download import trusted_keyring

    sig = image.with_name(image.name + ".sig")
    if not image.is_file():
        raise FlashError(f"{image}: no such image file")
    if sig.is_file() and keyring is not None:
        with trusted_keyring(keyring) as trusted:
            assert trusted is not None
            gpg.verify_detached(image, sig.read_bytes(), trusted, what=image.name)
        return True
    if not allow_unsigned:
        why = f"no trusted keyring to check {sig.name}" if sig.is_file() else f"no {sig.name} next to it"
        raise VerificationError(
            f"{image}: refusing an unverified image ({why})",
            hint="pass --keyring with the site's public key, or --allow-unsigned to flash it anyway",
        )
    return False


# --- writing -----------------------------------------------------------------------------------------


def _open_destination(dest: Destination) -> int:
    flags = os.O_WRONLY | getattr(os, "O_CLOEXEC", 0)
    if dest.block:
        flags |= os.O_EXCL  # block devices: EBUSY if mounted or claimed by the kernel (dm, md, ...)
    else:
        flags |= os.O_CREAT
    try:
        return os.open(dest.real, flags, 0o644)
    except OSError as e:
        if e.errno == errno.EBUSY:
            raise FlashError(f"{dest.path}: device is busy (mounted or used by another driver)") from None
        raise FlashError(f"{dest.path}: cannot open for writing: {e.strerror}") from None


def _read_back(dest: Destination, length: int, description: str, show_progress: bool) -> str:
    hasher = hashlib.sha256()
    fd = os.open(dest.real, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        left = length
        with progress(length if show_progress else None, f"verify {description}") as bar:
            while left:
                chunk = os.read(fd, min(CHUNK, left))
                if not chunk:
                    raise FlashError(f"{dest.path}: read back only {length - left} of {length} bytes")
                hasher.update(chunk)
                left -= len(chunk)
                bar.update(len(chunk))
    finally:
        os.close(fd)
    return hasher.hexdigest()


def _ask(confirm: Callable[[str], bool], image: Path, size: int, dest: Destination) -> None:
    question = (
        f"Write {image.name} ({size} bytes) to {dest.path}"
        + (f" ({dest.real})" if dest.real != dest.path else "")
        + f": {dest.description}?\nEVERYTHING ON IT WILL BE LOST."
    )
    if not confirm(question):
        raise FlashError("not confirmed; nothing was written")


def _write_image(fd: int, image: Path, size: int, dest: Destination, show_progress: bool) -> tuple[int, str]:
    """Write the decompressed ``image`` to ``fd`` (synced as it goes on block devices); (bytes, SHA-256)."""
    hasher = hashlib.sha256()
    written = 0
    if not dest.block:
        os.ftruncate(fd, 0)
    since_sync = 0
    with progress(size if show_progress else None, f"write {image.name}") as bar:
        for piece in _pieces(image):
            if not piece:
                continue
            if written + len(piece) > size:
                raise VerificationError(f"{image}: decompresses to more than the {size} bytes announced")
            view = memoryview(piece)
            while view:
                try:
                    n = os.write(fd, view)
                except OSError as e:
                    raise FlashError(f"{dest.path}: write failed at byte {written}: {e.strerror}") from None
                view = view[n:]
                written += n
                since_sync += n
                bar.update(n)
            hasher.update(piece)
            if dest.block and since_sync >= SYNC_EVERY:
                os.fdatasync(fd)
                since_sync = 0
    return written, hasher.hexdigest()


def flash_image(
    image: Path,
    device: Path,
    *,
    confirm: Callable[[str], bool] | None,
    expected_sha256: str | None = None,
    show_progress: bool = True,
) -> FlashResult:
    """Write the (already verified) ``image`` to ``device`` and read it back; see the module docstring.

    ``confirm`` gets the question to ask and returns whether the person agreed; ``None`` means the caller
    already has consent (``--yes``). ``expected_sha256`` is the SHA-256 of the decompressed image where the
    build recorded it; the written bytes must match it.
    """
    image = Path(image)
    check_flashable(image.name)
    if not image.is_file():
        raise FlashError(f"{image}: no such image file")
    dest = inspect_destination(Path(device))
    if dest.real == image.resolve():
        raise FlashError(f"{device}: the destination is the image itself")
    size = image_size(image)
    if dest.size is not None and size > dest.size:
        raise FlashError(f"{image.name} needs {size} bytes, {device} has only {dest.size}")
    if confirm is not None:
        _ask(confirm, image, size, dest)
    fd = _open_destination(dest)
    try:
        written, digest = _write_image(fd, image, size, dest, show_progress)
        if written != size:
            raise VerificationError(f"{image}: gave {written} bytes, its index announces {size}")
        try:
            os.fsync(fd)
        except OSError as e:
            raise FlashError(f"{dest.path}: sync failed: {e.strerror}") from None
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    if expected_sha256 is not None and digest != expected_sha256.lower():
        raise VerificationError(
            f"{image.name}: the decompressed image hashes to {digest}, the build recorded {expected_sha256}"
        )
    back = _read_back(dest, written, image.name, show_progress)
    if back != digest:
        raise VerificationError(
            f"{dest.path}: read-back mismatch: wrote {written} bytes hashing to {digest}, "
            f"read back {back} (bad medium?)"
        )
    return FlashResult(Path(device), image, written, digest)
