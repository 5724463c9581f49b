"""The boot matrix's reports: ``junit.xml`` (one testcase per boot path) and ``summary.md``, both written
atomically (a reader never sees half a file).

JUnit layout (what CI systems read): one ``<testsuite name="boot-test">`` with a ``<testcase>`` per path,
``classname`` = the target, ``name`` = the path name (``usb/uefi/usb-disk``), ``time`` in seconds; a path
whose checks failed has a ``<failure>`` (message: the first failed check or the boot's failure reason),
one that could not run (no runner, build failed, harness error) an ``<error>``; ``<system-out>`` lists the
checks and the serial log's path.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from coreos_infra.fsutil import write_atomic


@dataclass
class PathResult:
    """How one boot path went."""

    name: str  # <target>/<firmware>/<scenario>
    target: str
    status: str  # "pass", "fail" (checks failed or the boot failed) or "error" (could not run)
    seconds: float = 0.0
    passed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    not_applicable: list[str] = field(default_factory=list)
    message: str = ""  # why it failed or errored (one line)
    serial_log: Path | None = None

    @property
    def ok(self) -> bool:
        return self.status == "pass"


def junit_xml(results: Sequence[PathResult], *, suite: str = "boot-test") -> bytes:
    failures = sum(r.status == "fail" for r in results)
    errors = sum(r.status == "error" for r in results)
    root = ET.Element("testsuites")
    ts = ET.SubElement(
        root,
        "testsuite",
        name=suite,
        tests=str(len(results)),
        failures=str(failures),
        errors=str(errors),
        skipped="0",
        time=f"{sum(r.seconds for r in results):.1f}",
    )
    for r in results:
        case = ET.SubElement(ts, "testcase", classname=r.target, name=r.name, time=f"{r.seconds:.1f}")
        log = f"serial log: {r.serial_log}" if r.serial_log else "serial log: none (QEMU did not start)"
        if r.status != "pass":
            tag = "failure" if r.status == "fail" else "error"
            detail = "\n".join([r.message, *(f"FAILED {f}" for f in r.failed), log])
            ET.SubElement(case, tag, message=f"{r.message} ({log})", type=r.status).text = detail
        out = [*(f"PASSED {p}" for p in r.passed), *(f"FAILED {f}" for f in r.failed),
               *(f"NOT APPLICABLE {n}" for n in r.not_applicable), log]  # fmt: skip
        ET.SubElement(case, "system-out").text = "\n".join(out)
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def summary_markdown(results: Sequence[PathResult], *, title: str = "Boot test") -> str:
    n_pass = sum(r.ok for r in results)
    lines = [
        f"# {title}: {n_pass}/{len(results)} boot paths passed",
        "",
        "| path | result | seconds | checks passed | failed | not applicable | serial log |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for r in results:
        result = r.status.upper() + (f": {_cell(r.message)}" if r.message and not r.ok else "")
        log = f"`{r.serial_log}`" if r.serial_log else "-"
        lines.append(f"| `{r.name}` | {result} | {r.seconds:.1f} | {len(r.passed)} | {len(r.failed)} | "
                     f"{len(r.not_applicable)} | {log} |")  # fmt: skip
    failing = [r for r in results if not r.ok]
    if failing:
        lines += ["", "## Failures", ""]
        for r in failing:
            lines.append(f"- `{r.name}`: {_cell(r.message)}")
            lines += [f"  - FAILED {_cell(f)}" for f in r.failed]
    na = [(r.name, n) for r in results for n in r.not_applicable]
    if na:
        lines += ["", "## Not applicable on the fixture OS", ""]
        lines += [f"- `{name}`: {_cell(n)}" for name, n in na]
    return "\n".join(lines) + "\n"


def write_reports(results: Sequence[PathResult], out_dir: Path) -> tuple[Path, Path]:
    """Write ``junit.xml`` and ``summary.md`` into ``out_dir`` atomically; return their paths."""
    junit, summary = out_dir / "junit.xml", out_dir / "summary.md"
    write_atomic(junit, junit_xml(results))
    write_atomic(summary, summary_markdown(results).encode())
    return junit, summary
