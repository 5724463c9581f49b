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
from pathlib import Path
from typing import Any

from coreos_infra.build import BuildRequest, BuildResult
from coreos_infra.customize import Console, CustomizeError, CustomizeOptions, InputFile
from coreos_infra.disk.bootfs import NetworkKeyfile
from coreos_infra.errors import CoreosInfraError, InputError, Location
from coreos_infra.iso.customize import customize_iso
from coreos_infra.iso.embed import EmbedError
from coreos_infra.iso.image import IGNITION_MEMBER, LiveIso
from coreos_infra.log import step

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


def _error(req: BuildRequest, key: str, message: str) -> InputError:
    return InputError(message, Location(file=f"target {req.target}", path=f"options.{key}"))


def _str_list(req: BuildRequest, key: str) -> tuple[str, ...]:
    value = req.options.get(key, ())
    if isinstance(value, str):
        value = [value] if key in ("console", "dest_console") else value
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) and v for v in value):
        raise _error(req, key, "expected a list of non-empty strings")
    return tuple(value)


def _read(req: BuildRequest, key: str, paths: tuple[str, ...]) -> tuple[InputFile, ...]:
    out = []
    for p in paths:
        try:
            out.append(InputFile(p, Path(p).read_bytes()))
        except OSError as e:
            raise _error(req, key, f"cannot read {p}: {e.strerror}") from None
    return tuple(out)


def _keyfiles(req: BuildRequest) -> tuple[InputFile, ...]:
    value = req.options.get("network_keyfiles", ())
    if isinstance(value, Mapping):
        out = []
        for name, content in value.items():
            if not isinstance(name, str) or "/" in name or not name or not isinstance(content, str | bytes):
                raise _error(req, "network_keyfiles", f"bad keyfile entry {name!r}: expected name: contents")
            out.append(InputFile(name, content.encode() if isinstance(content, str) else content))
        return tuple(out)
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return _read(req, "network_keyfiles", tuple(value))
    raise _error(req, "network_keyfiles", "expected a list of keyfile paths or a mapping name: contents")


def check_options(req: BuildRequest) -> dict[str, Any]:
    """Validate ``req.options``; return them normalized (lists as tuples, mode filled in)."""
    unknown = sorted(set(req.options) - set(KEYS))
    if unknown:
        raise _error(req, unknown[0], f"unknown option for an ISO target (known: {', '.join(KEYS)})")
    mode = req.options.get("mode", "install")
    if mode not in ("install", "live"):
        raise _error(req, "mode", f"expected install or live, not {mode!r}")
    opts: dict[str, Any] = {"mode": mode}
    for key in LIST_KEYS:
        opts[key] = _str_list(req, key)
    if mode == "install":
        device = req.options.get("dest_device")
        if not isinstance(device, str) or not device.startswith("/dev/"):
            raise _error(
                req, "dest_device", "mode install needs dest_device, a device path such as /dev/vda"
            )
        opts["dest_device"] = device
    else:
        for key in INSTALL_ONLY:
            if req.options.get(key):
                raise _error(req, key, f"{key} is only used with mode install")
        opts["dest_device"] = None
    for key in ("console", "dest_console"):
        for spec in opts[key]:
            try:
                Console.parse(spec)
            except CustomizeError as e:
                raise _error(req, key, str(e)) from None
    for spec in opts["kernel_args"] + opts["live_karg_append"]:
        if any(c.isspace() for c in spec):
            raise _error(req, "kernel_args", f"one kernel argument per item, without spaces: {spec!r}")
    opts["network_keyfiles"] = _keyfiles(req)
    return opts


def build(req: BuildRequest) -> BuildResult:
    try:
        return _build(req)
    except BaseException:
        # a failed build leaves no empty output directory behind (nothing was renamed into it)
        with contextlib.suppress(OSError):
            req.out_dir.rmdir()
        raise


def _build(req: BuildRequest) -> BuildResult:
    opts = check_options(req)
    base = req.base.get("iso")
    if base is None or not Path(base).is_file():
        raise CoreosInfraError(f"ISO build of {req.target}: the base artifacts lack the live ISO")
    install = opts["mode"] == "install"
    live_append = (
        *(Console.parse(c).karg for c in opts["console"]),
        *opts["kernel_args"],
        *opts["live_karg_append"],
    )
    custom = CustomizeOptions(
        dest_ignition=(InputFile(f"{req.name}.ign", req.ignition),) if install else (),
        dest_device=opts["dest_device"],
        dest_console=opts["dest_console"],
        dest_karg_append=opts["dest_karg_append"],
        dest_karg_delete=opts["dest_karg_delete"],
        network_keyfile=opts["network_keyfiles"],
        ignition_ca=_read(req, "ignition_ca", opts["ignition_ca"]),
        pre_install=_read(req, "pre_install", opts["pre_install"]),
        post_install=_read(req, "post_install", opts["post_install"]),
        installer_config=_read(req, "installer_config", opts["installer_config"]),
    )
    out = req.out_dir / f"{req.name}.iso"
    with step(f"Customizing {Path(base).name} ({opts['mode']}) -> {out}"), LiveIso(base) as iso:
        try:
            result = customize_iso(
                iso,
                custom,
                live_karg_append=live_append,
                live_karg_delete=opts["live_karg_delete"],
                live_karg_replace=opts["live_karg_replace"],
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
            NetworkKeyfile(Path(kf.path).name, kf.data).has_secrets for kf in opts["network_keyfiles"]
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
            "mode": opts["mode"],
            "volume_id": volume_id,
            "base_iso": Path(base).name,
            "ignition_area": {"offset": area.offset, "length": area.length},
            "initrd_members": members,
            "live_kargs": kargs,
        }
    }
    if install:
        meta["iso"]["dest_device"] = opts["dest_device"]
        meta["iso"]["installer_configs"] = sorted(result.installer_configs)
    return BuildResult(artifacts=[out], meta=meta)
