"""Ready-to-paste DHCP server snippets for a PXE bundle: dnsmasq and ISC Kea (DHCPv4).

Firmware PXE clients announce their architecture in DHCP option 93 (client-arch, RFC 4578):
0 = x86 BIOS, 7 and 9 = x86-64 UEFI, 11 = arm64 UEFI. Each gets its boot loader by TFTP from
``next-server``: ``undionly.kpxe`` (iPXE) or ``pxelinux.0`` (PXELINUX) on BIOS, ``ipxe.efi`` or
``grubx64.efi`` on x86-64 UEFI, ``ipxe-arm64.efi`` or ``grubaa64.efi`` on arm64 UEFI. When the client
is iPXE itself (user class ``iPXE``, option 77), it gets the bundle's ``boot.ipxe`` instead, so the
firmware -> iPXE -> script chain ends after one hop.

The boot loader binaries are not part of the bundle: they come from the distribution (Debian:
``ipxe``, ``pxelinux`` + ``syslinux-common``, ``grub-efi-amd64-signed``/``grub-efi-arm64-bin``) and go
into the TFTP root next to the bundle.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from typing import Any

from coreos_infra.errors import InputError, Location

BIOS_LOADERS = {"ipxe": "undionly.kpxe", "pxelinux": "pxelinux.0"}
UEFI_X64_LOADERS = {"ipxe": "ipxe.efi", "grub": "grubx64.efi"}
UEFI_ARM64_LOADERS = {"ipxe": "ipxe-arm64.efi", "grub": "grubaa64.efi"}

CLIENT_ARCH_BIOS = (0,)
CLIENT_ARCH_UEFI_X64 = (7, 9)
CLIENT_ARCH_UEFI_ARM64 = (11,)


@dataclass(frozen=True)
class DhcpPlan:
    """How DHCP clients reach the bundle.

    ``next_server``: IPv4 address of the TFTP server holding the loaders (None: the DHCP server itself,
    which is what dnsmasq with ``enable-tftp`` does). ``script``: what an iPXE client is told to boot,
    a full URL of ``boot.ipxe`` or a path on the TFTP server. ``tftp_dir``: the bundle's directory in
    the TFTP root (where the loaders are expected too).
    """

    name: str
    next_server: str | None
    script: str
    bios_loader: str = "ipxe"
    uefi_loader: str = "ipxe"
    tftp_dir: str = ""

    def __post_init__(self) -> None:
        if self.next_server is not None:
            try:
                ipaddress.IPv4Address(self.next_server)
            except ValueError:
                raise InputError(
                    f"next_server {self.next_server!r} must be an IPv4 address (DHCP's siaddr field)",
                    Location(path="next_server"),
                ) from None
        if self.bios_loader not in BIOS_LOADERS:
            raise InputError(f"expected one of: {', '.join(BIOS_LOADERS)}", Location(path="bios_loader"))
        if self.uefi_loader not in UEFI_X64_LOADERS:
            raise InputError(f"expected one of: {', '.join(UEFI_X64_LOADERS)}", Location(path="uefi_loader"))

    def _path(self, name: str) -> str:
        return f"{self.tftp_dir}/{name}" if self.tftp_dir else name

    @property
    def bios_file(self) -> str:
        return self._path(BIOS_LOADERS[self.bios_loader])

    @property
    def uefi_x64_file(self) -> str:
        return self._path(UEFI_X64_LOADERS[self.uefi_loader])

    @property
    def uefi_arm64_file(self) -> str:
        return self._path(UEFI_ARM64_LOADERS[self.uefi_loader])

    @property
    def uses_ipxe(self) -> bool:
        return "ipxe" in (self.bios_loader, self.uefi_loader)

    @property
    def loaders(self) -> list[str]:
        return [self.bios_file, self.uefi_x64_file, self.uefi_arm64_file]


def dnsmasq_snippet(plan: DhcpPlan) -> str:
    """Lines for ``/etc/dnsmasq.d/<name>-pxe.conf`` (next to the site's ``dhcp-range``)."""
    server = f",,{plan.next_server}" if plan.next_server else ""
    not_ipxe = "tag:!ipxe," if plan.uses_ipxe else ""
    lines = [
        f"# coreos-infra PXE bundle {plan.name}: dnsmasq snippet (paste next to your dhcp-range lines).",
        f"# Boot loaders expected on the TFTP server: {', '.join(plan.loaders)}",
        "# To let dnsmasq serve TFTP itself, uncomment (and point tftp-root at the bundle's parent):",
        "# enable-tftp",
        "# tftp-root=/srv/tftp",
        "dhcp-match=set:pxe-bios,option:client-arch,0",
        "dhcp-match=set:pxe-efi-x64,option:client-arch,7",
        "dhcp-match=set:pxe-efi-x64,option:client-arch,9",
        "dhcp-match=set:pxe-efi-arm64,option:client-arch,11",
    ]
    if plan.uses_ipxe:
        lines.append("dhcp-userclass=set:ipxe,iPXE")
    lines += [
        f"dhcp-boot=tag:pxe-bios,{not_ipxe}{plan.bios_file}{server}",
        f"dhcp-boot=tag:pxe-efi-x64,{not_ipxe}{plan.uefi_x64_file}{server}",
        f"dhcp-boot=tag:pxe-efi-arm64,{not_ipxe}{plan.uefi_arm64_file}{server}",
    ]
    if plan.uses_ipxe:
        lines.append(f"dhcp-boot=tag:ipxe,{plan.script}{server}")
    return "\n".join(lines) + "\n"


def _arch_test(codes: tuple[int, ...]) -> str:
    tests = [f"option[93].hex == 0x{c:04x}" for c in codes]
    return tests[0] if len(tests) == 1 else "(" + " or ".join(tests) + ")"


def kea_client_classes(plan: DhcpPlan) -> list[dict[str, Any]]:
    """Kea DHCPv4 ``client-classes`` entries (order matters: the iPXE class is defined first)."""
    classes: list[dict[str, Any]] = []
    guard = ""
    if plan.uses_ipxe:
        ipxe_test = "substring(option[77].hex,0,4) == 'iPXE'"
        classes.append({"name": "coreos-ipxe", "test": ipxe_test, "boot-file-name": plan.script})
        guard = "not member('coreos-ipxe') and "
    for name, codes, boot_file in (
        ("coreos-pxe-bios", CLIENT_ARCH_BIOS, plan.bios_file),
        ("coreos-pxe-efi-x64", CLIENT_ARCH_UEFI_X64, plan.uefi_x64_file),
        ("coreos-pxe-efi-arm64", CLIENT_ARCH_UEFI_ARM64, plan.uefi_arm64_file),
    ):
        classes.append({"name": name, "test": guard + _arch_test(codes), "boot-file-name": boot_file})
    if plan.next_server:
        for c in classes:
            c["next-server"] = plan.next_server
    return classes


def kea_snippet(plan: DhcpPlan) -> str:
    """A JSON fragment to merge into ``kea-dhcp4.conf`` (valid JSON: no comments)."""
    doc = {"Dhcp4": {"client-classes": kea_client_classes(plan)}}
    return json.dumps(doc, indent=2) + "\n"
