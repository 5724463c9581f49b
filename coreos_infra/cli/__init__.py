"""The ``coreos-infra`` command: a front door for the coreos-installer and butane compatible tools.

Each area registers its sub-commands from its own module ``coreos_infra.cli.<area>`` through a
``register(subparsers)`` function; the handler set with ``set_defaults(func=...)`` returns an exit code.
Those modules import only argparse-level things at the top; each handler imports the modules it runs
(Butane engine, fetch, ISO, cpio ...), so a command pays only for its own imports.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Collection, Sequence

from coreos_infra import __version__

AREAS = ("butane", "pxe", "iso", "download")


def build_parser(full: Collection[str] = AREAS) -> argparse.ArgumentParser:
    """The ``coreos-infra`` parser; only the areas in ``full`` get their sub-commands.

    The others are listed by name and help line only: building every area's parsers costs more than
    the rest of start-up, and a command line names one area.
    """
    parser = argparse.ArgumentParser(
        prog="coreos-infra",
        description="Fedora CoreOS image factory: butane, ISO, PXE and disk image tools.",
    )
    parser.add_argument("--version", action="version", version=f"coreos-infra {__version__}")
    parser.add_argument("--debug", action="store_true", help="log every command run and show tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for area in AREAS:
        module = importlib.import_module(f"coreos_infra.cli.{area}")
        if area in full:
            module.register(sub)
        else:
            sub.add_parser(area, help=module.HELP)
    return parser


def _area(argv: Sequence[str]) -> str | None:
    """The area a command line names: its first word that is not an option (the top level has no
    option taking a value)."""
    for arg in argv:
        if arg == "--":
            return None
        if not arg.startswith("-"):
            return arg
    return None


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    area = _area(argv)
    parser = build_parser(full=[area] if area else [])
    args = parser.parse_args(argv)
    # imported after parsing: ``--help`` and usage errors cost no more than argparse
    from coreos_infra.exits import exit_status
    from coreos_infra.log import setup_logging

    setup_logging(debug=args.debug)
    return exit_status(lambda: int(args.func(args)), debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
