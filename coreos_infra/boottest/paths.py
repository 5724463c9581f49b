"""Boot paths: the (target x firmware x scenario) combinations the project claims to boot.

A :class:`BootPath` is named ``<target>/<bios|uefi>/<scenario>`` (``usb/uefi/usb-disk``,
``pxe/bios/pxelinux``, ``metal/uefi/4kn``); each target kind declares its paths in its module, next to
its boot profile (``boot_paths`` of :class:`coreos_infra.targets.base.Target`). A path says which recipe
builds the artifact (``recipe``, default: the target itself, e.g. ``metal4k`` for ``metal/uefi/4kn``),
which medium the VM boots it from, and the scenario, which selects the runner
(:data:`coreos_infra.boottest.matrix.RUNNERS`).

Media (:func:`path_vm` builds the VM):

============= ===================================================================================
``cdrom``     the ISO as a CD-ROM (AHCI on x86_64)
``usb-disk``  the (hybrid) ISO as a USB stick: ``usb-storage`` on a ``qemu-xhci`` controller
``disk``      the disk image on virtio-blk (decompressed first; ``sector_size`` 4096 for 4Kn)
``ipxe-tftp`` QEMU's iPXE ROM fetching the bundle's ``boot.ipxe`` over slirp TFTP
``ipxe-http`` the same script and files over HTTP from 127.0.0.1 (10.0.2.2 in the guest)
``pxelinux``  Debian's ``pxelinux.0`` (BIOS) over TFTP, reading the bundle's ``pxelinux.cfg/default``
``grub``      a GRUB EFI netboot image (``grub-mkimage``, efinet + tftp) reading the bundle's ``grub.cfg``
============= ===================================================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from coreos_infra.errors import CoreosInfraError

if TYPE_CHECKING:
    from coreos_infra import qemu
    from coreos_infra.boottest.netboot import HttpServer
    from coreos_infra.targets.base import Target

MEDIA = ("cdrom", "usb-disk", "disk", "ipxe-tftp", "ipxe-http", "pxelinux", "grub")
FIRMWARE = ("bios", "uefi")


@dataclass(frozen=True)
class BootPath:
    """One way of booting one target's artifact."""

    target: str  # the first part of the name (a recipe name, e.g. usb, pxe, metal)
    firmware: str  # bios | uefi (aarch64: uefi = AAVMF)
    scenario: str  # cdrom, usb-disk, install, second-boot, ipxe-http, 4kn, services, ...
    medium: str  # see MEDIA
    recipe: str = ""  # the recipe that builds the artifact (default: target)
    sector_size: int = 512  # the disk's logical sector size (4096: 4Kn)

    def __post_init__(self) -> None:
        if self.firmware not in FIRMWARE:
            raise CoreosInfraError(f"boot path {self.name}: firmware must be bios or uefi")
        if self.medium not in MEDIA:
            raise CoreosInfraError(
                f"boot path {self.name}: unknown medium {self.medium!r} ({', '.join(MEDIA)})"
            )
        if self.sector_size not in (512, 4096):
            raise CoreosInfraError(f"boot path {self.name}: sector size must be 512 or 4096")

    @property
    def name(self) -> str:
        return f"{self.target}/{self.firmware}/{self.scenario}"

    @property
    def build_recipe(self) -> str:
        return self.recipe or self.target

    @property
    def needs_http(self) -> bool:
        return self.medium == "ipxe-http"


def live_media_paths(target: str, *, install: bool) -> tuple[BootPath, ...]:
    """An ISO target's paths: CD-ROM and USB stick under both firmware kinds (+ install, second boot)."""
    paths = [BootPath(target, fw, medium, medium) for medium in ("cdrom", "usb-disk") for fw in FIRMWARE]
    if install:
        paths += [BootPath(target, fw, "install", "cdrom") for fw in FIRMWARE]
        paths.append(BootPath(target, "uefi", "second-boot", "cdrom"))
    return tuple(paths)


def select(paths: tuple[BootPath, ...], patterns: tuple[str, ...]) -> tuple[BootPath, ...]:
    """The paths whose name matches one of the shell-style ``patterns`` (all when none are given)."""
    from fnmatch import fnmatchcase

    if not patterns:
        return paths
    chosen = tuple(p for p in paths if any(fnmatchcase(p.name, pat) for pat in patterns))
    if not chosen:
        raise CoreosInfraError(
            f"no boot path matches {', '.join(patterns)}", hint=f"paths: {', '.join(p.name for p in paths)}"
        )
    return chosen


def path_vm(
    path: BootPath,
    spec: Target,
    artifact: Path,
    machine: qemu.Machine,
    workdir: Path,
    http: HttpServer | None = None,
) -> qemu.VmConfig:
    """The VM that boots ``artifact`` (built by ``spec``'s kind) the way ``path`` says."""
    from coreos_infra import qemu
    from coreos_infra.boottest import netboot

    if path.medium == "cdrom":
        return qemu.VmConfig(machine, cdrom=artifact)
    if path.medium == "usb-disk":
        return qemu.VmConfig(machine, usb_disks=(artifact,))
    if path.medium == "disk":
        vm = spec.boot_vm(artifact, machine, workdir)
        if vm.disk_sector_size != path.sector_size:
            raise CoreosInfraError(
                f"boot path {path.name}: {artifact.name} is a {vm.disk_sector_size}-byte-sector image, "
                f"the path boots {path.sector_size}-byte sectors (recipe {path.build_recipe})"
            )
        return vm
    from coreos_infra.targets.pxe import bundle_dir

    bundle = bundle_dir(artifact)
    if path.medium == "ipxe-tftp":
        return qemu.VmConfig(machine, net=True, pxe=True, tftp_dir=bundle, bootfile="boot.ipxe")
    if path.medium == "ipxe-http":
        if http is None:
            raise CoreosInfraError(f"boot path {path.name} needs the netboot HTTP server")
        url = http.publish(bundle, f"{path.target}-{path.firmware}")
        return qemu.VmConfig(machine, net=True, pxe=True, bootfile=f"{url}/boot.ipxe")
    if path.medium == "pxelinux":
        root = netboot.pxelinux_root(bundle, workdir / "tftp")
        return qemu.VmConfig(machine, net=True, pxe=True, tftp_dir=root, bootfile=netboot.PXELINUX)
    root = netboot.grub_root(bundle, workdir / "tftp", machine.arch)
    return qemu.VmConfig(
        machine, net=True, pxe=True, tftp_dir=root, bootfile=netboot.grub_image_name(machine.arch)
    )
