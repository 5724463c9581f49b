"""PXE netboot: coreos-installer compatible initrd tools and complete netboot bundles.

- :mod:`coreos_infra.live.pxe.wrap` — ``pxe ignition wrap|unwrap`` and ``pxe network wrap|unwrap``: the
  Ignition config or NetworkManager keyfiles as an extra xz initrd listed after the FCOS initramfs.
- :mod:`coreos_infra.live.pxe.customize` — ``pxe customize``: the customization archive appended to a live
  initramfs (live Ignition config, unattended install settings), built by :mod:`coreos_infra.live.customize`.
- :mod:`coreos_infra.live.pxe.bootconfig` — kernel arguments and the boot loader configurations: iPXE
  (BIOS and UEFI), PXELINUX ``pxelinux.cfg/default`` and GRUB ``grub.cfg`` for UEFI netboot.
- :mod:`coreos_infra.live.pxe.dhcp` — ready-to-paste dnsmasq and ISC Kea snippets (boot file by client
  architecture).
- :mod:`coreos_infra.live.pxe.bundle` — the bundle directory and its tarball, both with ``SHA256SUMS``.

The ``invoke build --target pxe`` builder that ties them together is :mod:`coreos_infra.targets.pxe`.
"""
