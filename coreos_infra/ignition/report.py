"""Validation reports shared by the Ignition model and the Butane translator.

A report entry has a kind (``error``, ``warning``, ``info``), a message, and optionally a path (a tuple of
keys and list indices) and a 1-based line/column. ``str(entry)`` is Butane's raw format::

    error at $.storage.files.0.path, line 5 col 9: path not absolute
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

ERROR = "error"
WARNING = "warning"
INFO = "info"

PathT = tuple[str | int, ...]


def format_path(path: PathT) -> str:
    """``("storage", "files", 0)`` → ``$.storage.files.0``."""
    return "$" + "".join(f".{p}" for p in path)


@dataclass(frozen=True)
class Report:
    """One report entry."""

    kind: str
    message: str
    path: PathT | None = None
    line: int | None = None
    column: int | None = None

    @property
    def is_error(self) -> bool:
        return self.kind == ERROR

    def __str__(self) -> str:
        where = []
        if self.path is not None:
            where.append(format_path(self.path))
        if self.line is not None:
            where.append(f"line {self.line} col {self.column}")
        if not where:
            return f"{self.kind}: {self.message}"
        return f"{self.kind} at {', '.join(where)}: {self.message}"


def has_errors(reports: Iterable[Report]) -> bool:
    return any(r.is_error for r in reports)


def format_reports(reports: Iterable[Report]) -> str:
    """Raw report lines, one per entry."""
    return "".join(f"{r}\n" for r in reports)
