"""The ``qemu`` target: a qcow2 disk for libvirt, Proxmox, OpenStack or plain QEMU/KVM.

The official ``qemu`` platform ``qcow2.xz`` gets the site's Ignition config, kernel arguments, consoles
and NetworkManager keyfiles on its ``boot`` filesystem, exactly as the ``metal`` target does for the
metal image: ``ignition/config.ign`` (which FCOS's initramfs copies to ``/usr/lib/ignition/user.ign``
on the first boot, so no fw_cfg or config drive is needed), the last BLS entry's kernel arguments
(``ignition.platform.id`` stays what the image says: ``qemu``) and ``coreos-firstboot-network/``.
No root and no mount: the image is decompressed, converted to a sparse raw working file with
``qemu-img``, edited with debugfs, checked (``sgdisk -v``, ``e2fsck -fn boot``) and converted back.

The output is ``<name>.qcow2``, uncompressed: what ``virt-install --import``, ``qm importdisk`` and
``openstack image create --disk-format qcow2`` take as they are (the ``.xz`` of the official download
only saves transfer size, and every user has to undo it first). ``compress: true`` writes zlib-
compressed clusters instead (smaller, still a plain qcow2 every tool reads).

Options::

    kernel_args: {append: [..], delete: [..]}   # edited in the last BLS entry, like coreos-installer
    console: [ttyS0,115200n8, tty0]              # coreos-installer --console grammar
    network_keyfiles: {eth0.nmconnection: "<keyfile text>"} | [/abs/path/eth0.nmconnection, ...]
    compress: false                              # qcow2 zlib cluster compression (qemu-img convert -c)
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

from coreos_infra.boottest.paths import BootPath
from coreos_infra.build import BuildRequest, BuildResult
from coreos_infra.disk.bootfs import customize_boot, find_boot_partition
from coreos_infra.disk.check import check_image
from coreos_infra.disk.ext4 import Ext4Image
from coreos_infra.disk.gpt import read_gpt
from coreos_infra.disk.options import DiskOptions, base_disk, parse_bool, source_date_epoch
from coreos_infra.fsutil import sha256_file
from coreos_infra.log import step
from coreos_infra.run import find_binary, run
from coreos_infra.targets.base import Arch, Base, BootProfile, OptionSource, Output, Target
from coreos_infra.xzsplice import decompress_to_sparse

KEYS = ("kernel_args", "console", "network_keyfiles", "compress")


@dataclass(frozen=True)
class QemuOptions:
    KEYS: ClassVar[tuple[str, ...]] = KEYS

    disk: DiskOptions
    compress: bool = False

    @classmethod
    def parse(cls, src: OptionSource) -> QemuOptions:
        src.check_keys(KEYS)
        return cls(DiskOptions.parse_common(src), parse_bool(src, "compress", False))


def _qemu_img(*args: str | Path) -> None:
    run([find_binary("qemu-img", reason="convert qcow2 images (Debian package qemu-utils)"), *args])


@contextlib.contextmanager
def _scratch(out_dir: Path, stem: str) -> Iterator[Path]:
    """A private directory beside the output (same file system: sparse files and the final rename)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{stem}.", dir=out_dir) as tmp:
        yield Path(tmp)


class QemuTarget(Target, kind="qemu"):
    title = "QEMU/KVM qcow2 disk image"
    options = QemuOptions
    bases = (Base("qemu", "qcow2.xz"),)
    arches = (Arch.X86_64, Arch.AARCH64)
    output = Output("qemu", "qcow2", ".qcow2")
    boot = BootProfile(medium="disk", disk_format="qcow2")
    boot_paths = (BootPath("qemu", "uefi", "disk", "disk"),)

    def build(self, req: BuildRequest) -> BuildResult:
        opts: QemuOptions = self.options_of(req)
        self.check_arch(req)
        base = base_disk(req)
        out = req.out_dir / self.output.artifact_name(req.name)
        with _scratch(req.out_dir, out.name) as tmp:
            with step(f"Decompressing {base.name} and converting it to a sparse raw file"):
                decompress_to_sparse(base, tmp / "base.qcow2")
                raw = tmp / "work.raw"
                _qemu_img("convert", "-q", "-f", "qcow2", "-O", "raw", tmp / "base.qcow2", raw)
                (tmp / "base.qcow2").unlink()
            facts = _customize(raw, opts, req)
            converted = tmp / "out.qcow2"
            with step(f"Converting to qcow2{' (compressed clusters)' if opts.compress else ''} -> {out}"):
                _qemu_img("convert", "-q", *(["-c"] if opts.compress else []), "-f", "raw", "-O", "qcow2",
                          raw, converted)  # fmt: skip
                facts["virtual_size"] = raw.stat().st_size
                raw.unlink()
                secrets = (
                    req.contains_secrets or opts.disk.keyfiles_contain_secrets
                )  # both end up in the image
                os.chmod(converted, 0o600 if secrets else 0o644)
                os.replace(converted, out)
        facts.update(format="qcow2", compressed_clusters=opts.compress, base=base.name)
        facts.update(size=out.stat().st_size, sha256=sha256_file(out))
        meta: dict[str, Any] = {"image": facts}
        if opts.disk.keyfiles_contain_secrets:
            meta["network_keyfiles_contain_secrets"] = True
        return BuildResult(artifacts=[out], meta=meta)


def _customize(raw: Path, opts: QemuOptions, req: BuildRequest) -> dict[str, Any]:
    """Edit the boot filesystem of the raw working image and check the result."""
    gpt = read_gpt(raw)
    boot = find_boot_partition(raw, gpt)
    cust = replace(opts.disk.boot_customization(req.ignition), platform=None)  # keep the image's platform
    with step(f"customizing the boot filesystem (partition {boot.number})"):
        res = customize_boot(
            Ext4Image(raw, boot.offset, source_date_epoch=source_date_epoch(req.base_release)), cust
        )
    with step("checking the image (sgdisk -v, e2fsck -fn boot)"):
        report = check_image(raw, partitions=(boot.label,))
    facts: dict[str, Any] = {
        "bls_entry": res.bls_entry,
        "kernel_arguments": res.kargs,
        "boot_files": res.files,
        "ignition_firstboot": res.firstboot,
        "checks": report.as_meta(),
    }
    if res.console_cfg:
        facts["grub_console_cfg"] = res.console_cfg
    return facts


build = QemuTarget().build
