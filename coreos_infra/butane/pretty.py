"""Butane's default ("pretty") report format: each entry with the YAML lines around it and a caret run."""

from __future__ import annotations

from coreos_infra.ignition.report import Report, format_path


def _caret_len(line: str, col: int) -> int:
    rest = line[col - 1 :]
    n = 0
    for ch in rest:
        if ch.isspace():
            break
        n += 1
    return max(n, 1)


def format_entry(report: Report, source: str, filename: str) -> str:
    if report.line is None or report.column is None:
        return str(report) + "\n"
    lines = source.split("\n")
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
            carets = "^" * _caret_len(text, report.column)
            out.append(f"{gutter} {' ' * (report.column - 1)}{carets} {report.message}")
    out.append(gutter)
    return "\n".join(out) + "\n"


def format_pretty(reports: list[Report], source: str, filename: str) -> str:
    """All entries, separated by blank lines."""
    return "\n".join(format_entry(r, source, filename) for r in reports)
