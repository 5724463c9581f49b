"""``coreos-infra pxe``: coreos-installer compatible ``pxe ignition|network wrap|unwrap``, ``pxe customize``.

Flags, defaults and messages follow ``coreos-installer pxe``; outputs are written atomically.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import BinaryIO

from coreos_infra.cli.iso import add_customize_options, customize_options

# the area's line in ``coreos-infra --help`` (see coreos_infra.cli.build_parser)
HELP = "PXE initrd tools (coreos-installer compatible)"


def _stdout() -> BinaryIO:
    return sys.stdout.buffer


def _refuse_tty() -> None:
    from coreos_infra.errors import CoreosInfraError

    if sys.stdout.isatty():
        raise CoreosInfraError("Refusing to write binary data to terminal")


def _read_input(path: str | None) -> tuple[bytes, str]:
    """(content, name for messages) of ``path`` or stdin."""
    from coreos_infra.errors import InputError, Location

    if path is None or path == "-":
        return sys.stdin.buffer.read(), "<stdin>"
    try:
        return Path(path).read_bytes(), path
    except OSError as e:
        raise InputError(f"opening: {e.strerror}", Location(file=path)) from e


def _write_output(data: bytes, output: str | None) -> None:
    from coreos_infra.fsutil import write_atomic

    if output is None or output == "-":
        _refuse_tty()
        out = _stdout()
        out.write(data)
        out.flush()
    else:
        write_atomic(Path(output), data, parents=False)


def cmd_ignition_wrap(args: argparse.Namespace) -> int:
    from coreos_infra.live.pxe import wrap

    if args.output is None:
        _refuse_tty()
    config, _ = _read_input(args.ignition_file)
    _write_output(wrap.wrap_ignition(config), args.output)
    return 0


def cmd_ignition_unwrap(args: argparse.Namespace) -> int:
    from coreos_infra.live.pxe import wrap

    data, name = _read_input(args.initrd)
    out = _stdout()
    out.write(wrap.unwrap_ignition(data, source=name))
    out.flush()
    return 0


def cmd_network_wrap(args: argparse.Namespace) -> int:
    from coreos_infra.live.pxe import wrap

    if args.output is None:
        _refuse_tty()
    keyfiles = wrap.read_keyfiles(Path(k) for k in args.keyfile)
    _write_output(wrap.wrap_network(keyfiles), args.output)
    return 0


def cmd_network_unwrap(args: argparse.Namespace) -> int:
    from coreos_infra.live.pxe import wrap

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
    from coreos_infra.live.pxe.customize import customize_initramfs

    opts = customize_options(args)
    to_stdout = args.output == "-"
    if to_stdout:
        _refuse_tty()
    plan = customize_initramfs(Path(args.initramfs), None if to_stdout else Path(args.output), opts)
    for line in plan.notices:
        print(line, file=sys.stderr)
    return 0


# pxe bundle flag -> target option (flags not given are left to the builder's defaults)
BUNDLE_FLAGS = {
    **{k: k for k in ("mode", "base_url", "ignition_delivery", "dest_device", "dest_console",
                      "dest_karg_append", "dest_karg_delete", "image_url", "console", "tftp_dir",
                      "next_server", "bios_loader", "uefi_loader", "label")},
    "rootfs_delivery": "rootfs",
    "karg": "kernel_args",
}  # fmt: skip


def cmd_bundle(args: argparse.Namespace) -> int:
    from coreos_infra.build import BuildRequest, write_meta
    from coreos_infra.targets.pxe import build

    config, _ = _read_input(args.ignition_file)
    options: dict[str, object] = {}
    for flag, key in BUNDLE_FLAGS.items():
        value = getattr(args, flag)
        if value not in (None, []):
            options[key] = value
    if args.skip_reboot:
        options["skip_reboot"] = True
    if args.no_tarball:
        options["tarball"] = False
    out = Path(args.output)
    req = BuildRequest(
        target=args.name, kind="pxe", arch=args.arch, ignition=config,
        base={"kernel": Path(args.kernel), "initramfs": Path(args.initramfs), "rootfs": Path(args.rootfs)},
        base_release=args.release, build_id="local", out_dir=out, cache_dir=out, options=options,
        name=args.name, contains_secrets=args.secrets,
    )  # fmt: skip
    result = build(req)
    write_meta(req, result)
    for path in result.artifacts[:1] + [out / f"{args.name}-pxe"]:
        print(path)
    print("kernel arguments: " + " ".join(result.meta["pxe"]["kargs"]), file=sys.stderr)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    pxe = subparsers.add_parser(
        "pxe", help=HELP,
        description="Commands to manage a CoreOS live PXE image.",
    )  # fmt: skip
    pxe_sub = pxe.add_subparsers(dest="pxe_command", metavar="COMMAND", required=True)
    _register_ignition(pxe_sub)
    _register_network(pxe_sub)
    _register_customize(pxe_sub)
    _register_bundle(pxe_sub)


def _register_ignition(pxe_sub: argparse._SubParsersAction) -> None:
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


def _register_network(pxe_sub: argparse._SubParsersAction) -> None:
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


def _register_customize(pxe_sub: argparse._SubParsersAction) -> None:
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


def _register_bundle(pxe_sub: argparse._SubParsersAction) -> None:
    p = pxe_sub.add_parser(
        "bundle", help="build a netboot bundle (iPXE, PXELINUX, GRUB, DHCP snippets) from local files",
        description="Build <OUTPUT>/<name>-pxe/ (+ <name>-pxe.tar) from a live kernel, initramfs and rootfs "
                    "and an Ignition config: the same builder as `invoke build --target pxe`, without a "
                    "recipe. Prints the tarball and directory paths.",
    )  # fmt: skip
    p.add_argument("--kernel", required=True, metavar="PATH", help="FCOS live kernel")
    p.add_argument("--initramfs", required=True, metavar="PATH", help="FCOS live initramfs")
    p.add_argument("--rootfs", required=True, metavar="PATH", help="FCOS live rootfs.img")
    p.add_argument("-i", "--ignition-file", metavar="PATH", help="Ignition config [default: stdin]")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="directory to write the bundle into")
    p.add_argument("--name", default="coreos", help="file name stem of the outputs [default: coreos]")
    p.add_argument("--arch", default="x86_64", choices=("x86_64", "aarch64"), help="[default: x86_64]")
    p.add_argument("--release", default="unknown", help="FCOS release of the artifacts (for README/meta)")
    p.add_argument(
        "--mode",
        choices=("live", "install"),
        help="live, or install to --dest-device [default: install with --dest-device, else live]",
    )
    p.add_argument("--base-url", metavar="URL", help="http(s)/tftp URL the bundle directory is served from")
    p.add_argument(
        "--rootfs-delivery",
        choices=("url", "initrd"),
        help="rootfs by coreos.live.rootfs_url or as an initrd [default: url with --base-url]",
    )
    p.add_argument("--ignition-delivery", choices=("initrd", "url"), help="[default: initrd]")
    p.add_argument("--dest-device", metavar="PATH", help="install destination device")
    p.add_argument(
        "--dest-console",
        action="append",
        default=[],
        metavar="SPEC",
        help="console for the installed system",
    )
    p.add_argument("--dest-karg-append", action="append", default=[], metavar="ARG")
    p.add_argument("--dest-karg-delete", action="append", default=[], metavar="ARG")
    p.add_argument("--image-url", metavar="URL", help="metal image for the install (coreos.inst.image_url)")
    p.add_argument("--skip-reboot", action="store_true", help="stay in the live system after installing")
    p.add_argument("--console", action="append", default=[], metavar="SPEC", help="live kernel console")
    p.add_argument("--karg", action="append", default=[], metavar="ARG", help="extra live kernel argument")
    p.add_argument("--tftp-dir", metavar="DIR", help="the bundle's directory inside the TFTP root")
    p.add_argument("--next-server", metavar="IPV4", help="TFTP server for the DHCP snippets")
    p.add_argument("--bios-loader", choices=("ipxe", "pxelinux"), help="[default: ipxe]")
    p.add_argument("--uefi-loader", choices=("ipxe", "grub", "shim"), help="[default: ipxe]")
    p.add_argument("--label", help="boot menu title")
    p.add_argument("--no-tarball", action="store_true", help="only write the directory")
    p.add_argument("--secrets", action="store_true",
                   help="the config holds secrets: its files get mode 0600 and are marked")  # fmt: skip
    p.set_defaults(func=cmd_bundle)
