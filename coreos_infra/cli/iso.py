"""``coreos-infra iso ...``: coreos-installer compatible live ISO commands.

Same sub-commands, flags and messages as ``coreos-installer iso``: ``customize``, ``ignition
embed|show|remove``, ``network embed|extract|remove``, ``kargs modify|show|reset`` and ``reset``. Every
command that changes an ISO writes in place, to ``-o FILE`` (never overwriting) or to ``-o -`` (stdout),
with identical bytes.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

# Only what building the parser needs is imported here; each command imports its own modules, so that
# start-up (and --help) costs no more than argparse (see the import-time test in tests/test_cli_imports.py).
if TYPE_CHECKING:
    from coreos_infra.live.customize import CustomizeOptions
    from coreos_infra.live.iso.image import LiveIso

OUTPUT_HELP = "write ISO to a new output file (never overwritten) or '-' for stdout, instead of in place"


# the area's line in ``coreos-infra --help`` (see coreos_infra.cli.build_parser)
HELP = "customize a CoreOS live ISO image"


def _add_output(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", metavar="PATH", help=OUTPUT_HELP)


def _add_input(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", metavar="ISO", help="ISO image")


def _err(*lines: str) -> None:
    for line in lines:
        print(line, file=sys.stderr)


# ------------------------------------------------------------------ ignition


def _ignition_embed(args: argparse.Namespace) -> int:
    from coreos_infra.errors import CoreosInfraError
    from coreos_infra.live.customize import InputFile
    from coreos_infra.live.iso.image import IGNITION_MEMBER, LiveIso

    if args.ignition_file:
        data = InputFile.read(args.ignition_file).data
    else:
        data = sys.stdin.buffer.read()
    with LiveIso(args.input) as iso:
        files = iso.initrd()
        if IGNITION_MEMBER in files and not args.force:
            raise CoreosInfraError(
                "This ISO image already has an embedded Ignition config; use -f to force."
            )
        files[IGNITION_MEMBER] = data
        iso.set_initrd(files, background=True)
        iso.save(args.output)
    return 0


def _ignition_show(args: argparse.Namespace) -> int:
    from coreos_infra.errors import CoreosInfraError
    from coreos_infra.live.iso.image import LiveIso

    with LiveIso(args.input) as iso:
        if args.header:
            sys.stdout.write(iso.ignition_area.to_json())
            return 0
        data = iso.ignition()
    if data is None:
        raise CoreosInfraError("No embedded Ignition config.")
    sys.stdout.buffer.write(data)
    sys.stdout.flush()
    return 0


def _ignition_remove(args: argparse.Namespace) -> int:
    from coreos_infra.live.iso.image import IGNITION_MEMBER, LiveIso

    with LiveIso(args.input) as iso:
        files = iso.initrd()
        files.pop(IGNITION_MEMBER, None)
        iso.set_initrd(files, background=True)
        iso.save(args.output)
    return 0


# ------------------------------------------------------------------ network


def _require_network(iso: LiveIso) -> None:
    from coreos_infra.errors import CoreosInfraError

    if not iso.features.live_initrd_network:
        raise CoreosInfraError("This OS image does not support customizing network settings.")


def _network_embed(args: argparse.Namespace) -> int:
    from coreos_infra.errors import CoreosInfraError
    from coreos_infra.live.customize import InputFile
    from coreos_infra.live.iso.image import NETWORK_PREFIX, LiveIso

    keyfiles: dict[str, bytes] = {}
    for path in args.keyfile:
        f = InputFile.read(path)
        if f.name in keyfiles:
            raise CoreosInfraError(f"multiple input files named '{f.name}'")
        keyfiles[f.name] = f.data
    with LiveIso(args.input) as iso:
        _require_network(iso)
        files = iso.initrd()
        if iso.network_files() and not args.force:
            raise CoreosInfraError("This ISO image already has embedded network settings; use -f to force.")
        files = {k: v for k, v in files.items() if not k.startswith(NETWORK_PREFIX)}
        files.update({NETWORK_PREFIX + name: data for name, data in keyfiles.items()})
        iso.set_initrd(files, background=True)
        iso.save(args.output)
    return 0


def _network_extract(args: argparse.Namespace) -> int:
    from coreos_infra.errors import CoreosInfraError
    from coreos_infra.live.iso.image import NETWORK_PREFIX, LiveIso

    with LiveIso(args.input) as iso:
        files = iso.network_files()
    if not files:
        raise CoreosInfraError("No embedded network settings.")
    if args.directory:
        directory = Path(args.directory)
        directory.mkdir(parents=True, exist_ok=True)
        for member, data in sorted(files.items()):
            path = directory / member.removeprefix(NETWORK_PREFIX)
            try:
                with open(path, "xb") as out:
                    out.write(data)
            except OSError as e:
                raise CoreosInfraError(f"writing {path}: {e.strerror}") from None
            print(path)
        return 0
    first = True
    for member, data in sorted(files.items()):
        if not first:
            print()
        first = False
        print(f"########## {member.removeprefix(NETWORK_PREFIX)} ##########")
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    return 0


def _network_remove(args: argparse.Namespace) -> int:
    from coreos_infra.live.iso.image import NETWORK_PREFIX, LiveIso

    with LiveIso(args.input) as iso:
        files = {k: v for k, v in iso.initrd().items() if not k.startswith(NETWORK_PREFIX)}
        iso.set_initrd(files, background=True)
        iso.save(args.output)
    return 0


# ------------------------------------------------------------------ kargs


def _kargs_modify(args: argparse.Namespace) -> int:
    from coreos_infra.live.iso.image import LiveIso
    from coreos_infra.live.iso.kargs import edit_kargs

    with LiveIso(args.input) as iso:
        new = edit_kargs(iso.kargs(), append=args.append, delete=args.delete, replace=args.replace)
        iso.set_kargs(new)
        iso.save(args.output)
    return 0


def _kargs_reset(args: argparse.Namespace) -> int:
    from coreos_infra.live.iso.image import LiveIso

    with LiveIso(args.input) as iso:
        iso.set_kargs(iso.default_kargs())
        iso.save(args.output)
    return 0


def _kargs_show(args: argparse.Namespace) -> int:
    from coreos_infra.live.iso.image import LiveIso

    with LiveIso(args.input) as iso:
        if args.header:
            sys.stdout.write(iso.require_kargs().to_json())
            return 0
        print(iso.default_kargs() if args.default else iso.kargs())
    return 0


# ------------------------------------------------------------------ reset / customize


def _reset(args: argparse.Namespace) -> int:
    from coreos_infra.live.iso.image import LiveIso

    with LiveIso(args.input) as iso:
        iso.reset()
        iso.save(args.output)
    return 0


def customize_options(args: argparse.Namespace) -> CustomizeOptions:
    """The shared ``customize`` options (see :func:`add_customize_options`) as a CustomizeOptions."""
    from coreos_infra.live.customize import CustomizeOptions

    return CustomizeOptions.from_paths(
        dest_ignition=args.dest_ignition,
        dest_device=args.dest_device,
        dest_console=args.dest_console,
        dest_karg_append=args.dest_karg_append,
        dest_karg_delete=args.dest_karg_delete,
        network_keyfile=args.network_keyfile,
        network_nmstate=args.network_nmstate,
        ignition_ca=args.ignition_ca,
        pre_install=args.pre_install,
        post_install=args.post_install,
        installer_config=args.installer_config,
        live_ignition=args.live_ignition,
    )


def _start_copy(args: argparse.Namespace) -> contextlib.AbstractContextManager[Any]:
    """With ``-o FILE``, begin copying the ISO there before the heavy imports and the parsing (see
    :class:`coreos_infra.fsutil.StartedCopy`); when that cannot start, the normal path reports why."""
    out = Path(args.output) if args.output and args.output != "-" else None
    if out is None or out.exists() or out.is_symlink():
        return contextlib.nullcontext()
    from coreos_infra.errors import CoreosInfraError
    from coreos_infra.fsutil import StartedCopy

    try:
        return StartedCopy(Path(args.input), out)
    except (OSError, CoreosInfraError):
        return contextlib.nullcontext()


def _customize(args: argparse.Namespace) -> int:
    with _start_copy(args) as started:
        from coreos_infra.live.iso.customize import customize_iso
        from coreos_infra.live.iso.image import LiveIso

        opts = customize_options(args)
        with LiveIso(args.input) as iso:
            result = customize_iso(
                iso,
                opts,
                live_karg_append=args.live_karg_append,
                live_karg_delete=args.live_karg_delete,
                live_karg_replace=args.live_karg_replace,
                force=args.force,
            )
            _err(*result.warnings, *result.messages)
            iso.save(args.output, started=started)
    return 0


def add_customize_options(p: argparse.ArgumentParser) -> None:
    """The options shared by ``iso customize`` and ``pxe customize`` (destination, network, hooks, live)."""
    rep: dict[str, Any] = {"action": "append", "default": []}
    g = p.add_argument_group("Installation options")
    g.add_argument(
        "--dest-ignition", metavar="PATH", **rep, help="Ignition config for the destination system"
    )
    g.add_argument("--dest-device", metavar="PATH", help="install destination device")
    g.add_argument("--dest-console", metavar="SPEC", **rep, help="kernel and bootloader console for dest")
    g.add_argument("--dest-karg-append", metavar="ARG", **rep, help="destination kernel argument to append")
    g.add_argument("--dest-karg-delete", metavar="ARG", **rep, help="destination kernel argument to delete")
    g = p.add_argument_group("Network options")
    g.add_argument("--network-keyfile", metavar="PATH", **rep, help="NetworkManager keyfile for live & dest")
    g.add_argument("--network-nmstate", metavar="PATH", **rep, help="nmstate config for live & dest")
    g = p.add_argument_group("Advanced options")
    g.add_argument("--ignition-ca", metavar="PATH", **rep, help="TLS CA certificate for Ignition")
    g.add_argument("--pre-install", metavar="PATH", **rep, help="script to run before installation")
    g.add_argument("--post-install", metavar="PATH", **rep, help="script to run after installation")
    g.add_argument("--installer-config", metavar="PATH", **rep, help="installer config file")
    g.add_argument("--live-ignition", metavar="PATH", **rep, help="Ignition config for the live system")


def register(subparsers: Any) -> None:
    iso = subparsers.add_parser(
        "iso",
        help=HELP,
        description="Commands to manage a CoreOS live ISO image",
    )
    sub = iso.add_subparsers(dest="iso_command", metavar="COMMAND", required=True)
    _register_customize(sub)
    _register_ignition(sub)
    _register_network(sub)
    _register_kargs(sub)
    _register_reset(sub)


def _register_customize(sub: Any) -> None:
    p = sub.add_parser(
        "customize",
        help="customize a CoreOS live ISO image",
        description="Customize a CoreOS live ISO image for an unattended install (--dest-*) and/or the live "
        "system (--live-*), as coreos-installer iso customize does. Writes in place, to -o FILE (never "
        "overwritten) or to -o - (stdout).",
    )
    add_customize_options(p)
    g = p.add_argument_group("Live ISO options")
    rep: dict[str, Any] = {"action": "append", "default": []}
    g.add_argument("--live-karg-append", metavar="ARG", **rep, help="live kernel argument to append")
    g.add_argument("--live-karg-delete", metavar="ARG", **rep, help="live kernel argument to delete")
    g.add_argument("--live-karg-replace", metavar="K=O=N", **rep, help="live kernel argument to replace")
    p.add_argument("-f", "--force", action="store_true", help="overwrite existing customizations")
    _add_output(p)
    _add_input(p)
    p.set_defaults(func=_customize)


def _register_ignition(sub: Any) -> None:
    ign = sub.add_parser("ignition", help="embed an Ignition config in an ISO image")
    ign_sub = ign.add_subparsers(dest="ignition_command", metavar="COMMAND", required=True)
    p = ign_sub.add_parser("embed", help="embed an Ignition config in an ISO image")
    p.add_argument("-f", "--force", action="store_true", help="overwrite an existing Ignition config")
    p.add_argument("-i", "--ignition-file", metavar="PATH", help="Ignition config to embed [default: stdin]")
    _add_output(p)
    _add_input(p)
    p.set_defaults(func=_ignition_embed)
    p = ign_sub.add_parser("show", help="show the embedded Ignition config from an ISO image")
    p.add_argument("--header", action="store_true", help="show the embed area (offset, length) as JSON")
    _add_input(p)
    p.set_defaults(func=_ignition_show)
    p = ign_sub.add_parser("remove", help="remove an existing embedded Ignition config from an ISO image")
    _add_output(p)
    _add_input(p)
    p.set_defaults(func=_ignition_remove)


def _register_network(sub: Any) -> None:
    net = sub.add_parser("network", help="embed network settings in an ISO image")
    net_sub = net.add_subparsers(dest="network_command", metavar="COMMAND", required=True)
    p = net_sub.add_parser("embed", help="embed network settings in an ISO image")
    p.add_argument("-k", "--keyfile", metavar="PATH", action="append", required=True,
                   help="NetworkManager keyfile to embed (repeatable)")  # fmt: skip
    p.add_argument("-f", "--force", action="store_true", help="overwrite existing network settings")
    _add_output(p)
    _add_input(p)
    p.set_defaults(func=_network_embed)
    p = net_sub.add_parser("extract", help="extract embedded network settings from an ISO image")
    p.add_argument("-C", "--directory", metavar="PATH", help="extract to directory instead of stdout")
    _add_input(p)
    p.set_defaults(func=_network_extract)
    p = net_sub.add_parser("remove", help="remove existing network settings from an ISO image")
    _add_output(p)
    _add_input(p)
    p.set_defaults(func=_network_remove)


def _register_kargs(sub: Any) -> None:
    kargs = sub.add_parser("kargs", help="modify kernel args in an ISO image")
    kargs_sub = kargs.add_subparsers(dest="kargs_command", metavar="COMMAND", required=True)
    p = kargs_sub.add_parser("modify", help="modify kernel args in an ISO image")
    p.add_argument(
        "-a", "--append", metavar="KARG", action="append", default=[], help="kernel argument to append"
    )
    p.add_argument(
        "-d", "--delete", metavar="KARG", action="append", default=[], help="kernel argument to delete"
    )
    p.add_argument("-r", "--replace", metavar="KARG=OLDVAL=NEWVAL", action="append", default=[],
                   help="kernel argument to replace")  # fmt: skip
    _add_output(p)
    _add_input(p)
    p.set_defaults(func=_kargs_modify)
    p = kargs_sub.add_parser("reset", help="reset kernel args in an ISO image to defaults")
    _add_output(p)
    _add_input(p)
    p.set_defaults(func=_kargs_reset)
    p = kargs_sub.add_parser("show", help="show kernel args from an ISO image")
    p.add_argument("-d", "--default", action="store_true", help="show default kernel args")
    p.add_argument("--header", action="store_true", help="show the karg embed areas as JSON")
    _add_input(p)
    p.set_defaults(func=_kargs_show)


def _register_reset(sub: Any) -> None:
    p = sub.add_parser("reset", help="restore a CoreOS live ISO image to default settings")
    _add_output(p)
    _add_input(p)
    p.set_defaults(func=_reset)
