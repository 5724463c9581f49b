"""``pxe ignition wrap|unwrap`` and ``pxe network wrap|unwrap``.

A wrapped initrd is coreos-installer's exact archive (:func:`coreos_infra.cpio.initrd_to_bytes_one_block`:
newc cpio, one xz block, preset 9, CRC32): ``config.ign`` at its root, or NetworkManager keyfiles under
``etc/coreos-firstboot-network/``. It is listed after the FCOS initramfs (and rootfs) so the kernel
unpacks it last. Unwrapping reads any concatenation of uncompressed, gzip, xz or zstd archives — a
wrapped initrd, a customized initramfs, or the two concatenated — and returns the last copy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from coreos_infra.cpio import CpioError, Readable, initrd_to_bytes_one_block, read_initrd
from coreos_infra.errors import CoreosInfraError, InputError, Location
from coreos_infra.fsutil import write_atomic

IGNITION_PATH = "config.ign"
NETWORK_DIR = "etc/coreos-firstboot-network"
NETWORK_GLOB = f"{NETWORK_DIR}/*"
LIVE_STAMP_PATH = "etc/coreos-live-initramfs"
FEATURES_PATH = "etc/coreos/features.json"


class InitrdContentError(CoreosInfraError):
    """The initrd does not hold what was asked for."""


def read_members(data: bytes | Readable, patterns: Iterable[str], *, source: str) -> dict[str, bytes]:
    """Regular files of the (concatenated) initrd ``data`` (bytes or a file) matching any of ``patterns``;
    last copy wins.

    ``source`` names the input in errors (a path or ``<stdin>``).
    """
    try:
        return read_initrd(data, list(patterns))
    except CpioError as e:
        raise InputError(str(e), Location(file=source)) from e


def wrap_ignition(config: bytes) -> bytes:
    """An initrd holding ``config`` (verbatim) as ``config.ign``."""
    return initrd_to_bytes_one_block({IGNITION_PATH: config})


def unwrap_ignition(data: bytes, *, source: str = "<stdin>") -> bytes:
    """The last ``config.ign`` in the initrd ``data``."""
    found = read_members(data, [IGNITION_PATH], source=source)
    if IGNITION_PATH not in found:
        raise InitrdContentError(f"{source}: couldn't find Ignition config in archive")
    return found[IGNITION_PATH]


def keyfile_members(keyfiles: Iterable[tuple[str, bytes]]) -> dict[str, bytes]:
    """Initrd members for NetworkManager keyfiles given as (file name or path, content).

    Only the base name is kept; two inputs with the same base name are an error.
    """
    members: dict[str, bytes] = {}
    for name, content in keyfiles:
        base = Path(name).name
        if not base or base in (".", ".."):
            raise InputError("missing filename", Location(file=name))
        path = f"{NETWORK_DIR}/{base}"
        if path in members:
            raise InputError(f"multiple input files named '{base}'", Location(file=name))
        members[path] = content
    return members


def read_keyfiles(paths: Iterable[Path]) -> list[tuple[str, bytes]]:
    """(path, content) for each keyfile, with a clear error for unreadable ones."""
    out = []
    for p in paths:
        try:
            out.append((str(p), Path(p).read_bytes()))
        except OSError as e:
            raise InputError(f"reading keyfile: {e.strerror}", Location(file=str(p))) from e
    return out


def wrap_network(keyfiles: Iterable[tuple[str, bytes]]) -> bytes:
    """An initrd holding the keyfiles under ``etc/coreos-firstboot-network/``."""
    members = keyfile_members(keyfiles)
    if not members:
        raise InputError("at least one NetworkManager keyfile is required")
    return initrd_to_bytes_one_block(members)


def unwrap_network(data: bytes, *, source: str = "<stdin>") -> dict[str, bytes]:
    """Keyfile base name -> content, sorted by name, from the initrd ``data``."""
    found = read_members(data, [NETWORK_GLOB], source=source)
    if not found:
        raise InitrdContentError(f"{source}: No embedded network settings.")
    return {Path(k).name: v for k, v in sorted(found.items())}


def format_network(keyfiles: Mapping[str, bytes]) -> bytes:
    """The stdout form of ``pxe network unwrap``: a header line per file, a blank line between files."""
    out = bytearray()
    for i, (name, content) in enumerate(keyfiles.items()):
        if i:
            out += b"\n"
        out += f"########## {name} ##########\n".encode() + content
    return bytes(out)


def extract_network(keyfiles: Mapping[str, bytes], directory: Path) -> list[Path]:
    """Write each keyfile into ``directory`` (created if needed), never overwriting; return the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, content in keyfiles.items():
        path = directory / name
        # Keyfiles can hold Wi-Fi or 802.1X secrets: owner-only, like NetworkManager's own.
        write_atomic(path, content, mode=0o600, overwrite=False)
        written.append(path)
    return written
