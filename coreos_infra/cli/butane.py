"""``coreos-infra butane``: a Butane-compatible command line (translate Butane YAML to Ignition JSON)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the Butane engine is imported by the command, not by ``coreos-infra --help``
    from coreos_infra.ignition.report import Report


# the area's line in ``coreos-infra --help`` (see coreos_infra.cli.build_parser)
HELP = "translate a Butane config (variant fcos) to an Ignition config"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "butane",
        help=HELP,
        description=(
            "Translate a Butane config (variant: fcos, versions 1.0.0-1.7.0) to Ignition JSON, like "
            "the upstream butane tool. Reads INPUT (or stdin) and writes to -o OUT (or stdout). Exit status "
            "0 on success (warnings are printed to stderr), 1 on error."
        ),
    )
    p.add_argument("input", nargs="?", metavar="INPUT", help="Butane config to read (default: stdin)")
    p.add_argument("-o", "--output", metavar="OUT", help="write the Ignition config here (default: stdout)")
    p.add_argument("-p", "--pretty", action="store_true", help="indent the JSON output")
    p.add_argument("-s", "--strict", action="store_true", help="fail on any warning")
    p.add_argument(
        "-d",
        "--files-dir",
        metavar="DIR",
        help="directory that local:, contents_local:, trees are relative to",
    )
    p.add_argument("-c", "--check", action="store_true", help="only check the config, write no output")
    p.add_argument(
        "--raw-errors", action="store_true", help="print reports as one line each (butane < 0.29 format)"
    )
    p.add_argument(
        "--color",
        nargs="?",
        const="always",
        default="auto",
        choices=("auto", "always", "never"),
        help="accepted for butane compatibility; reports are always printed without colour",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from coreos_infra.butane import ButaneError, format_pretty, format_reports, translate
    from coreos_infra.errors import WriteError
    from coreos_infra.fsutil import write_atomic

    if args.input and args.input != "-":
        filename = args.input
        try:
            data = Path(args.input).read_bytes()
        except OSError as e:
            reason = "no such file or directory" if e.errno == 2 else (e.strerror or str(e)).lower()
            print(f"failed to open {args.input}: open {args.input}: {reason}", file=sys.stderr)
            return 1
    else:
        filename = "<stdin>"
        data = sys.stdin.buffer.read()

    def show(reports: list[Report], source: str) -> None:
        if not reports:
            return
        text = format_reports(reports) if args.raw_errors else format_pretty(reports, source, filename)
        sys.stderr.write(text)

    try:
        result = translate(data, filename=filename, files_dir=args.files_dir, strict=args.strict)
    except ButaneError as e:
        show(e.reports, e.source)
        sys.stderr.write(e.status_line + "\n")
        sys.stderr.flush()
        return 1
    show(result.reports, result.source)
    if args.check:
        return 0
    out = result.to_json(pretty=args.pretty)
    if args.output and args.output != "-":
        try:
            write_atomic(Path(args.output), out, parents=False)
        except WriteError as e:
            # butane's own wording (Go's os.OpenFile / Write errors)
            what = "failed to open" if e.stage == "open" else "failed to write config to"
            verb = "open" if e.stage == "open" else "write"
            print(f"{what} {args.output}: {verb} {args.output}: {e.strerror.lower()}", file=sys.stderr)
            return 1
    else:
        sys.stdout.buffer.write(out)
        sys.stdout.flush()
    return 0
