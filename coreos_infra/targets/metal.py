"""The ``metal`` target: the FCOS metal ``raw.xz`` with the site's Ignition config, kernel arguments,
consoles and NetworkManager keyfiles written into its ``boot`` filesystem, ready to ``dd`` (or to feed
``coreos-installer install --image-file``). See :mod:`coreos_infra.disk.rawimage` for how.

Options: :class:`coreos_infra.disk.options.DiskOptions` (``kernel_args: {append: [..], delete: [..]}``,
``console``, ``network_keyfiles``, ``xz_preset``, ``splice``, ``threads``).
"""

from __future__ import annotations

from typing import Any

from coreos_infra.boottest.paths import BootPath
from coreos_infra.build import BuildRequest, BuildResult
from coreos_infra.disk.options import DiskOptions, base_disk
from coreos_infra.disk.rawimage import build_raw_image
from coreos_infra.targets.base import Base, BootProfile, Output, Target


class MetalTarget(Target, kind="metal"):
    title = "metal raw disk image"
    options = DiskOptions
    # qemu/qcow2.xz is no metal base: the builder edits raw GPT disks (see the qemu target)
    bases = (Base("metal", "raw.xz"), Base("metal", "4k.raw.xz"))
    output = Output("metal", "raw.xz", ".raw.xz")
    boot = BootProfile(medium="disk", xz=True)
    # hybrid disks boot under SeaBIOS and OVMF; metal4k (the 4k.raw.xz base) only as a 4Kn UEFI disk
    boot_paths = (
        BootPath("metal", "bios", "disk", "disk"),
        BootPath("metal", "uefi", "disk", "disk"),
        BootPath("metal", "uefi", "4kn", "disk", recipe="metal4k", sector_size=4096),
        BootPath("metal", "uefi", "second-boot", "disk"),
        BootPath("metal", "uefi", "services", "disk"),
    )

    def build(self, req: BuildRequest) -> BuildResult:
        opts: DiskOptions = self.options_of(req)
        out = req.out_dir / self.output.artifact_name(req.name)
        facts = build_raw_image(base_disk(req), out, opts.raw_image_options(req))
        meta: dict[str, Any] = {"image": facts}
        if opts.keyfiles_contain_secrets:
            meta["network_keyfiles_contain_secrets"] = True
        return BuildResult(artifacts=[out], meta=meta)


build = MetalTarget().build
