"""``coreos-infra pxe``: coreos-installer compatible ``pxe ignition|network wrap|unwrap``, ``pxe customize``.

Flags, defaults and messages follow ``coreos-installer pxe``; outputs are written atomically.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import BinaryIO

from coreos_infra.cli.iso import add_customize_options
from coreos_infra.customize import CustomizeOptions
from coreos_infra.errors import CoreosInfraError, InputError, Location
from coreos_infra.fsutil import write_atomic
from coreos_infra.pxe import wrap
from coreos_infra.pxe.customize import customize_initramfs


def _stdout() -> BinaryIO:
    return sys.stdout.buffer


def _refuse_tty() -> None:
    if sys.stdout.isatty():
        raise CoreosInfraError("Refusing to write binary data to terminal")


def _read_input(path: str | None) -> tuple[bytes, str]:
    """(content, name for messages) of ``path`` or stdin."""
    if path is None or path == "-":
        return sys.stdin.buffer.read(), "<stdin>"
    try:
        return Path(path).read_bytes(), path
    except OSError as e:
        raise InputError(f"opening: {e.strerror}", Location(file=path)) from e


def _write_output(data: bytes, output: str | None) -> None:
    if output is None or output == "-":
        _refuse_tty()
        out = _stdout()
        out.write(data)
        out.flush()
    else:
        write_atomic(Path(output), data)


def cmd_ignition_wrap(args: argparse.Namespace) -> int:
    if args.output is None:
        _refuse_tty()
    config, _ = _read_input(args.ignition_file)
    _write_output(wrap.wrap_ignition(config), args.output)
    return 0


def cmd_ignition_unwrap(args: argparse.Namespace) -> int:
    data, name = _read_input(args.initrd)
    out = _stdout()
    out.write(wrap.unwrap_ignition(data, source=name))
    out.flush()
    return 0


def cmd_network_wrap(args: argparse.Namespace) -> int:
    if args.output is None:
        _refuse_tty()
    keyfiles = wrap.read_keyfiles(Path(k) for k in args.keyfile)
    _write_output(wrap.wrap_network(keyfiles), args.output)
    return 0


def cmd_network_unwrap(args: argparse.Namespace) -> int:
    data, name = _read_input(args.initrd)
    keyfiles = wrap.unwrap_network(data, source=name)
    if args.directory is not None:
        for path in wrap.extract_network(keyfiles, Path(args.directory)):
            print(path)
    else:
        out = _stdout()
        sys.stdout.flush()
        out.write(wrap.format_network(keyfiles))
        out.flush()
    return 0


def cmd_customize(args: argparse.Namespace) -> int:
    opts = CustomizeOptions.from_paths(
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
    to_stdout = args.output == "-"
    if to_stdout:
        _refuse_tty()
    plan = customize_initramfs(Path(args.initramfs), None if to_stdout else Path(args.output), opts)
    for line in plan.notices:
        print(line, file=sys.stderr)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    pxe = subparsers.add_parser(
        "pxe", help="PXE initrd tools (coreos-installer compatible)",
        description="Commands to manage a CoreOS live PXE image.",
    )  # fmt: skip
    pxe_sub = pxe.add_subparsers(dest="pxe_command", metavar="COMMAND", required=True)

    ign = pxe_sub.add_parser("ignition", help="embed an Ignition config in an initrd image",
                             description="Embed an Ignition config in an initrd image.")  # fmt: skip
    ign_sub = ign.add_subparsers(dest="ignition_command", metavar="COMMAND", required=True)
    p = ign_sub.add_parser("wrap", help="wrap an Ignition config in an initrd image",
                           description="Wrap an Ignition config in an initrd image (list it after the "
                                       "CoreOS initramfs). Writes to stdout unless -o is given.",
                           )  # fmt: skip
    p.add_argument("-i", "--ignition-file", metavar="PATH", help="Ignition config to wrap [default: stdin]")
    p.add_argument("-o", "--output", metavar="PATH", help="write to a file instead of stdout")
    p.set_defaults(func=cmd_ignition_wrap)
    p = ign_sub.add_parser("unwrap", help="show the wrapped Ignition config in an initrd image",
                           description="Show the wrapped Ignition config in an initrd image (the last "
                                       "config.ign of any concatenation of archives).")  # fmt: skip
    p.add_argument("initrd", nargs="?", metavar="INITRD", help="initrd image [default: stdin]")
    p.set_defaults(func=cmd_ignition_unwrap)

    net = pxe_sub.add_parser("network", help="embed network settings in an initrd image",
                             description="Embed NetworkManager keyfiles in an initrd image.")  # fmt: skip
    net_sub = net.add_subparsers(dest="network_command", metavar="COMMAND", required=True)
    p = net_sub.add_parser("wrap", help="wrap network settings in an initrd image",
                           description="Wrap NetworkManager keyfiles in an initrd image.")  # fmt: skip
    p.add_argument("-k", "--keyfile", action="append", required=True, metavar="PATH",
                   help="NetworkManager keyfile to embed (repeatable)")  # fmt: skip
    p.add_argument("-o", "--output", metavar="PATH", help="write to a file instead of stdout")
    p.set_defaults(func=cmd_network_wrap)
    p = net_sub.add_parser("unwrap", help="extract wrapped network settings from an initrd image",
                           description="Extract wrapped network settings from an initrd image.")  # fmt: skip
    p.add_argument("-C", "--directory", metavar="PATH", help="extract to directory instead of stdout")
    p.add_argument("initrd", nargs="?", metavar="INITRD", help="initrd image [default: stdin]")
    p.set_defaults(func=cmd_network_unwrap)

    p = pxe_sub.add_parser(
        "customize", help="create a custom live PXE boot config",
        description="Create a custom live PXE boot config: copy the CoreOS live initramfs and append an "
                    "archive with the live Ignition config and installer settings. If a live config is "
                    "produced, boot with: ignition.firstboot ignition.platform.id=metal",
    )  # fmt: skip
    add_customize_options(p)
    p.add_argument("-o", "--output", required=True, metavar="PATH",
                   help="output file ('-' for stdout); an existing file is never overwritten")  # fmt: skip
    p.add_argument("initramfs", metavar="INITRAMFS", help="CoreOS live initramfs image")
    p.set_defaults(func=cmd_customize)
