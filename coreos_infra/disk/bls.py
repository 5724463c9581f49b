"""Boot Loader Specification entries, kernel-argument editing and console settings, as coreos-installer
does them on the ``boot`` filesystem (coreos-installer-formats.md sections 6.3 and 6.4).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from coreos_infra.errors import CoreosInfraError

PLATFORM_KARG_PREFIX = "ignition.platform.id="
METAL_PLATFORM_KARG = "ignition.platform.id=metal"
CONSOLE_START = "# CONSOLE-SETTINGS-START"
CONSOLE_END = "# CONSOLE-SETTINGS-END"


class BlsError(CoreosInfraError):
    """A BLS entry or console/karg input that cannot be handled."""


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


_SERIAL = re.compile(r"^(ttyS|ttyAMA)(\d+)(?:,(\d+)(?:([noe])([5-8])?)?)?$")


@dataclass(frozen=True)
class Console:
    """A kernel console in coreos-installer's grammar (``ttyS0,115200n8``, ``ttyAMA0``, ``tty0``...)."""

    device: str  # ttyS0, ttyAMA0, tty0, hvc0, ttysclp0
    speed: int | None = None
    parity: str = "n"
    bits: int = 8

    @classmethod
    def parse(cls, spec: str) -> Console:
        if spec.startswith("console=") or spec.startswith("/dev/"):
            raise BlsError(f"console {spec!r}: give the device only, without 'console=' or '/dev/'")
        if spec in ("tty0", "hvc0", "ttysclp0"):
            return cls(spec)
        m = _SERIAL.match(spec)
        if not m:
            raise BlsError(
                f"invalid console {spec!r}: expected ttyS<n> or ttyAMA<n> with optional "
                "',<speed>[<parity n|o|e>[<bits 5-8>]]', or tty0, hvc0, ttysclp0"
            )
        prefix, unit, speed, parity, bits = m.groups()
        return cls(f"{prefix}{unit}", int(speed) if speed else 9600, parity or "n", int(bits) if bits else 8)

    @property
    def is_serial(self) -> bool:
        return self.speed is not None

    @property
    def karg(self) -> str:
        if not self.is_serial:
            return f"console={self.device}"
        return f"console={self.device},{self.speed}{self.parity}{self.bits}"

    def grub_command(self) -> str | None:
        if not self.is_serial:
            return None
        unit = re.sub(r"\D", "", self.device)
        parity = {"n": "no", "o": "odd", "e": "even"}[self.parity]
        return f"serial --unit={unit} --speed={self.speed} --word={self.bits} --parity={parity}"


def grub_console_commands(consoles: Sequence[Console]) -> list[str]:
    cmds = [c for c in (con.grub_command() for con in consoles) if c]
    terms = sorted({"serial" if c.is_serial else "console" for c in consoles})
    if terms:
        cmds += [f"terminal_input {' '.join(terms)}", f"terminal_output {' '.join(terms)}"]
    return cmds


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
