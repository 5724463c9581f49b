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
# "shim": Secure Boot; the signed shim loads the signed grubx64.efi/grubaa64.efi next to it, which reads
# grub.cfg and boots the signed FCOS kernel (iPXE binaries are not signed for Secure Boot).
UEFI_X64_LOADERS = {"ipxe": "ipxe.efi", "grub": "grubx64.efi", "shim": "shimx64.efi"}
UEFI_ARM64_LOADERS = {"ipxe": "ipxe-arm64.efi", "grub": "grubaa64.efi", "shim": "shimaa64.efi"}

CLIENT_ARCH_BIOS = (0,)
CLIENT_ARCH_UEFI_X64 = (7, 9)
CLIENT_ARCH_UEFI_ARM64 = (11,)


@dataclass(frozen=True)
class Firmware:
    """One kind of PXE client: its tag/class name, option 93 codes and boot loader file."""

    key: str
    codes: tuple[int, ...]
    boot_file: str


@dataclass(frozen=True)
class DhcpPlan:
    """How DHCP clients reach the bundle.

    ``next_server``: IPv4 address of the TFTP server holding the loaders (None: the DHCP server itself,
    which is what dnsmasq with ``enable-tftp`` does). ``script``: what an iPXE client is told to boot,
    a full URL of ``boot.ipxe`` or a path on the TFTP server. ``tftp_dir``: the bundle's directory in
    the TFTP root (where the loaders are expected too). ``arch``: the bundle's architecture; only
    clients of that architecture are pointed at it (x86_64: BIOS and UEFI x64; aarch64: UEFI arm64).
    """

    name: str
    next_server: str | None
    script: str
    bios_loader: str = "ipxe"
    uefi_loader: str = "ipxe"
    tftp_dir: str = ""
    arch: str = "x86_64"

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
        if self.arch not in ("x86_64", "aarch64"):
            raise InputError(
                f"no PXE client types known for architecture {self.arch!r}", Location(path="arch")
            )

    def _path(self, name: str) -> str:
        return f"{self.tftp_dir}/{name}" if self.tftp_dir else name

    @property
    def firmwares(self) -> list[Firmware]:
        if self.arch == "aarch64":
            return [
                Firmware(
                    "efi-arm64", CLIENT_ARCH_UEFI_ARM64, self._path(UEFI_ARM64_LOADERS[self.uefi_loader])
                )
            ]
        return [
            Firmware("bios", CLIENT_ARCH_BIOS, self._path(BIOS_LOADERS[self.bios_loader])),
            Firmware("efi-x64", CLIENT_ARCH_UEFI_X64, self._path(UEFI_X64_LOADERS[self.uefi_loader])),
        ]

    @property
    def uses_ipxe(self) -> bool:
        loaders = (self.uefi_loader,) if self.arch == "aarch64" else (self.bios_loader, self.uefi_loader)
        return "ipxe" in loaders

    @property
    def loaders(self) -> list[str]:
        return [f.boot_file for f in self.firmwares]


def dnsmasq_snippet(plan: DhcpPlan) -> str:
    """Lines for ``/etc/dnsmasq.d/<name>-pxe.conf`` (next to the site's ``dhcp-range``)."""
    server = f",,{plan.next_server}" if plan.next_server else ""
    not_ipxe = "tag:!ipxe," if plan.uses_ipxe else ""
    lines = [
        f"# coreos-infra PXE bundle {plan.name} ({plan.arch}): dnsmasq snippet for your dhcp-range.",
        f"# Boot loaders expected on the TFTP server: {', '.join(plan.loaders)}",
        "# To let dnsmasq serve TFTP itself, uncomment (and point tftp-root at the bundle's parent):",
        "# enable-tftp",
        "# tftp-root=/srv/tftp",
        "# If another server hands out the addresses, run dnsmasq as proxy DHCP on that subnet:",
        "# dhcp-range=192.0.2.0,proxy",
    ]
    for fw in plan.firmwares:
        lines += [f"dhcp-match=set:pxe-{fw.key},option:client-arch,{code}" for code in fw.codes]
        lines += [f"dhcp-match=set:coreos-{plan.arch},option:client-arch,{code}" for code in fw.codes]
    if plan.uses_ipxe:
        lines.append("dhcp-userclass=set:ipxe,iPXE")
    lines += [f"dhcp-boot=tag:pxe-{fw.key},{not_ipxe}{fw.boot_file}{server}" for fw in plan.firmwares]
    if plan.uses_ipxe:
        lines.append(f"dhcp-boot=tag:ipxe,tag:coreos-{plan.arch},{plan.script}{server}")
    return "\n".join(lines) + "\n"


def _arch_test(codes: tuple[int, ...]) -> str:
    tests = [f"option[93].hex == 0x{c:04x}" for c in codes]
    return tests[0] if len(tests) == 1 else "(" + " or ".join(tests) + ")"


def kea_client_classes(plan: DhcpPlan) -> list[dict[str, Any]]:
    """Kea DHCPv4 ``client-classes`` entries (order matters: the iPXE class is defined first).

    The site's Kea configuration (the ``dhcp`` overlay) can embed these as they are.
    """
    classes: list[dict[str, Any]] = []
    guard = ""
    if plan.uses_ipxe:
        codes = tuple(c for fw in plan.firmwares for c in fw.codes)
        ipxe_test = f"substring(option[77].hex,0,4) == 'iPXE' and {_arch_test(codes)}"
        classes.append(
            {"name": f"coreos-ipxe-{plan.arch}", "test": ipxe_test, "boot-file-name": plan.script}
        )
        guard = f"not member('coreos-ipxe-{plan.arch}') and "
    for fw in plan.firmwares:
        classes.append({"name": f"coreos-pxe-{fw.key}", "test": guard + _arch_test(fw.codes),
                        "boot-file-name": fw.boot_file})  # fmt: skip
    if plan.next_server:
        for c in classes:
            c["next-server"] = plan.next_server
    return classes


def kea_snippet(plan: DhcpPlan) -> str:
    """A JSON fragment to merge into ``kea-dhcp4.conf`` (valid JSON: no comments)."""
    doc = {"Dhcp4": {"client-classes": kea_client_classes(plan)}}
    return json.dumps(doc, indent=2) + "\n"
