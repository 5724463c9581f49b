"""The nightly job (fetch, build, boot-test, publish every item) and the merge of its shards."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from invoke import Context, Exit, task

from coreos_infra.exits import exits_on_errors

if TYPE_CHECKING:
    from coreos_infra.nightly.job import JobResult


_NIGHTLY_HELP = {
    "store": "store URL (s3://BUCKET/PREFIX, file:///DIR or a directory); default: the site's",
    "endpoint_url": "S3 endpoint of a non-AWS server (else $AWS_ENDPOINT_URL)",
    "keep": "builds to keep per (site, host, target) when pruning",
}


def _step_summary() -> Path | None:
    """GitHub Actions' job summary file, when running there."""
    import os

    path = os.environ.get("GITHUB_STEP_SUMMARY")
    return Path(path) if path else None


def _print_nightly(result: JobResult) -> None:
    from coreos_infra.summary import nightly_lines

    print("\n".join(nightly_lines(result)))
    if result.summary.failed:
        raise Exit(code=1)


@task(
    auto_shortflags=False,
    help={
        "offline": "use the built-in offline fixture mirror instead of the official server",
        "sites": "comma-separated sites (default: all in recipes/sites/)",
        "hosts": "comma-separated hosts (default: every host of the chosen sites)",
        "targets": "comma-separated targets (default: every recipe in recipes/)",
        "shard": "run only shard I of N (e.g. 1/4): an even split, stable when hosts are added",
        "publish": "publish what passed to the store (then write indexes and prune, unless --shard)",
        **_NIGHTLY_HELP,
        "jobs": "items to run at the same time",
        "tester": "boot test: qemu (boot and check the config) or static (no VM: hashes and config only)",
        "boot_timeout": "seconds to wait for each booted system's report",
        "report_dir": "where summary.json, summary.md, junit.xml and logs go (default artifacts/nightly)",
        "force": "rebuild and boot-test even what is up to date",
    },
)
@exits_on_errors
def nightly(
    c: Context,
    offline: bool = False,
    sites: str = "",
    hosts: str = "",
    targets: str = "",
    shard: str = "",
    publish: bool = False,
    store: str = "",
    endpoint_url: str = "",
    keep: int = 3,
    jobs: int = 1,
    tester: str = "qemu",
    boot_timeout: float = 600.0,
    report_dir: str = "",
    force: bool = False,
) -> None:
    """Fetch, build, boot-test and publish (only what passed) every (site, host, target); then prune.

    One failure does not stop the others; exit code 1 if any item failed. Reports: summary.json,
    summary.md and junit.xml in artifacts/nightly/ (and $GITHUB_STEP_SUMMARY on GitHub Actions).
    """
    from coreos_infra.fetch import stream_base_url_default
    from coreos_infra.log import setup_logging
    from coreos_infra.nightly.job import NightlyJob, run_job
    from coreos_infra.nightly.matrix import split_names
    from coreos_infra.paths import artifacts_dir, cache_dir, project_root
    from coreos_infra.pipeline import Source, offline_source
    from coreos_infra.summary import nightly_item_line

    setup_logging()
    root = project_root()

    job = NightlyJob(
        root=root,
        source=offline_source() if offline else Source(base_url=stream_base_url_default()),
        cache_dir=cache_dir(root),
        out_root=artifacts_dir(root) / "build",
        report_dir=Path(report_dir) if report_dir else artifacts_dir(root) / "nightly",
        sites=split_names(sites), hosts=split_names(hosts), targets=split_names(targets),
        shard=shard, publish=publish, store=store or None, endpoint_url=endpoint_url or None,
        keep=keep, jobs=jobs, tester=tester, boot_timeout=boot_timeout, force=force,
        keys_dir=artifacts_dir(root) / "keys", step_summary=_step_summary(),
    )  # fmt: skip
    result = run_job(job, on_result=lambda r: print(nightly_item_line(r), flush=True))
    _print_nightly(result)


@task(
    auto_shortflags=False,
    help={
        "summaries": "the shards' summary.json files: comma- or space-separated paths or glob patterns",
        "out": "directory for the merged summary.json, summary.md, junit.xml (default artifacts/nightly)",
        **_NIGHTLY_HELP,
    },
)
@exits_on_errors
def nightly_report(c: Context, summaries: str, out: str = "", store: str = "", endpoint_url: str = "",
                   keep: int = 3) -> None:  # fmt: skip
    """Merge the shards' summary.json files; with --store also write the indexes once and prune.

    Example: invoke nightly-report "shards/*/summary.json" --store s3://bucket/images
    """
    from coreos_infra.nightly.job import expand_summaries, merge_job
    from coreos_infra.paths import artifacts_dir, project_root

    result = merge_job(
        expand_summaries(summaries),
        Path(out) if out else artifacts_dir() / "nightly",
        root=project_root(), store=store or None, endpoint_url=endpoint_url or None, keep=keep,
        step_summary=_step_summary(),
    )  # fmt: skip
    _print_nightly(result)
