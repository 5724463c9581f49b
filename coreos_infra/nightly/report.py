"""The nightly's reports in ``artifacts/nightly/``: summary.json, summary.md and junit.xml.

``summary.json`` is ``{"format": 1, "generated": ..., "shards": [...], "items": [...]}`` with one
record per (site, host, target) (:class:`~coreos_infra.nightly.runner.ItemResult`). Each shard writes
its own; :func:`merge` joins them (an item in two summaries is an error: the shards overlapped).
"""

from __future__ import annotations

import datetime
import json
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from coreos_infra.errors import CoreosInfraError
from coreos_infra.fsutil import write_atomic
from coreos_infra.nightly.runner import ItemResult

FORMAT = 1


@dataclass(frozen=True)
class Summary:
    items: list[ItemResult]
    shards: list[str]  # "1/2", ... ("all" for an unsharded run)
    generated: str = ""

    @property
    def failed(self) -> list[ItemResult]:
        return [i for i in self.items if i.status == "failed"]

    def counts(self) -> dict[str, int]:
        out = {"passed": 0, "failed": 0, "skipped": 0}
        for i in self.items:
            out[i.status] = out.get(i.status, 0) + 1
        return out


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def make_summary(items: Sequence[ItemResult], shard: str = "all") -> Summary:
    return Summary(sorted(items, key=lambda i: i.key), [shard], _now())


def to_json(summary: Summary) -> str:
    doc = {
        "format": FORMAT,
        "generated": summary.generated,
        "shards": summary.shards,
        "counts": summary.counts(),
        "items": [i.to_json() for i in summary.items],
    }
    return json.dumps(doc, indent=2) + "\n"


def load_summary(path: Path) -> Summary:
    try:
        doc = json.loads(path.read_text())
    except OSError as e:
        raise CoreosInfraError(f"{path}: cannot read the nightly summary: {e.strerror}") from None
    except ValueError as e:
        raise CoreosInfraError(f"{path}: not JSON: {e}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("items"), list):
        raise CoreosInfraError(f'{path}: not a nightly summary (no "items" list)')
    if doc.get("format", FORMAT) != FORMAT:
        raise CoreosInfraError(f"{path}: summary format {doc.get('format')!r}, expected {FORMAT}")
    items = []
    for n, raw in enumerate(doc["items"]):
        if not isinstance(raw, dict):
            raise CoreosInfraError(f"{path}: items[{n}] is not an object")
        items.append(ItemResult.from_json(raw, f"{path}: items[{n}]"))
    return Summary(items, [str(s) for s in doc.get("shards") or []], str(doc.get("generated", "")))


def merge(paths: Sequence[Path]) -> Summary:
    """The union of the shards' summaries; the same item in two of them is an error."""
    if not paths:
        raise CoreosInfraError("nightly-report: give at least one summary.json")
    seen: dict[str, Path] = {}
    items: list[ItemResult] = []
    shards: list[str] = []
    for path in paths:
        s = load_summary(path)
        shards += s.shards
        for item in s.items:
            if item.key in seen:
                raise CoreosInfraError(
                    f"{path}: item {item.key} is also in {seen[item.key]} (the shards overlap)"
                )
            seen[item.key] = path
            items.append(item)
    return Summary(sorted(items, key=lambda i: i.key), shards, _now())


# ----------------------------------------------------------------------------------- Markdown, JUnit


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


_ICON = {"passed": "✅ passed", "failed": "❌ failed", "skipped": "⏭️ skipped"}


def to_markdown(summary: Summary) -> str:
    c = summary.counts()
    lines = [
        "## Nightly images",
        "",
        f"{len(summary.items)} images (shards {', '.join(summary.shards) or '-'}): "
        f"{c['passed']} passed, {c['failed']} failed, {c['skipped']} skipped (up to date).",
        "",
        "| site | host | target | status | build ID | failed step | time | download |",
        "|---|---|---|---|---|---|---:|---|",
    ]
    for i in summary.items:
        lines.append(
            f"| {i.site} | {i.host} | {i.target} | {_ICON.get(i.status, i.status)} | "
            f"`{i.build_id[:16]}` | {i.failed_step or ''} | {i.seconds:.1f} s | "
            f"{_cell(i.url) if i.url else ''} |"
        )
    failed = summary.failed
    if failed:
        lines += ["", "### Failures", ""]
        lines += [f"- **{i.key}** at `{i.failed_step}`: {_cell(i.error)}" for i in failed]
    return "\n".join(lines) + "\n"


def to_junit(summary: Summary) -> bytes:
    """JUnit XML: one testsuite per site, one testcase (``host/target``) per item."""
    c = summary.counts()
    total = sum(i.seconds for i in summary.items)
    root = ET.Element("testsuites", name="nightly", tests=str(len(summary.items)),
                      failures=str(c["failed"]), errors="0", skipped=str(c["skipped"]),
                      time=f"{total:.3f}")  # fmt: skip
    for site in sorted({i.site for i in summary.items}):
        items = [i for i in summary.items if i.site == site]
        suite = ET.SubElement(
            root, "testsuite", name=f"nightly.{site}", tests=str(len(items)),
            failures=str(sum(i.status == "failed" for i in items)), errors="0",
            skipped=str(sum(i.status == "skipped" for i in items)),
            time=f"{sum(i.seconds for i in items):.3f}", timestamp=summary.generated.removesuffix("Z"),
        )  # fmt: skip
        for i in items:
            case = ET.SubElement(suite, "testcase", classname=f"nightly.{site}.{i.host}", name=i.target,
                                 time=f"{i.seconds:.3f}")  # fmt: skip
            if i.status == "failed":
                failure = ET.SubElement(case, "failure", message=f"{i.failed_step}: {i.error}"[:500],
                                        type=str(i.failed_step))  # fmt: skip
                failure.text = i.error
            elif i.status == "skipped":
                ET.SubElement(case, "skipped", message="up to date: nothing to build, test or upload")
            out = [f"build ID {i.build_id}", f"steps: {', '.join(i.work) or 'none'}"]
            out += [f"boot test: {i.boot}"] if i.boot else []
            out += [f"download: {i.url}"] if i.url else []
            out += [f"log: {i.log}"] if i.log else []
            ET.SubElement(case, "system-out").text = "\n".join(out)
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


@dataclass(frozen=True)
class ReportFiles:
    json: Path
    markdown: Path
    junit: Path


def write_reports(summary: Summary, report_dir: Path, *, step_summary: Path | None = None) -> ReportFiles:
    """Write the three reports atomically; append the Markdown to ``step_summary`` (GitHub Actions)."""
    files = ReportFiles(report_dir / "summary.json", report_dir / "summary.md", report_dir / "junit.xml")
    markdown = to_markdown(summary)
    write_atomic(files.json, to_json(summary).encode())
    write_atomic(files.markdown, markdown.encode())
    write_atomic(files.junit, to_junit(summary))
    if step_summary is not None:
        with step_summary.open("a", encoding="utf-8") as f:
            f.write(markdown + "\n")
    return files
