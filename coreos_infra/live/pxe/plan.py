"""What a PXE bundle contains and which kernel arguments boot it, from the recipe's target options.

Pure: :meth:`PxeOptions.parse` validates the options (every error names its key), :func:`plan_bundle`
decides the files, the initrd order and the kernel command line. :mod:`coreos_infra.targets.pxe` does
the I/O.

Modes:

- ``live``: the machine runs FCOS from RAM. Ignition comes as ``ignition.img`` (``pxe ignition wrap``
  format, listed after the initramfs) or by URL (``ignition.config.url=<base_url>/config.ign``).
- ``install``: the live system installs FCOS to ``dest_device`` unattended, then reboots into it. With
  ``ignition_delivery: initrd`` the initramfs is customized as ``pxe customize --dest-device D
  --dest-ignition config.ign`` does; with ``url`` it gets ``coreos.inst.install_dev=`` and
  ``coreos.inst.ignition_url=<base_url>/config.ign`` (plus a customization archive only when
  ``dest_console``/``dest_karg_*`` ask for installer settings).

The rootfs is fetched by the live system from ``coreos.live.rootfs_url=<base_url>/rootfs.img``
(``rootfs: url``, the default when ``base_url`` is set) or loaded by the boot loader as an extra
initrd (``rootfs: initrd``; needs ~1 GiB more RAM but no HTTP server).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

from coreos_infra.errors import InputError, Location
from coreos_infra.live.pxe.bootconfig import BootEntry, check_karg, check_tftp_dir, check_url, file_url
from coreos_infra.live.pxe.dhcp import BIOS_LOADERS, UEFI_X64_LOADERS, DhcpPlan

KERNEL = "vmlinuz"
INITRAMFS = "initramfs.img"
ROOTFS = "rootfs.img"
IGNITION_INITRD = "ignition.img"
IGNITION_CONFIG = "config.ign"
IPXE_SCRIPT = "boot.ipxe"
PXELINUX_CONFIG = "pxelinux.cfg/default"
GRUB_CONFIG = "grub.cfg"
DNSMASQ_SNIPPET = "dnsmasq.conf"
KEA_SNIPPET = "kea-dhcp4.json"
README = "README.txt"

LIVE_KARGS = ("ignition.firstboot", "ignition.platform.id=metal")

OPTION_HELP = {
    "mode": "live (run from RAM) or install (install to dest_device unattended); default: install if "
    "dest_device is given, else live",
    "base_url": "http(s) or tftp URL where the bundle directory is served",
    "rootfs": "url (coreos.live.rootfs_url) or initrd (loaded by the boot loader)",
    "ignition_delivery": "initrd (wrapped/customized initrd) or url (fetched from base_url)",
    "dest_device": "install mode: the disk to install to, e.g. /dev/sda",
    "dest_console": "install mode: console(s) for the installed system, e.g. ttyS0,115200n8",
    "dest_karg_append": "install mode: kernel arguments to add on the installed system",
    "dest_karg_delete": "install mode: kernel arguments to remove on the installed system",
    "image_url": "install mode: metal image URL (coreos.inst.image_url), for offline installs",
    "skip_reboot": "install mode: stay in the live system after installing (coreos.inst.skip_reboot)",
    "console": "console(s) for the live system's kernel, e.g. [tty0, ttyS0,115200n8]",
    "kernel_args": "extra kernel arguments for the live system",
    "tftp_dir": "directory of the bundle inside the TFTP root (PXELINUX and GRUB paths)",
    "next_server": "IPv4 address of the TFTP server for the DHCP snippets",
    "bios_loader": "ipxe (undionly.kpxe) or pxelinux (pxelinux.0) for BIOS clients",
    "uefi_loader": "ipxe (ipxe.efi), grub (grubx64.efi/grubaa64.efi) or shim (Secure Boot: shimx64.efi/"
    "shimaa64.efi + grub) for UEFI clients",
    "tarball": "also write <name>-pxe.tar (default true)",
    "label": "boot menu title",
}


def _loc(key: str, where: str) -> Location:
    return Location(path=f"{where}.{key}")


def _str(options: Mapping[str, Any], key: str, where: str) -> str | None:
    v = options.get(key)
    if v is None:
        return None
    if not isinstance(v, str) or not v:
        raise InputError(f"expected a non-empty string, got {v!r}", _loc(key, where))
    return v


def _choice(options: Mapping[str, Any], key: str, where: str, choices: Sequence[str], default: str) -> str:
    v = options.get(key, default)
    if v not in choices:
        raise InputError(f"expected one of: {', '.join(choices)}; got {v!r}", _loc(key, where))
    return str(v)


def _list(options: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    v = options.get(key, ())
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list | tuple) or not all(isinstance(x, str) and x for x in v):
        raise InputError(f"expected a string or a list of strings, got {v!r}", _loc(key, where))
    return tuple(v)


def _bool(options: Mapping[str, Any], key: str, where: str, default: bool) -> bool:
    v = options.get(key, default)
    if not isinstance(v, bool):
        raise InputError(f"expected true or false, got {v!r}", _loc(key, where))
    return v


@dataclass(frozen=True)
class PxeOptions:
    mode: str = "live"
    base_url: str | None = None
    rootfs: str = "initrd"
    ignition_delivery: str = "initrd"
    dest_device: str | None = None
    dest_console: tuple[str, ...] = ()
    dest_karg_append: tuple[str, ...] = ()
    dest_karg_delete: tuple[str, ...] = ()
    image_url: str | None = None
    skip_reboot: bool = False
    console: tuple[str, ...] = ()
    kernel_args: tuple[str, ...] = ()
    tftp_dir: str = ""
    next_server: str | None = None
    bios_loader: str = "ipxe"
    uefi_loader: str = "ipxe"
    tarball: bool = True
    label: str = "Fedora CoreOS"

    @classmethod
    def parse(
        cls, options: Mapping[str, Any], *, where: str = "options", file: str | None = None
    ) -> PxeOptions:
        """Validated options; ``where`` prefixes the key in errors (e.g. ``targets.pxe.options``), ``file``
        names the recipe."""
        try:
            return cls._parse(options, where)
        except InputError as e:
            if file is None or e.location.file is not None:
                raise
            raise InputError(e.reason, replace(e.location, file=file), hint=e.hint) from None

    @classmethod
    def _parse(cls, options: Mapping[str, Any], where: str) -> PxeOptions:
        unknown = sorted(set(options) - set(OPTION_HELP))
        if unknown:
            raise InputError(
                f"unknown PXE option; expected one of: {', '.join(OPTION_HELP)}", _loc(unknown[0], where)
            )
        # The one default: a dest_device without a mode means an install, no dest_device a live boot.
        mode = _choice(
            options, "mode", where, ("live", "install"), "install" if "dest_device" in options else "live"
        )
        base_url = _str(options, "base_url", where)
        if base_url is not None:
            base_url = check_url(base_url, _loc("base_url", where))
        rootfs = _choice(options, "rootfs", where, ("url", "initrd"), "url" if base_url else "initrd")
        delivery = _choice(options, "ignition_delivery", where, ("initrd", "url"), "initrd")
        for key, needed in (("rootfs", rootfs == "url"), ("ignition_delivery", delivery == "url")):
            if needed and base_url is None:
                raise InputError(
                    f"{options.get(key, 'url')!r} needs base_url (where the bundle is served)",
                    _loc(key, where),
                )
        dest_device = _dest_device(options, mode, where)
        image_url = _str(options, "image_url", where)
        if image_url is not None:
            check_url(image_url, _loc("image_url", where), schemes=("http", "https"))
        console = tuple(c.removeprefix("console=") for c in _list(options, "console", where))
        for key, values in (("console", console), ("kernel_args", _list(options, "kernel_args", where)),
                            ("dest_console", _list(options, "dest_console", where)),
                            ("dest_karg_append", _list(options, "dest_karg_append", where)),
                            ("dest_karg_delete", _list(options, "dest_karg_delete", where))):  # fmt: skip
            for v in values:
                check_karg(v, _loc(key, where))
        next_server = _str(options, "next_server", where)
        if next_server is None and base_url is not None:
            next_server = _ipv4_host(base_url)
        label = _str(options, "label", where) or cls.label
        opts = cls(
            mode=mode,
            base_url=base_url,
            rootfs=rootfs,
            ignition_delivery=delivery,
            dest_device=dest_device,
            dest_console=_list(options, "dest_console", where),
            dest_karg_append=_list(options, "dest_karg_append", where),
            dest_karg_delete=_list(options, "dest_karg_delete", where),
            image_url=image_url,
            skip_reboot=_bool(options, "skip_reboot", where, False),
            console=console,
            kernel_args=_list(options, "kernel_args", where),
            tftp_dir=check_tftp_dir(_str(options, "tftp_dir", where) or "", _loc("tftp_dir", where)),
            next_server=next_server,
            bios_loader=_choice(options, "bios_loader", where, tuple(BIOS_LOADERS), "ipxe"),
            uefi_loader=_choice(options, "uefi_loader", where, tuple(UEFI_X64_LOADERS), "ipxe"),
            tarball=_bool(options, "tarball", where, True),
            label=label,
        )
        # Validate the pieces that only the generators check, now, with the key named.
        try:
            BootEntry(label, KERNEL, (), ())
        except InputError as e:
            raise InputError(e.reason, _loc("label", where)) from None
        try:
            DhcpPlan("x", next_server, "boot.ipxe")
        except InputError as e:
            raise InputError(e.reason, _loc("next_server", where)) from None
        return opts


_INSTALL_ONLY = ("dest_device", "dest_console", "dest_karg_append", "dest_karg_delete", "image_url",
                 "skip_reboot")  # fmt: skip


def _dest_device(options: Mapping[str, Any], mode: str, where: str) -> str | None:
    """``dest_device``: required in install mode, refused (like every install-only key) in live mode."""
    dest_device = _str(options, "dest_device", where)
    if mode == "live":
        for key in _INSTALL_ONLY:
            if key in options:
                raise InputError("only valid with mode: install", _loc(key, where))
    elif dest_device is None:
        raise InputError(
            "mode: install needs dest_device (the disk to install to)", _loc("dest_device", where)
        )
    if dest_device is not None:
        check_karg(dest_device, _loc("dest_device", where))
        if not dest_device.startswith("/dev/"):
            raise InputError(f"{dest_device!r} is not a device path (/dev/...)", _loc("dest_device", where))
    return dest_device


def _ipv4_host(url: str) -> str | None:
    """The host of ``url`` when it is an IPv4 address (the default TFTP next-server)."""
    try:
        return str(ipaddress.IPv4Address(urlsplit(url).hostname or ""))
    except ValueError:
        return None


@dataclass(frozen=True)
class BundlePlan:
    """The decisions: which files the bundle holds and how the loaders boot them."""

    entry: BootEntry
    ignition_file: str | None  # IGNITION_INITRD or IGNITION_CONFIG or None (in the customized initramfs)
    customize: bool  # append a pxe-customize archive to the initramfs
    customize_dest_ignition: bool  # ... carrying the config as --dest-ignition
    customize_dest_device: bool  # ... carrying --dest-device
    dhcp: DhcpPlan

    @property
    def pxelinux(self) -> bool:
        """PXELINUX is a BIOS (x86) loader."""
        return self.dhcp.arch == "x86_64"


def plan_bundle(opts: PxeOptions, *, name: str, arch: str = "x86_64") -> BundlePlan:
    install = opts.mode == "install"
    by_url = opts.ignition_delivery == "url"
    wants_installer_settings = bool(opts.dest_console or opts.dest_karg_append or opts.dest_karg_delete)
    customize = install and (not by_url or wants_installer_settings)
    initrds = [INITRAMFS]
    if opts.rootfs == "initrd":
        initrds.append(ROOTFS)
    kargs: list[str] = []
    ignition_file: str | None = None
    if not install or customize:
        # The live system runs Ignition: the live config, or the customize config that starts the installer.
        kargs += LIVE_KARGS
    if opts.rootfs == "url":
        assert opts.base_url
        kargs.append(f"coreos.live.rootfs_url={file_url(opts.base_url, ROOTFS)}")
    if not install:
        if by_url:
            assert opts.base_url
            ignition_file = IGNITION_CONFIG
            kargs.append(f"ignition.config.url={file_url(opts.base_url, IGNITION_CONFIG)}")
        else:
            ignition_file = IGNITION_INITRD
            initrds.append(IGNITION_INITRD)
    else:
        if not customize:
            kargs.append(f"coreos.inst.install_dev={opts.dest_device}")
        if by_url:
            assert opts.base_url
            ignition_file = IGNITION_CONFIG
            kargs.append(f"coreos.inst.ignition_url={file_url(opts.base_url, IGNITION_CONFIG)}")
        if opts.image_url:
            kargs.append(f"coreos.inst.image_url={opts.image_url}")
        if opts.skip_reboot:
            kargs.append("coreos.inst.skip_reboot")
    kargs += [f"console={c}" for c in opts.console]
    kargs += opts.kernel_args
    if opts.base_url:
        script = file_url(opts.base_url, "boot.ipxe")
    else:
        script = f"{opts.tftp_dir}/{IPXE_SCRIPT}" if opts.tftp_dir else IPXE_SCRIPT
    dhcp = DhcpPlan(name, opts.next_server, script, opts.bios_loader, opts.uefi_loader, opts.tftp_dir, arch)
    return BundlePlan(
        entry=BootEntry(opts.label, KERNEL, tuple(initrds), tuple(kargs)),
        ignition_file=ignition_file,
        customize=customize,
        customize_dest_ignition=customize and not by_url,
        customize_dest_device=customize,
        dhcp=dhcp,
    )
