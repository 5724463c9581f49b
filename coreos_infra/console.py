"""Kernel consoles in coreos-installer's ``--console`` grammar: the one model for every target.

``ttyS<n>[,<speed>[<parity n|o|e>[<bits 5-8>]]]``, ``ttyAMA<n>...``, ``tty0``, ``hvc0``, ``ttysclp0``
(§6.4 of the formats reference). Used for the installer config of the ISO and PXE targets
(``--console``/``--dest-console``), the live kernel arguments, and the BLS entry plus GRUB
``CONSOLE-SETTINGS`` block of the disk-image targets.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from coreos_infra.errors import BlsError, CustomizeError

_SERIAL = re.compile(r"(ttyS|ttyAMA)([0-9]+)(?:,([0-9]+)(?:([noe])([5-8])?)?)?")
GRAPHICAL = ("tty0", "hvc0", "ttysclp0")
GRAMMAR = "expected ttyS<n> or ttyAMA<n>[,<speed>[<parity n|o|e>[<bits 5-8>]]], or tty0, hvc0, ttysclp0"


class ConsoleError(CustomizeError, BlsError):
    """A console spec that coreos-installer refuses (in a customization and on a disk image alike)."""


@dataclass(frozen=True)
class Console:
    device: str  # ttyS0, ttyAMA0, tty0, hvc0, ttysclp0
    unit: int | None = None  # serial port number, None for graphical/hvc/sclp consoles
    speed: int = 9600
    parity: str = "n"
    bits: int = 8

    @classmethod
    def parse(cls, spec: str) -> Console:
        for prefix in ("console=", "/dev/"):
            if spec.startswith(prefix):
                raise ConsoleError(f'invalid console "{spec}": spec should not start with "{prefix}"')
        m = _SERIAL.fullmatch(spec)
        if m:
            prefix, unit, speed, parity, bits = m.groups()
            port, baud = int(unit), int(speed) if speed else 9600
            if port > 255 or baud > 0xFFFFFFFF:  # a u8 port and a u32 speed, as coreos-installer
                raise ConsoleError(f'invalid console "{spec}": port or speed out of range')
            return cls(f"{prefix}{port}", port, baud, parity or "n", int(bits) if bits else 8)
        if spec in GRAPHICAL:
            return cls(spec)
        raise ConsoleError(
            f'invalid console "{spec}": invalid or unsupported console argument', hint=GRAMMAR
        )

    @property
    def is_serial(self) -> bool:
        return self.unit is not None

    def __str__(self) -> str:
        if self.is_serial:
            return f"{self.device},{self.speed}{self.parity}{self.bits}"
        return self.device

    @property
    def karg(self) -> str:
        return f"console={self}"

    def grub_command(self) -> str | None:
        """The GRUB ``serial`` command of a serial console (ttyS or ttyAMA; None for graphical ones)."""
        if self.unit is None:
            return None
        parity = {"n": "no", "o": "odd", "e": "even"}[self.parity]
        return f"serial --unit={self.unit} --speed={self.speed} --word={self.bits} --parity={parity}"


def grub_console_commands(consoles: Sequence[Console]) -> list[str]:
    """The lines for the CONSOLE-SETTINGS block of ``grub2/console.cfg`` (none for no consoles)."""
    lines = [c for c in (con.grub_command() for con in consoles) if c]
    terms = sorted({"serial" if con.is_serial else "console" for con in consoles})
    if terms:
        lines += [f"terminal_input {' '.join(terms)}", f"terminal_output {' '.join(terms)}"]
    return lines
