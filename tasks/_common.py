"""What the task modules share: the project root, the Python that runs them, build outcomes."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from invoke import Exit

if TYPE_CHECKING:
    from coreos_infra.pipeline import BuildOutcome

PY = sys.executable
ROOT = Path(__file__).resolve().parent.parent


def recipes() -> str:
    """The target recipes (recipes/<name>.yaml), for the help texts."""
    return ", ".join(sorted(p.stem for p in (ROOT / "recipes").glob("*.yaml")))


SOURCE_HELP = {
    "offline": "use the built-in offline fixture mirror (built by `invoke fixtures`) instead of the "
    "official server; trusts only the mirror's throwaway key",
    "stream_base_url": "mirror of builds.coreos.fedoraproject.org to fetch from (http(s):// or file://)",
    "keyring": "extra trusted OpenPGP keys (a key file or a directory of them)",
    "insecure": "accept base images without a signature (a bad signature is still an error)",
    "firmware_url": "directory URL holding RPi4_UEFI_Firmware_<version>.zip (a firmware mirror)",
    "force": "build even if the output's meta.json already records the same build ID",
}


def outcomes(
    target: str,
    site: str,
    host: list[str] | None,
    all_hosts: bool,
    source_args: tuple[bool, str, str, bool, str],
    force: bool,
) -> Iterator[BuildOutcome]:
    """Build (or find up to date) each requested (target, site, host); yield the outcomes."""
    from coreos_infra.log import setup_logging
    from coreos_infra.taskplan import build_outcomes, source_of

    if not target:
        print("Error: --target is required (see `invoke list`)", file=sys.stderr)
        raise Exit(code=2)
    setup_logging()
    yield from build_outcomes(ROOT, target, site, host, all_hosts, source_of(*source_args), force)
