"""Butane's default ("pretty") report format: each entry with the YAML lines around it and a caret run."""

from __future__ import annotations

from coreos_infra.ignition.report import Report, format_path


def _caret_len(line: str, col: int) -> int:
    """Bytes from the column to the next whitespace (Butane slices the line as bytes)."""
    rest = line.encode("utf-8", "surrogateescape")[col - 1 :].decode("utf-8", "surrogateescape")
    for i, ch in enumerate(rest):
        if ch.isspace():
            return len(rest[:i].encode("utf-8", "surrogateescape"))
    return len(rest.encode("utf-8", "surrogateescape"))


def format_entry(report: Report, source: str, filename: str) -> str:
    lines = source.split("\n")
    if (
        report.line is None
        or report.column is None
        or not 1 <= report.line <= len(lines)
        or not 1 <= report.column <= len(lines[report.line - 1].encode("utf-8", "surrogateescape"))
    ):
        return str(report) + "\n"
    head = report.kind + (f"[{format_path(report.path)}]" if report.path is not None else "") + ":"
    first = max(report.line - 2, 1)
    last = min(report.line + 2, len(lines))
    width = len(str(last))
    gutter = " " * (width + 2) + "|"
    out = [head, f"  --> {filename}:{report.line}:{report.column}", gutter]
    for n in range(first, last + 1):
        text = lines[n - 1] if n - 1 < len(lines) else ""
        out.append(f" {n:>{width}} | {text}")
        if n == report.line:
            carets = "^" * _caret_len(text, report.column)  # may be empty, as in Butane
            out.append(f"{gutter} {' ' * (report.column - 1)}{carets} {report.message}")
    out.append(gutter)
    return "\n".join(out) + "\n"


def format_pretty(reports: list[Report], source: str, filename: str) -> str:
    """All entries, separated by blank lines."""
    return "\n".join(format_entry(r, source, filename) for r in reports)
