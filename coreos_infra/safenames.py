"""Names that come from untrusted indexes (stream metadata, store indexes) and become local file names."""

from __future__ import annotations

from coreos_infra.errors import CoreosInfraError


def safe_file_name(name: str, *, what: str = "file name") -> str:
    """Return ``name`` if it is a plain file name, else raise a clear error.

    ``name`` must already be URL-decoded. Refused: empty, ``.``/``..``, any ``/`` or ``\\`` separator
    (so nothing absolute and no traversal), NUL and other control characters.
    """
    if not name or name in (".", ".."):
        raise CoreosInfraError(f"refusing {what} {name!r}: not a plain file name")
    if "/" in name or "\\" in name:
        raise CoreosInfraError(f"refusing {what} {name!r}: it contains a path separator")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        raise CoreosInfraError(f"refusing {what} {name!r}: it contains a control character")
    return name
