"""Error types shared by the whole library.

Every error a user can cause is a :class:`CoreosInfraError`. It carries, where known, the file, the
path inside the document (``hosts[1].mac``) and the line/column, and renders them as
``file:line:col: path: message`` so editors can jump to the spot.
"""

from __future__ import annotations

from dataclasses import dataclass


class CoreosInfraError(Exception):
    """Base class for every error the tool reports to a user (no traceback needed)."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if self.hint is None else f"{self.message}\nhint: {self.hint}"


@dataclass(frozen=True)
class Location:
    """Where something is in an input file."""

    file: str | None = None
    path: str | None = None
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        parts = []
        if self.file:
            where = self.file
            if self.line is not None:
                where += f":{self.line}"
                if self.column is not None:
                    where += f":{self.column}"
            parts.append(where)
        if self.path:
            parts.append(self.path)
        return ": ".join(parts)


class InputError(CoreosInfraError):
    """Bad user input, with its location."""

    def __init__(self, message: str, location: Location | None = None, *, hint: str | None = None) -> None:
        self.location = location or Location()
        where = str(self.location)
        super().__init__(f"{where}: {message}" if where else message, hint=hint)
        self.reason = message


class ToolError(CoreosInfraError):
    """An external program failed or is missing."""


class VerificationError(CoreosInfraError):
    """A checksum or signature did not verify."""


class WriteError(CoreosInfraError):
    """An output could not be written (missing or read-only directory, disk full, ...).

    ``stage`` is ``"open"`` when the output (or its temporary file) could not be created, ``"write"``
    when writing or renaming it failed.
    """

    def __init__(self, path: str, error: OSError, *, stage: str = "write") -> None:
        self.path = path
        self.errno = error.errno
        self.strerror = error.strerror or str(error)
        self.stage = stage
        super().__init__(f"writing {path}: {self.strerror}")


class CustomizeError(CoreosInfraError):
    """A customization coreos-installer would refuse (``coreos_infra.live.customize``)."""


class BlsError(CoreosInfraError):
    """A BLS entry or console/karg input that cannot be handled (``coreos_infra.disk.bls``)."""
