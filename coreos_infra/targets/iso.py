"""``invoke build --target usb|live``: the FCOS live ISO with the site's Ignition config embedded.

The official ISO is never re-mastered: only its embed areas change (the Ignition area and the karg areas,
exactly as ``coreos-installer iso customize`` / ``iso ignition embed`` would write them), so the result
boots everywhere the official ISO boots (BIOS and UEFI, CD or USB stick).

Modes (``options.mode``):

- ``install`` (default): an unattended installer. Its live Ignition config carries
  ``/etc/coreos/installer.d/0000-customize.yaml`` (dest device, consoles, kargs) and ``/etc/coreos/dest.ign``
  (the site's config): booting it runs coreos-installer to ``dest_device`` and reboots into the installed
  system, which then applies the site's config. Same bytes as ``coreos-installer iso customize
  --dest-ignition site.ign --dest-device DEV ...``.
- ``live``: the site's config is embedded as the live config (``iso ignition embed``); the system runs
  from RAM and installs nothing.

Options (all optional except ``dest_device`` in install mode):

==================== ==========================================================================
``mode``             ``install`` | ``live``
``dest_device``      install target, e.g. ``/dev/vda`` or ``/dev/disk/by-id/...`` (install)
``dest_console``     consoles of the installed system, e.g. ``[tty0, "ttyS0,115200n8"]`` (install)
``dest_karg_append`` kernel arguments to add to the installed system (install)
``dest_karg_delete`` kernel arguments to remove from the installed system (install)
``console``          consoles of the live system: ``console=`` live kernel arguments
``kernel_args``      extra live kernel arguments (appended)
``live_karg_append`` / ``live_karg_delete`` / ``live_karg_replace`` (``KEY=OLD=NEW``): live kargs edits
``network_keyfiles`` NetworkManager keyfiles for the live (and, installing, the installed) system:
                     a list of file paths or a mapping ``name.nmconnection: contents``
``ignition_ca``      PEM CA bundles (paths) Ignition trusts, live and dest (install)
``pre_install`` / ``post_install``  hook scripts (paths) run around the installer (install)
``installer_config`` extra coreos-installer config files (paths) (install)
==================== ==========================================================================
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from coreos_infra.boottest.paths import live_media_paths
from coreos_infra.build import BuildRequest, BuildResult
from coreos_infra.disk.bootfs import NetworkKeyfile
from coreos_infra.errors import CoreosInfraError, InputError, Location
from coreos_infra.live.customize import Console, CustomizeError, CustomizeOptions, InputFile
from coreos_infra.live.iso.customize import customize_iso
from coreos_infra.live.iso.embed import EmbedError
from coreos_infra.live.iso.image import IGNITION_MEMBER, LiveIso
from coreos_infra.log import step
from coreos_infra.targets.base import Arch, Base, BootProfile, OptionSource, Output, Target

LOG = logging.getLogger("coreos_infra.targets.iso")

INSTALL_ONLY = (
    "dest_device", "dest_console", "dest_karg_append", "dest_karg_delete", "pre_install", "post_install",
    "installer_config", "ignition_ca",
)  # fmt: skip
KEYS = (
    "mode", *INSTALL_ONLY, "console", "kernel_args", "live_karg_append", "live_karg_delete",
    "live_karg_replace", "network_keyfiles",
)  # fmt: skip
LIST_KEYS = (
    "dest_console", "dest_karg_append", "dest_karg_delete", "console", "kernel_args", "live_karg_append",
    "live_karg_delete", "live_karg_replace", "ignition_ca", "pre_install", "post_install",
    "installer_config",
)  # fmt: skip


def _str_list(src: OptionSource, key: str) -> tuple[str, ...]:
    value = src.get(key, ())
    if isinstance(value, str):
        value = [value] if key in ("console", "dest_console") else value
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) and v for v in value):
        raise src.error(key, "expected a list of non-empty strings")
    return tuple(value)


def _read(key: str, paths: tuple[str, ...], target: str) -> tuple[InputFile, ...]:
    out = []
    for p in paths:
        try:
            out.append(InputFile(p, Path(p).read_bytes()))
        except OSError as e:
            raise InputError(
                f"cannot read {p}: {e.strerror}", Location(f"recipe {target}", f"options.{key}")
            ) from None
    return tuple(out)


def _keyfiles(src: OptionSource) -> tuple[InputFile, ...]:
    value = src.get("network_keyfiles", ())
    if isinstance(value, Mapping):
        out = []
        for name, content in value.items():
            if not isinstance(name, str) or "/" in name or not name or not isinstance(content, str | bytes):
                raise src.error("network_keyfiles", f"bad keyfile entry {name!r}: expected name: contents")
            out.append(InputFile(name, content.encode() if isinstance(content, str) else content))
        return tuple(out)
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return _read("network_keyfiles", tuple(value), src.target)
    raise src.error("network_keyfiles", "expected a list of keyfile paths or a mapping name: contents")


def _device(src: OptionSource) -> str:
    device = src.get("dest_device")
    if device is None:
        raise src.error("dest_device", "mode install needs dest_device (the disk to install to)")
    if (
        not isinstance(device, str)
        or not device.startswith("/dev/")
        or device.endswith("/")
        or " " in device
    ):
        raise src.error("dest_device", "not a device path (e.g. /dev/vda or /dev/disk/by-id/...)")
    return device


@dataclass(frozen=True)
class IsoOptions:
    """The options of the ``iso`` target (see the module documentation), checked."""

    KEYS: ClassVar[tuple[str, ...]] = KEYS

    mode: str = "install"
    dest_device: str | None = None
    lists: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # every key of LIST_KEYS
    network_keyfiles: tuple[InputFile, ...] = ()

    def list(self, key: str) -> tuple[str, ...]:
        return self.lists.get(key, ())

    @classmethod
    def parse(cls, src: OptionSource) -> IsoOptions:
        src.check_keys(KEYS)
        mode = src.get("mode", "install")
        if mode not in ("install", "live"):
            raise src.error("mode", f"expected install or live, not {mode!r}")
        lists = {key: _str_list(src, key) for key in LIST_KEYS}
        if mode == "live":
            for key in INSTALL_ONLY:
                if src.get(key):
                    raise src.error(key, f"{key} is only used with mode install")
        device = _device(src) if mode == "install" else None
        for key in ("console", "dest_console"):
            for spec in lists[key]:
                try:
                    Console.parse(spec)
                except CustomizeError as e:
                    raise src.error(key, str(e)) from None
        for key in ("kernel_args", "live_karg_append", "dest_karg_append", "dest_karg_delete"):
            for i, spec in enumerate(lists[key]):
                if any(c.isspace() for c in spec):
                    raise src.error(f"{key}[{i}]", "one kernel argument per list item, without spaces")
        return cls(mode, device, lists, _keyfiles(src))


def check_options(req: BuildRequest) -> IsoOptions:
    """Validate ``req.options`` (a plain mapping or options parsed from the recipe)."""
    opts: IsoOptions = IsoTarget.options_of(req)
    return opts


class IsoTarget(Target, kind="iso"):
    title = "live ISO"
    options = IsoOptions
    bases = (Base("metal", "iso"),)
    arches = (Arch.X86_64, Arch.AARCH64)
    output = Output("metal", "iso", ".iso")
    boot = BootProfile(medium="cdrom")
    # the same bytes boot as a CD and as a USB stick (hybrid), under SeaBIOS and OVMF; the installer
    # (usb) also installs, and its installed disk boots a second time without Ignition
    boot_paths = (*live_media_paths("usb", install=True), *live_media_paths("live", install=False))
    base_roles = {"disk": "iso"}  # the stream's "disk" of the iso format is the live ISO

    def build(self, req: BuildRequest) -> BuildResult:
        try:
            return _build(req, check_options(req))
        except BaseException:
            # a failed build leaves no empty output directory behind (nothing was renamed into it)
            with contextlib.suppress(OSError):
                req.out_dir.rmdir()
            raise

    def delivered_config(self, artifact: Path, ignition: bytes) -> bytes:
        with LiveIso(artifact) as iso:
            data = iso.ignition()
        if data is None:
            raise CoreosInfraError(f"{artifact}: no Ignition config embedded")
        return data


def _build(req: BuildRequest, opts: IsoOptions) -> BuildResult:
    base = req.base.get("iso")
    if base is None or not Path(base).is_file():
        raise CoreosInfraError(f"ISO build of {req.target}: the base artifacts lack the live ISO")
    install = opts.mode == "install"
    live_append = (
        *(Console.parse(c).karg for c in opts.list("console")),
        *opts.list("kernel_args"),
        *opts.list("live_karg_append"),
    )
    custom = CustomizeOptions(
        dest_ignition=(InputFile(f"{req.name}.ign", req.ignition),) if install else (),
        dest_device=opts.dest_device,
        dest_console=opts.list("dest_console"),
        dest_karg_append=opts.list("dest_karg_append"),
        dest_karg_delete=opts.list("dest_karg_delete"),
        network_keyfile=opts.network_keyfiles,
        ignition_ca=_read("ignition_ca", opts.list("ignition_ca"), req.target),
        pre_install=_read("pre_install", opts.list("pre_install"), req.target),
        post_install=_read("post_install", opts.list("post_install"), req.target),
        installer_config=_read("installer_config", opts.list("installer_config"), req.target),
    )
    out = req.out_dir / f"{req.name}.iso"
    with step(f"Customizing {Path(base).name} ({opts.mode}) -> {out}"), LiveIso(base) as iso:
        try:
            result = customize_iso(
                iso,
                custom,
                live_karg_append=live_append,
                live_karg_delete=opts.list("live_karg_delete"),
                live_karg_replace=opts.list("live_karg_replace"),
            )
        except CustomizeError as e:
            raise CoreosInfraError(f"ISO build of {req.target}: {e}") from None
        for line in (*result.warnings, *result.messages):
            LOG.info("  %s", line)
        if not install:
            files = iso.initrd()
            files[IGNITION_MEMBER] = req.ignition
            iso.set_initrd(files, background=True)
        members = sorted(iso.initrd())
        kargs = iso.kargs() if iso.kargs_layout is not None else None
        area = iso.ignition_area
        secrets = req.contains_secrets or any(
            NetworkKeyfile(Path(kf.path).name, kf.data).has_secrets for kf in opts.network_keyfiles
        )
        try:
            iso.save(out, overwrite=True, mode=0o600 if secrets else 0o644, durable=True)
        except EmbedError as e:
            raise CoreosInfraError(
                f"{req.target} build {req.name}: the Ignition config "
                f"({len(req.ignition)} bytes) does not fit the ISO: {e}",
                hint="the ISO's Ignition embed area has a fixed size; serve large files by URL "
                "(contents.source: https://...) instead of embedding them",
            ) from None
        volume_id = iso.fs.volume_id
    meta: dict[str, Any] = {
        "iso": {
            "mode": opts.mode,
            "volume_id": volume_id,
            "base_iso": Path(base).name,
            "ignition_area": {"offset": area.offset, "length": area.length},
            "initrd_members": members,
            "live_kargs": kargs,
        }
    }
    if install:
        meta["iso"]["dest_device"] = opts.dest_device
        meta["iso"]["installer_configs"] = sorted(result.installer_configs)
    return BuildResult(artifacts=[out], meta=meta)


build = IsoTarget().build
