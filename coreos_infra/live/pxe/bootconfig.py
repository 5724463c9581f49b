"""Boot loader configurations for netbooting a bundle: iPXE, PXELINUX and GRUB.

All three describe the same :class:`BootEntry` (a kernel, its initrds in load order and the kernel
command line), so a bundle boots the same way whichever loader a site runs:

- iPXE (``boot.ipxe``): one script for BIOS (``undionly.kpxe``, QEMU's ``pxe-*.rom``) and UEFI
  (``ipxe.efi``, ``snponly.efi``, QEMU's ``efi-*.rom``). Every initrd is fetched with ``--name`` and
  named again on the command line as ``initrd=<name>``: under UEFI the kernel's EFI stub loads exactly
  the initrds named that way, in that order (without them an FCOS UEFI netboot finds no initramfs);
  under BIOS the argument is ignored. Files are fetched from ``base_url`` when given, otherwise relative
  to the script's own URL (iPXE resolves relative URIs against the script it runs), so an unconfigured
  bundle works from any TFTP or HTTP directory.
- PXELINUX (``pxelinux.cfg/default``): BIOS only; paths relative to ``pxelinux.0``'s directory;
  ``IPAPPEND 2`` adds ``BOOTIF=`` so the live system configures the interface it booted from.
- GRUB (``grub.cfg``) for UEFI netboot with ``grubx64.efi``/``grubaa64.efi``; paths are absolute on the
  TFTP server GRUB was loaded from.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from coreos_infra.errors import InputError, Location

URL_SCHEMES = ("http", "https", "tftp")
_SAFE_NAME = re.compile(r"[A-Za-z0-9._+-]+")
_GRUB_PLAIN = re.compile(r"[A-Za-z0-9_./:=,+@%^~-]+")


@dataclass(frozen=True)
class BootEntry:
    """What to boot. ``kernel`` and ``initrds`` are file names inside the bundle directory."""

    label: str
    kernel: str
    initrds: tuple[str, ...]
    kargs: tuple[str, ...]

    def __post_init__(self) -> None:
        for name in (self.kernel, *self.initrds):
            if not _SAFE_NAME.fullmatch(name):
                raise InputError(f"unsafe boot file name {name!r} (allowed: letters, digits, . _ + -)")
        for karg in self.kargs:
            check_karg(karg)
        if any(c in self.label for c in "\n\r'\"\\{}$"):
            raise InputError(f"boot menu label {self.label!r} must not contain quotes, braces or newlines")


def check_karg(karg: str, location: Location | None = None) -> str:
    """``karg`` if it is one kernel argument that every loader can carry verbatim, else an InputError."""
    if not karg or any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in karg):
        raise InputError(f"kernel argument {karg!r} must be non-empty, without spaces or control characters",
                         location)  # fmt: skip
    if "${" in karg:
        raise InputError(f"kernel argument {karg!r} must not contain '${{' (iPXE would expand it)", location)
    return karg


def check_url(url: str, location: Location | None = None, *, schemes: Sequence[str] = URL_SCHEMES) -> str:
    """``url`` without a trailing slash, if it is an absolute URL with a host and an allowed scheme."""
    check_karg(url, location)
    parts = urlsplit(url)
    if parts.scheme not in schemes or not parts.netloc:
        raise InputError(
            f"{url!r} is not an absolute {'/'.join(schemes)} URL (for example http://10.0.0.1:8080/pxe)",
            location,
        )
    if parts.query or parts.fragment:
        raise InputError(f"{url!r}: a base URL cannot have a query or fragment", location)
    return url.rstrip("/")


def file_url(base_url: str, name: str) -> str:
    return f"{base_url.rstrip('/')}/{name}"


def ipxe_script(entry: BootEntry, base_url: str | None, *, comments: Sequence[str] = ()) -> str:
    """An iPXE script booting ``entry`` under BIOS or UEFI.

    ``base_url`` (http, https or tftp) is where the bundle directory is served; ``None`` fetches the
    files relative to the script's own location.
    """
    prefix = "${base-url}/" if base_url else ""
    lines = ["#!ipxe", *(f"# {c}" for c in comments)]
    if base_url:
        lines.append(f"set base-url {check_url(base_url)}")
    initrd_args = [f"initrd={name}" for name in entry.initrds]
    lines += [
        f"echo Booting {entry.label}",
        f"kernel {prefix}{entry.kernel} {' '.join([*initrd_args, *entry.kargs])} || goto failed",
        *(f"initrd --name {name} {prefix}{name} || goto failed" for name in entry.initrds),
        "boot || goto failed",
        ":failed",
        f"echo Netboot of {entry.label} failed, returning to the firmware",
        "exit 1",
    ]
    return "\n".join(lines) + "\n"


def _tftp_path(tftp_dir: str, name: str, *, absolute: bool) -> str:
    parts = [p for p in tftp_dir.split("/") if p]
    path = "/".join([*parts, name])
    return "/" + path if absolute else path


def check_tftp_dir(tftp_dir: str, location: Location | None = None) -> str:
    """The bundle's directory relative to the TFTP root, normalized ("" is the root itself)."""
    parts = [p for p in tftp_dir.split("/") if p not in ("", ".")]
    if any(p == ".." or not _SAFE_NAME.fullmatch(p) for p in parts):
        raise InputError(
            f"{tftp_dir!r} is not a plain relative directory (letters, digits, . _ + -)", location
        )
    return "/".join(parts)


def pxelinux_config(entry: BootEntry, tftp_dir: str = "", *, comments: Sequence[str] = ()) -> str:
    """``pxelinux.cfg/default`` booting ``entry``; files under ``tftp_dir`` of the TFTP root."""
    tftp_dir = check_tftp_dir(tftp_dir)
    kernel = _tftp_path(tftp_dir, entry.kernel, absolute=False)
    initrds = ",".join(_tftp_path(tftp_dir, n, absolute=False) for n in entry.initrds)
    append = " ".join([f"initrd={initrds}", *entry.kargs]) if entry.initrds else " ".join(entry.kargs)
    lines = [
        *(f"# {c}" for c in comments),
        "DEFAULT coreos",
        "PROMPT 0",
        "TIMEOUT 20",
        "LABEL coreos",
        f"  MENU LABEL {entry.label}",
        f"  KERNEL {kernel}",
        f"  APPEND {append}",
        "  IPAPPEND 2",
    ]
    return "\n".join(lines) + "\n"


def grub_quote(word: str) -> str:
    """``word`` as one GRUB script word."""
    if _GRUB_PLAIN.fullmatch(word):
        return word
    return "'" + word.replace("'", "'\\''") + "'"


def _grub_serial(kargs: Sequence[str]) -> list[str]:
    """GRUB's own menu on the first x86 serial console the kernel uses (``console=ttyS<n>[,<speed>...]``)."""
    for karg in kargs:
        m = re.fullmatch(r"console=ttyS(\d+)(?:,(\d+))?.*", karg)
        if m:
            return [
                f"serial --unit={m.group(1)} --speed={m.group(2) or 115200}",
                "terminal_input console serial",
                "terminal_output console serial",
            ]
    return []


def grub_config(entry: BootEntry, tftp_dir: str = "", *, comments: Sequence[str] = ()) -> str:
    """``grub.cfg`` for UEFI netboot booting ``entry``; files under ``tftp_dir`` of the TFTP root."""
    tftp_dir = check_tftp_dir(tftp_dir)
    kernel = _tftp_path(tftp_dir, entry.kernel, absolute=True)
    initrds = " ".join(_tftp_path(tftp_dir, n, absolute=True) for n in entry.initrds)
    lines = [
        *(f"# {c}" for c in comments),
        "set default=0",
        "set timeout=1",
        *_grub_serial(entry.kargs),
        f"menuentry '{entry.label}' --id coreos {{",
        "    echo 'Loading kernel...'",
        f"    linux {kernel} {' '.join(grub_quote(k) for k in entry.kargs)}".rstrip(),
    ]
    if entry.initrds:
        lines += ["    echo 'Loading initrds...'", f"    initrd {initrds}"]
    lines.append("}")
    return "\n".join(lines) + "\n"
