"""Run the nightly over its items: fetch → build → boot-test → publish (only what passed).

Each item runs its steps in order and stops at the first that fails; the failure (the step, the error)
is recorded and the other items go on. Work already done is not redone:

- build: :func:`coreos_infra.pipeline.build` skips a build whose meta.json has the same build ID, and an
  item whose build ID the store already holds is not built at all (status ``skipped``);
- boot-test: a pass is recorded beside the build (``nightly-boot.json``: build ID, tester and the
  artifacts' SHA-256), so the same bytes are not booted again;
- publish: nothing is uploaded for a build the store already holds.

An item where no step had work to do is ``skipped``; one that did work and passed every step is
``passed``. Per-item logs go to ``<report_dir>/logs/<site>-<host>-<target>.log``, serial consoles beside.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from coreos_infra import fetch
from coreos_infra.errors import CoreosInfraError
from coreos_infra.fsutil import write_atomic
from coreos_infra.nightly.boot import BootTester
from coreos_infra.nightly.matrix import Item
from coreos_infra.nightly.publisher import Publisher
from coreos_infra.pipeline import BuildOutcome, BuildPlan, Source, build, planned_build_id
from coreos_infra.recipes import Project

LOG = logging.getLogger("coreos_infra.nightly")

STEPS = ("fetch", "build", "boot-test", "publish")
BOOT_RECORD = "nightly-boot.json"


@dataclass(frozen=True)
class NightlyOptions:
    root: Path  # project checkout (recipes/, overlays/)
    source: Source
    cache_dir: Path
    out_root: Path  # artifacts/build
    report_dir: Path  # artifacts/nightly
    jobs: int = 1
    force: bool = False  # rebuild and boot-test even when up to date
    keys_dir: Path | None = None  # the sites' throw-away boot-test SSH keys (BuildPlan.keys_dir)


@dataclass
class ItemResult:
    """One row of the nightly report."""

    site: str
    host: str
    target: str
    status: str = "failed"  # passed | failed | skipped
    build_id: str = ""
    base_release: str = ""
    failed_step: str | None = None
    error: str = ""
    durations: dict[str, float] = field(default_factory=dict)  # step -> seconds
    work: list[str] = field(default_factory=list)  # steps that did work (built, booted, uploaded)
    url: str = ""
    boot: str = ""  # the boot test's summary line
    log: str = ""
    serial_log: str = ""

    @property
    def key(self) -> str:
        return f"{self.site}/{self.host}/{self.target}"

    @property
    def seconds(self) -> float:
        return sum(self.durations.values())

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any], source: str) -> ItemResult:
        try:
            return cls(**data)
        except TypeError as e:
            raise CoreosInfraError(f"{source}: not a nightly item record ({e})") from None


class _ItemLog(logging.Handler):
    """Copies the records of one thread (one item) into that item's log file."""

    def __init__(self, path: Path) -> None:
        super().__init__(logging.DEBUG)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.stream = path.open("w", encoding="utf-8")
        self.thread = threading.get_ident()
        self.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            self.stream.write(self.format(record) + "\n")
            self.stream.flush()

    def close(self) -> None:
        self.stream.close()
        super().close()


@contextmanager
def _item_log(path: Path) -> Iterator[None]:
    handler = _ItemLog(path)
    logger = logging.getLogger("coreos_infra")
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        handler.close()


@contextmanager
def _info_level() -> Iterator[None]:
    """Let INFO records reach the item logs for the run (the caller's handlers filter for themselves)."""
    logger = logging.getLogger("coreos_infra")
    previous = logger.level
    if previous == logging.NOTSET or previous > logging.INFO:
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.setLevel(previous)


class _StepFailed(Exception):
    def __init__(self, step: str, message: str) -> None:
        super().__init__(message)
        self.step = step
        self.message = message


@contextmanager
def _step(result: ItemResult, name: str) -> Iterator[None]:
    start = time.monotonic()
    try:
        yield
    except _StepFailed:
        raise
    except CoreosInfraError as e:
        raise _StepFailed(name, str(e)) from e
    except Exception as e:  # a bug or an OS error in one item must not stop the others
        LOG.error("%s: %s failed unexpectedly\n%s", result.key, name, traceback.format_exc())
        raise _StepFailed(name, f"{type(e).__name__}: {e}") from e
    finally:
        result.durations[name] = round(time.monotonic() - start, 3)


def _boot_record(outcome: BuildOutcome) -> Path:
    return outcome.meta_path.parent / BOOT_RECORD


def _passed_before(outcome: BuildOutcome, tester: BootTester) -> bool:
    try:
        record = json.loads(_boot_record(outcome).read_text())
    except (OSError, ValueError):
        return False
    return (
        isinstance(record, dict)
        and record.get("build_id") == outcome.rendered.build_id
        and record.get("tester") == tester.name
        and record.get("ok") is True
        and record.get("artifacts") == _artifact_hashes(outcome)
    )


def _artifact_hashes(outcome: BuildOutcome) -> dict[str, str]:
    """What the boot test tested: the SHA-256 of every artifact (a rebuild to the same bytes keeps it)."""
    return {a["name"]: a["sha256"] for a in outcome.meta.get("artifacts", [])}


def run_item(
    item: Item,
    options: NightlyOptions,
    *,
    project: Project,
    tester: BootTester,
    publisher: Publisher | None,
) -> ItemResult:
    """Run every step of one item; never raises for a failure of the item itself."""
    result = ItemResult(item.site, item.host, item.target)
    log_path = options.report_dir / "logs" / f"{item.name}.log"
    result.log = str(log_path)
    with _item_log(log_path):
        LOG.info("‣ nightly %s", item.key)
        try:
            _run_steps(item, options, project, tester, publisher, result)
        except _StepFailed as e:
            result.status, result.failed_step, result.error = "failed", e.step, e.message
            LOG.error("✗ %s failed at %s: %s", item.key, e.step, e.message)
        else:
            result.status = "passed" if result.work else "skipped"
            LOG.info("✓ %s %s", item.key, result.status)
    return result


def _run_steps(
    item: Item,
    options: NightlyOptions,
    project: Project,
    tester: BootTester,
    publisher: Publisher | None,
    result: ItemResult,
) -> None:
    with _step(result, "fetch"):
        recipe = project.target(item.target)
        fetched = fetch.fetch_artifacts(
            base_url=options.source.base_url, stream=recipe.stream, arch=recipe.arch,
            platform=recipe.base.platform, fmt=recipe.base.format, release=recipe.release or None,
            cache_dir=options.cache_dir, keyring=options.source.keyring,
            insecure=options.source.insecure, bundled_keys=options.source.bundled_keys,
        )  # fmt: skip
        result.base_release = fetched.release
        plan = BuildPlan(root=options.root, target=item.target, site=item.site, host=item.host,
                         source=options.source, cache_dir=options.cache_dir, out_root=options.out_root,
                         force=options.force, keys_dir=options.keys_dir)  # fmt: skip
        result.build_id = planned_build_id(plan, project, fetched.release)
    if publisher is not None and not options.force and publisher.already_published(result.build_id):
        LOG.info("  build %s is already in the store: nothing to do", result.build_id[:16])
        return
    with _step(result, "build"):
        outcome = build(plan, project)
        result.build_id = outcome.rendered.build_id
        if not outcome.cached:
            result.work.append("build")
    with _step(result, "boot-test"):
        if not options.force and _passed_before(outcome, tester):
            LOG.info("  boot test passed before for build %s", result.build_id[:16])
            result.boot = "passed before (same build ID)"
        else:
            _boot_record(outcome).unlink(missing_ok=True)
            check = tester(outcome, options.report_dir / "logs")
            result.work.append("boot-test")
            result.boot = check.summary
            result.serial_log = str(check.serial_log or "")
            if not check.ok:
                failed = "; ".join(check.failed[:5]) + (" ..." if len(check.failed) > 5 else "")
                raise _StepFailed("boot-test", f"{check.summary}: {failed}" if failed else check.summary)
            record = {"build_id": result.build_id, "tester": tester.name, "ok": True,
                      "artifacts": _artifact_hashes(outcome)}  # fmt: skip
            write_atomic(_boot_record(outcome), (json.dumps(record, indent=2) + "\n").encode())
    if publisher is None:
        return
    with _step(result, "publish"):
        if not publisher.already_published(result.build_id):
            result.url = publisher.publish(outcome.meta_path.parent)
            result.work.append("publish")


def run_nightly(
    items: Sequence[Item],
    options: NightlyOptions,
    *,
    project: Project,
    tester: BootTester,
    publisher: Publisher | None = None,
    on_result: Callable[[ItemResult], None] | None = None,
) -> list[ItemResult]:
    """Run every item (``options.jobs`` at a time); results in the order of ``items``."""

    def one(item: Item) -> ItemResult:
        r = run_item(item, options, project=project, tester=tester, publisher=publisher)
        if on_result is not None:
            on_result(r)
        return r

    with _info_level():
        if options.jobs <= 1:
            return [one(i) for i in items]
        with ThreadPoolExecutor(max_workers=options.jobs, thread_name_prefix="nightly") as pool:
            return list(pool.map(one, items))
