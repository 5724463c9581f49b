"""The whole nightly job as ``invoke nightly`` and ``invoke nightly-report`` run it."""

from __future__ import annotations

import glob
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from coreos_infra.errors import CoreosInfraError
from coreos_infra.nightly import report
from coreos_infra.nightly.boot import BootTester, QemuBootTester, StaticTester
from coreos_infra.nightly.matrix import select_items
from coreos_infra.nightly.publisher import Publisher, open_publisher
from coreos_infra.nightly.runner import ItemResult, NightlyOptions, run_nightly
from coreos_infra.nightly.shard import parse_shard, shard_items
from coreos_infra.pipeline import Source
from coreos_infra.recipes import load_project


@dataclass(frozen=True)
class NightlyJob:
    root: Path
    source: Source
    cache_dir: Path
    out_root: Path
    report_dir: Path
    sites: tuple[str, ...] = ()
    hosts: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()
    shard: str = ""  # "I/N"; empty: everything
    publish: bool = False
    store: str | None = None
    endpoint_url: str | None = None
    keep: int = 3
    jobs: int = 1
    tester: str = "qemu"  # qemu | static
    boot_timeout: float = 600.0
    force: bool = False
    keys_dir: Path | None = None  # boot-test SSH keys of the sites without one (artifacts/keys)
    step_summary: Path | None = None  # $GITHUB_STEP_SUMMARY
    publisher: Publisher | None = field(default=None, compare=False)  # overrides publish/store


@dataclass(frozen=True)
class JobResult:
    summary: report.Summary
    files: report.ReportFiles
    pruned: tuple[str, ...] = ()


def make_tester(name: str, timeout: float) -> BootTester:
    if name == "qemu":
        return QemuBootTester(timeout=timeout)
    if name == "static":
        return StaticTester()
    raise CoreosInfraError(f"--tester {name!r}: expected qemu or static")


def run_job(job: NightlyJob, on_result: Callable[[ItemResult], None] | None = None) -> JobResult:
    """Select and shard the matrix, run it, publish; unsharded runs also write indexes and prune."""
    tester = make_tester(job.tester, job.boot_timeout)
    project = load_project(job.root)
    shard = parse_shard(job.shard) if job.shard else None
    items = shard_items(select_items(project, sites=job.sites, hosts=job.hosts, targets=job.targets), shard)
    pub = job.publisher
    if pub is None and job.publish:  # before anything is built: a misconfigured store fails at once
        pub = open_publisher(job.store, root=job.root, endpoint_url=job.endpoint_url)
    options = NightlyOptions(root=job.root, source=job.source, cache_dir=job.cache_dir,
                             out_root=job.out_root, report_dir=job.report_dir, jobs=job.jobs,
                             force=job.force, keys_dir=job.keys_dir)  # fmt: skip
    try:
        results = run_nightly(
            items, options, project=project, tester=tester, publisher=pub, on_result=on_result
        )
        pruned: tuple[str, ...] = ()
        if pub is not None and shard is None:
            pub.write_indexes()
            pruned = tuple(pub.prune(job.keep))
    finally:
        if pub is not None and job.publisher is None:
            pub.close()  # type: ignore[attr-defined]
    summary = report.make_summary(results, str(shard) if shard else "all")
    files = report.write_reports(summary, job.report_dir, step_summary=job.step_summary)
    return JobResult(summary, files, pruned)


def expand_summaries(text: str) -> list[Path]:
    """Comma- or space-separated paths and glob patterns → paths (a pattern matching nothing is an error)."""
    paths: list[Path] = []
    for pattern in text.replace(",", " ").split():
        if glob.has_magic(pattern):
            found = sorted(glob.glob(pattern))
            if not found:
                raise CoreosInfraError(f"{pattern}: no summary.json matches")
            paths += [Path(p) for p in found]
        else:
            paths.append(Path(pattern))
    return paths


def merge_job(
    paths: Sequence[Path],
    report_dir: Path,
    *,
    root: Path,
    store: str | None = None,
    endpoint_url: str | None = None,
    keep: int = 3,
    step_summary: Path | None = None,
    publisher: Publisher | None = None,
) -> JobResult:
    """The final job of a sharded nightly: merge the shards' reports, then (with a store) index and prune."""
    summary = report.merge(paths)
    pub = publisher or (open_publisher(store, root=root, endpoint_url=endpoint_url) if store else None)
    pruned: tuple[str, ...] = ()
    if pub is not None:
        pub.write_indexes()
        pruned = tuple(pub.prune(keep))
    files = report.write_reports(summary, report_dir, step_summary=step_summary)
    return JobResult(summary, files, pruned)
