"""What the netboot paths serve to a VM: an HTTP server for bundles, PXELINUX and GRUB TFTP roots.

QEMU's user-mode network (slirp) is the DHCP and TFTP server: ``tftp=<dir>`` and ``bootfile=<name>``
(any DHCP client gets that boot file). The guest reaches the host's 127.0.0.1 as 10.0.2.2, so
:class:`HttpServer` binds to 127.0.0.1 only and hands out ``http://10.0.2.2:<port>/...`` URLs.

- iPXE over HTTP: the bundle directory is published under a prefix of the server's root, the VM's boot
  file is the URL of its ``boot.ipxe``; the bundle's script fetches its files relative to its own URL.
- PXELINUX (BIOS): a TFTP root with Debian's ``pxelinux.0`` and ``ldlinux.c32`` (packages ``pxelinux``
  and ``syslinux-common``) and the bundle's files (symlinks), ``pxelinux.cfg/default`` included.
- GRUB (UEFI): a TFTP root with a GRUB EFI netboot image built by ``grub-mkimage`` with the ``efinet``
  and ``tftp`` modules and the prefix ``(tftp)/``: the image configures the network from the PXE
  firmware's DHCP answer and reads the bundle's ``grub.cfg`` from the TFTP server (Debian's signed
  ``grubnetx64.efi`` from ``grub-efi-amd64-signed`` is used instead when it is installed).
"""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

from coreos_infra.errors import CoreosInfraError
from coreos_infra.run import find_binary, run

GUEST_HOST = "10.0.2.2"  # the host as slirp guests see it
PXELINUX = "pxelinux.0"
PXELINUX_FILES = {
    "pxelinux.0": ("/usr/lib/PXELINUX/pxelinux.0",),
    "ldlinux.c32": ("/usr/lib/syslinux/modules/bios/ldlinux.c32",),
}
GRUB_PLATFORMS = {"x86_64": ("x86_64-efi", "grubx64.efi"), "aarch64": ("arm64-efi", "grubaa64.efi")}
SIGNED_GRUB_NET = {"x86_64": "/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed"}
GRUB_MODULES = (
    "efinet", "tftp", "net", "normal", "linux", "configfile", "echo", "test", "serial", "terminal",
    "efi_gop", "part_gpt", "fat", "search", "gzio", "all_video",
)  # fmt: skip


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class HttpServer:
    """A static HTTP server on 127.0.0.1 for the guests (10.0.2.2:<port>); use as a context manager."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        handler = functools.partial(_Quiet, directory=str(root))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> HttpServer:
        self.thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.server.shutdown()
        self.server.server_close()

    def publish(self, directory: Path, prefix: str) -> str:
        """Serve ``directory`` under ``/<prefix>``; return its URL as the guest sees it."""
        link = self.root / prefix
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(directory.resolve(), target_is_directory=True)
        return f"http://{GUEST_HOST}:{self.port}/{prefix}"


def _first(candidates: tuple[str, ...], what: str, package: str) -> Path:
    for c in candidates:
        if Path(c).is_file():
            return Path(c)
    raise CoreosInfraError(
        f"no {what} found ({', '.join(candidates)})", hint=f"install the Debian package {package}"
    )


def _link_bundle(bundle: Path, root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for item in bundle.iterdir():
        dest = root / item.name
        if not dest.exists():
            dest.symlink_to(item.resolve(), target_is_directory=item.is_dir())


def pxelinux_root(bundle: Path, root: Path) -> Path:
    """A TFTP root for PXELINUX: ``pxelinux.0``, ``ldlinux.c32`` and the bundle (its pxelinux.cfg)."""
    if not (bundle / "pxelinux.cfg" / "default").is_file():
        raise CoreosInfraError(
            f"{bundle}: the bundle has no pxelinux.cfg/default (PXELINUX is BIOS x86_64 only)"
        )
    root.mkdir(parents=True, exist_ok=True)
    for name, candidates in PXELINUX_FILES.items():
        package = "pxelinux" if name == PXELINUX else "syslinux-common"
        shutil.copyfile(_first(candidates, name, package), root / name)
    _link_bundle(bundle, root)
    return root


def grub_image_name(arch: str) -> str:
    return GRUB_PLATFORMS[arch][1]


def build_grub_netboot(out: Path, arch: str) -> Path:
    """A GRUB EFI image that netboots: network from the PXE firmware, ``grub.cfg`` from ``(tftp)/``."""
    platform = GRUB_PLATFORMS[arch][0]
    signed = SIGNED_GRUB_NET.get(arch)
    if signed and Path(signed).is_file():
        shutil.copyfile(signed, out)
        return out
    if not Path(f"/usr/lib/grub/{platform}/efinet.mod").is_file():
        pkg = "grub-efi-amd64-bin" if arch == "x86_64" else "grub-efi-arm64-bin"
        raise CoreosInfraError(f"no GRUB {platform} modules for a netboot image", hint=f"install {pkg}")
    mkimage = find_binary("grub-mkimage", reason="build a GRUB EFI netboot image (Debian grub-common)")
    run([mkimage, "-O", platform, "-o", out, "-p", "(tftp)/", *GRUB_MODULES], capture=True)
    return out


def grub_root(bundle: Path, root: Path, arch: str = "x86_64") -> Path:
    """A TFTP root for GRUB netboot: the GRUB EFI image and the bundle (its ``grub.cfg`` at the top)."""
    if not (bundle / "grub.cfg").is_file():
        raise CoreosInfraError(f"{bundle}: the bundle has no grub.cfg")
    root.mkdir(parents=True, exist_ok=True)
    build_grub_netboot(root / grub_image_name(arch), arch)
    _link_bundle(bundle, root)
    return root
