"""Trusted Fedora signing keys shipped with coreos-infra, pinned by fingerprint.

The key files (``*.asc``) and the ``FINGERPRINTS`` list are package data. :func:`pinned_keys` returns
each key file with the fingerprint it must carry; :mod:`coreos_infra.gpg` refuses a key file whose
fingerprint differs, so a corrupted or swapped file is never trusted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

KEYS_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class PinnedKey:
    fingerprint: str  # upper-case hex, 40 characters
    path: Path


def pinned_keys(keys_dir: Path = KEYS_DIR) -> list[PinnedKey]:
    """The keys listed in ``keys_dir/FINGERPRINTS`` (``<fingerprint> <file>`` per line, ``#`` comments)."""
    from coreos_infra.errors import InputError, Location

    listing = keys_dir / "FINGERPRINTS"
    keys = []
    for number, line in enumerate(listing.read_text().splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if (
            len(parts) != 2
            or len(parts[0]) != 40
            or not all(c in "0123456789ABCDEFabcdef" for c in parts[0])
        ):
            raise InputError(
                "expected '<40-hex-digit fingerprint> <key file>'", Location(file=str(listing), line=number)
            )
        keys.append(PinnedKey(parts[0].upper(), keys_dir / parts[1]))
    return keys
