"""The ``coreos-infra`` command: a front door for the coreos-installer and butane compatible tools.

Each area registers its sub-commands from its own module ``coreos_infra.cli.<area>`` through a
``register(subparsers)`` function; the handler set with ``set_defaults(func=...)`` returns an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from coreos_infra import __version__
from coreos_infra.exits import exit_status
from coreos_infra.log import setup_logging

AREAS = ("butane", "pxe", "iso", "download")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="coreos-infra",
        description="Fedora CoreOS image factory: butane, ISO, PXE and disk image tools.",
    )
    parser.add_argument("--version", action="version", version=f"coreos-infra {__version__}")
    parser.add_argument("--debug", action="store_true", help="log every command run and show tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for area in AREAS:
        importlib.import_module(f"coreos_infra.cli.{area}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(debug=args.debug)
    return exit_status(lambda: int(args.func(args)), debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
