"""What the QEMU runner watches for on the serial console: failure patterns and timeouts.

Failure patterns are only those that really reach the channel the runner reads (QEMU's first serial
port, which also carries the firmware's text: SeaBIOS prints on it through its serial console,
``-M q35,graphics=off``; OVMF/AAVMF print their boot manager messages on it). Each has a short
``reason`` that :class:`coreos_infra.qemu.BootError` carries, so a caller (and the boot-test summary)
can say *why* a boot failed without reading the log:

============================ ================================================================
reason                       text on the console
============================ ================================================================
kernel panic                 ``Kernel panic - not syncing`` (missing root, init died, ...)
kernel oops                  ``Oops: ...``, ``BUG: unable to handle ...``
emergency shell              systemd ``You are in emergency mode`` / ``Entering emergency mode``,
                             dracut ``Warning: dracut-initqueue timeout``, ``Dropping to debug shell``
Ignition failed              ``FIXTURE-IGNITION-FAILED <why>`` (fixture OS), ``Ignition failed: ...``
no bootable device           SeaBIOS ``No bootable device.``; OVMF/AAVMF falling through to the
                             ``EFI Internal Shell`` boot option
boot loader error            GRUB's ``Press any key to continue`` after a failed command,
                             ``FIXTURE-GRUB-ERROR``
KVM internal error           ``KVM internal error`` (a KVM that cannot run the guest)
============================ ================================================================

Timeouts (:class:`Timeouts`) are derived from the accelerator rather than fixed: a boot gets an overall
cap and an *idle* limit (no console output for that long is a hang, whatever the cap says). Under TCG
both are multiplied by :data:`ACCEL_FACTOR` ``["tcg"]`` and, on a busy host, by the load factor
(load average per core, between 1 and 3).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

# How much slower a guest runs per accelerator, relative to KVM (measured: the fixture boots take
# ~3-15 s under KVM-class speed and 30-150 s under TCG on the 2-core project machine).
ACCEL_FACTOR = {"kvm": 1.0, "tcg": 4.0}
MAX_LOAD_FACTOR = 3.0


@dataclass(frozen=True)
class FailPattern:
    """A console line that ends a boot as failed at once."""

    reason: str
    regex: str  # a whole-line regex (``re.M``: ``^`` and ``$`` are line boundaries)

    def find(self, text: str) -> str | None:
        """The first matching line of ``text``, stripped, or None."""
        m = re.search(self.regex, text, re.M)
        return m.group(0).strip() if m else None


def _anywhere(*needles: str) -> str:
    return r"^.*(?:" + "|".join(needles) + r").*$"


FAIL_PATTERNS: tuple[FailPattern, ...] = (
    FailPattern("kernel panic", _anywhere("Kernel panic - not syncing", "end Kernel panic", "Kernel panic")),
    FailPattern("kernel oops", _anywhere(r"\bOops: ", "BUG: unable to handle")),
    FailPattern(
        "emergency shell",
        _anywhere(
            "You are in emergency mode",
            "Entering emergency mode",
            "Warning: dracut-initqueue timeout",
            "Dropping to debug shell",
            "Give root password for maintenance",
        ),
    ),  # fmt: skip
    # the fixture's own verdict, or Ignition's (the fixture's FIXTURE-IGNITION-LOG lines are only context)
    FailPattern(
        "Ignition failed", r"^FIXTURE-IGNITION-FAILED\b.*$|^(?!FIXTURE-IGNITION-LOG).*Ignition failed.*$"
    ),
    FailPattern(
        "no bootable device",
        _anywhere("No bootable device", r'BdsDxe: (?:loading|starting) Boot\w+ "EFI Internal Shell"'),
    ),
    FailPattern("boot loader error", _anywhere("Press any key to continue", "FIXTURE-GRUB-ERROR")),
    FailPattern("KVM internal error", _anywhere("KVM internal error")),
)


def active_patterns(patterns: tuple[FailPattern, ...], until: tuple[str, ...]) -> tuple[FailPattern, ...]:
    """``patterns`` without those a caller waits for on purpose (a marker in ``until`` they match)."""
    return tuple(p for p in patterns if not any(p.find(marker) for marker in until))


def load_factor() -> float:
    """The 1-minute load average per core, clamped to [1, MAX_LOAD_FACTOR]."""
    try:
        load = os.getloadavg()[0] / (os.cpu_count() or 1)
    except OSError:
        return 1.0
    return min(MAX_LOAD_FACTOR, max(1.0, load))


@dataclass(frozen=True)
class Timeouts:
    """How long a boot may take (``overall``) and stay silent (``idle``), in seconds."""

    overall: float
    idle: float

    @classmethod
    def for_accel(cls, accel: str, *, kvm_overall: float = 150.0, kvm_idle: float = 30.0) -> Timeouts:
        """Timeouts for ``accel`` from what a boot needs under KVM, scaled by accelerator and load."""
        factor = ACCEL_FACTOR.get(accel, ACCEL_FACTOR["tcg"]) * load_factor()
        return cls(kvm_overall * factor, kvm_idle * factor)

    def capped(self, overall: float | None) -> Timeouts:
        """These timeouts with ``overall`` as the cap when given (the idle limit never exceeds it)."""
        if overall is None:
            return self
        return Timeouts(overall, min(self.idle, overall))
