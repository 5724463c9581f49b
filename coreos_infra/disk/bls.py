"""Boot Loader Specification entries, kernel-argument editing and console settings, as coreos-installer
does them on the ``boot`` filesystem (coreos-installer-formats.md sections 6.3 and 6.4).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from coreos_infra.console import Console, grub_console_commands
from coreos_infra.errors import BlsError

__all__ = ["BlsError", "BlsEntry", "Console", "edit_kargs", "grub_console_commands", "rewrite_console_block"]

PLATFORM_KARG_PREFIX = "ignition.platform.id="
METAL_PLATFORM_KARG = "ignition.platform.id=metal"
CONSOLE_START = "# CONSOLE-SETTINGS-START"
CONSOLE_END = "# CONSOLE-SETTINGS-END"


def edit_kargs(current: str, *, append: Sequence[str] = (), delete: Sequence[str] = (),
               replace: Sequence[str] = ()) -> str:  # fmt: skip
    """coreos-installer's karg editor: delete, then append, then replace (``KEY=OLD=NEW``)."""
    s = f" {current} "
    for d in delete:
        s = s.replace(f" {d.strip()} ", " ")
    for a in append:
        s += a.strip() + " "
    for r in replace:
        parts = r.split("=")
        if len(parts) != 3 or not all(parts):
            raise BlsError(f"wrong input {r!r}, format should be: KEY=OLD=NEW")
        key, old, new = parts
        s = s.replace(f" {key}={old} ", f" {key}={new} ")
    return s.strip()


def split_kargs(options: str) -> list[str]:
    return options.split()


@dataclass(frozen=True)
class BlsEntry:
    text: str

    def options(self) -> str:
        lines = [line for line in self.text.splitlines() if line.startswith("options ")]
        if not lines:
            raise BlsError("couldn't locate 'options' line")
        if len(lines) > 1:
            raise BlsError("multiple 'options' lines found")
        return lines[0][len("options ") :].strip()

    def with_options(self, options: str) -> BlsEntry:
        self.options()  # validates there is exactly one
        out = []
        for line in self.text.splitlines():
            if line.startswith("options "):
                out.append("options " + options.strip())
            else:
                out.append(line.rstrip())
        return BlsEntry("\n".join(out) + "\n")


def last_entry_name(names: Sequence[str]) -> str:
    """The default entry: the last ``*.conf`` in sorted order."""
    confs = sorted(n for n in names if n.endswith(".conf"))
    if not confs:
        raise BlsError("no BLS entries (loader/entries/*.conf) on the boot filesystem")
    return confs[-1]


def rewrite_console_block(cfg: str, commands: Sequence[str]) -> str:
    """Replace the text between ``# CONSOLE-SETTINGS-START`` and ``-END`` with ``commands``."""
    start = cfg.find("\n" + CONSOLE_START + "\n")
    if start < 0:
        raise BlsError(f"couldn't find '{CONSOLE_START}' in the GRUB console configuration")
    body_start = start + len(CONSOLE_START) + 2
    end = cfg.find(CONSOLE_END, body_start)
    if end < 0 or cfg[end - 1] != "\n":
        raise BlsError(f"couldn't find '{CONSOLE_END}' in the GRUB console configuration")
    return cfg[:body_start] + "".join(c + "\n" for c in commands) + cfg[end:]
