"""The nightly on real builds from the offline fixture mirror: shards, re-runs, failures, the tasks."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from nightly_testlib import index_keys, published_items, store_files, store_publisher

from coreos_infra import pipeline
from coreos_infra.fixtures import FixtureMirror
from coreos_infra.nightly.job import NightlyJob, merge_job, run_job
from coreos_infra.nightly.matrix import select_items
from coreos_infra.nightly.shard import Shard, shard_items
from coreos_infra.recipes import load_project

ROOT = Path(__file__).resolve().parent.parent
HOSTS = ("dns1", "dns2")
TARGETS = ("live", "usb")  # the quickest builds (ISO customize, about a second each)


@pytest.fixture(scope="module")
def source(fixture_mirror: FixtureMirror) -> pipeline.Source:
    return pipeline.offline_source(fixture_mirror.entry.parent)


def _job(tmp: Path, source: pipeline.Source, **kw: object) -> NightlyJob:
    defaults: dict[str, object] = dict(
        root=ROOT, source=source, cache_dir=tmp / "cache", out_root=tmp / "build",
        report_dir=tmp / "nightly", hosts=HOSTS, targets=TARGETS, tester="static",
    )  # fmt: skip
    defaults.update(kw)
    return NightlyJob(**defaults)  # type: ignore[arg-type]


def _metas(tmp: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in sorted((tmp / "build").rglob("meta.json"))}


def test_two_shards_cover_the_matrix_once_rerun_does_no_work(
    tmp_path: Path, source: pipeline.Source
) -> None:
    store_dir = tmp_path / "store"
    store = store_publisher(ROOT, store_dir)
    matrix = {i.key for i in select_items(load_project(ROOT), hosts=HOSTS, targets=TARGETS)}
    assert len(matrix) == 4
    shards = []
    for n in (1, 2):
        job = _job(tmp_path, source, shard=f"{n}/2", publisher=store, report_dir=tmp_path / f"shard{n}")
        shards.append(run_job(job))
    keys = [[i.key for i in r.summary.items] for r in shards]
    assert sorted(keys[0] + keys[1]) == sorted(matrix)  # exactly once: no item twice, none missing
    assert all(keys) and not set(keys[0]) & set(keys[1])
    items = [i for r in shards for i in r.summary.items]
    assert {i.status for i in items} == {"passed"}, [(i.key, i.error) for i in items]
    assert all(i.build_id and i.url and i.work == ["build", "boot-test", "publish"] for i in items)
    assert published_items(store_dir) == matrix
    assert index_keys(store_dir) == []  # shards never write indexes: the final job does, once

    # The final job: merged report = union of the shards' reports; indexes written once.
    merged = merge_job([r.files.json for r in shards], tmp_path / "merged", root=ROOT, publisher=store)
    union = [i for r in shards for i in json.loads(r.files.json.read_text())["items"]]
    assert sorted(json.dumps(i, sort_keys=True) for i in union) == sorted(
        json.dumps(i.to_json(), sort_keys=True) for i in merged.summary.items
    )
    site_index = json.loads((store_dir / "sites" / "lab" / "index.json").read_text())
    assert {f"lab/{h}/{t}" for h, v in site_index["hosts"].items() for t in v["targets"]} == matrix
    streams = ["streams/lab-dns1.json", "streams/lab-dns2.json"]
    latest = sorted(f"sites/{k}/latest.json" for k in matrix)
    assert index_keys(store_dir) == ["index.html", *latest, "sites/lab/index.json", *streams]
    store.close()
    assert json.loads((tmp_path / "merged" / "summary.json").read_text())["shards"] == ["1/2", "2/2"]

    # Nothing changed: no build work, no boot test, no uploads (the store already has every build ID).
    metas, objects = _metas(tmp_path), store_files(store_dir)
    again = store_publisher(ROOT, store_dir)
    rerun = run_job(_job(tmp_path, source, publisher=again))
    again.close()
    assert {i.status for i in rerun.summary.items} == {"skipped"}
    assert store_files(store_dir) == objects  # no object (nor index) rewritten
    assert all(i.work == [] and "build" not in i.durations for i in rerun.summary.items)
    assert _metas(tmp_path) == metas

    # Without a store: the builds are up to date and passed their boot test before; still no work.
    local = run_job(_job(tmp_path, source, jobs=2))  # two items at a time
    assert {i.status for i in local.summary.items} == {"skipped"}
    assert all(i.work == [] and i.boot == "passed before (same build ID)" for i in local.summary.items)
    assert _metas(tmp_path) == metas


def test_same_bytes_are_not_boot_tested_again(tmp_path: Path, source: pipeline.Source) -> None:
    first = run_job(_job(tmp_path, source, hosts=("dns1",), targets=("pxe",)))
    assert first.summary.items[0].work == ["build", "boot-test"]
    record = json.loads(next((tmp_path / "build").rglob("nightly-boot.json")).read_text())
    assert record["ok"] is True and record["artifacts"]
    second = run_job(_job(tmp_path, source, hosts=("dns1",), targets=("pxe",))).summary.items[0]
    assert "boot-test" not in second.work and second.boot == "passed before (same build ID)"


def test_pxe_rerun_does_no_build_work(tmp_path: Path, source: pipeline.Source) -> None:
    for _ in range(2):
        item = run_job(_job(tmp_path, source, hosts=("dns1",), targets=("pxe",))).summary.items[0]
    assert item.work == [] and item.status == "skipped"


def test_a_failing_item_does_not_stop_the_others(tmp_path: Path, source: pipeline.Source) -> None:
    # A recipe pinned to a release the mirror does not have: it fails at fetch; the others go on.
    root = _project_copy(tmp_path, {"badiso": {"description": "broken on purpose", "kind": "iso",
                                               "arch": "x86_64", "stream": "stable",
                                               "base": {"platform": "metal", "format": "iso"},
                                               "release": "39.20230101.3.0", "options": {"mode": "live"},
                                               "overlays": ["base"]}})  # fmt: skip
    store = store_publisher(root, tmp_path / "store", unsigned=True)
    result = run_job(_job(tmp_path, source, root=root, hosts=("dns1",), targets=("badiso", "live"),
                          publisher=store))  # fmt: skip
    store.close()
    by_target = {i.target: i for i in result.summary.items}
    assert by_target["badiso"].status == "failed" and by_target["badiso"].failed_step == "fetch"
    assert "39.20230101.3.0" in by_target["badiso"].error
    assert by_target["live"].status == "passed"
    assert published_items(tmp_path / "store") == {"lab/dns1/live"}
    junit = result.files.junit.read_text()
    assert 'type="fetch"' in junit and "39.20230101.3.0" in junit


def _project_copy(tmp: Path, extra_recipes: dict[str, dict[str, object]]) -> Path:
    """A copy of the project's recipes and overlays with extra target recipes."""
    import yaml

    root = tmp / "project"
    shutil.copytree(ROOT / "recipes", root / "recipes")
    shutil.copytree(ROOT / "overlays", root / "overlays")
    for name, recipe in extra_recipes.items():
        (root / "recipes" / f"{name}.yaml").write_text(yaml.safe_dump(recipe))
    return root


@pytest.mark.boot
@pytest.mark.slow
def test_failing_boot_test_keeps_the_image_out_of_the_store(tmp_path: Path, source: pipeline.Source) -> None:
    # The same live ISO, but its kernel cannot start the initramfs (rdinit points nowhere): it builds
    # fine and fails its boot test in QEMU with a kernel panic.
    live = {"description": "live ISO that cannot boot", "kind": "iso", "arch": "x86_64", "stream": "stable",
            "base": {"platform": "metal", "format": "iso"},
            "options": {"mode": "live", "console": ["tty0", "ttyS0,115200n8"],
                        "live_karg_append": ["rdinit=/nonexistent", "panic=-1"]},
            "overlays": ["base", "network", "monitoring"]}  # fmt: skip
    root = _project_copy(tmp_path, {"badboot": live})
    store = store_publisher(root, tmp_path / "store", unsigned=True)
    job = _job(tmp_path, source, root=root, hosts=("dns1",), targets=("badboot", "live"), publisher=store,
               tester="qemu", boot_timeout=300.0, keys_dir=tmp_path / "keys")  # fmt: skip
    result = run_job(job)
    store.close()
    by_target = {i.target: i for i in result.summary.items}
    bad, good = by_target["badboot"], by_target["live"]
    assert bad.status == "failed" and bad.failed_step == "boot-test", bad
    assert bad.serial_log and Path(bad.serial_log).is_file()
    assert good.status == "passed" and good.boot.startswith("PASS"), good
    # with the site's throw-away boot-test key, the nightly ran the overlays' checks over SSH: the busybox
    # fixture OS passes the file checks and lists the `running` ones as not applicable
    assert (tmp_path / "keys" / "lab-boot-test").is_file()
    not_applicable = re.search(r"(\d+) not applicable", good.boot)
    assert not_applicable and int(not_applicable.group(1)) > 1, good.boot  # one line per check, not one
    assert good.serial_log and "FIXTURE-SSH-READY" in Path(good.serial_log).read_text(errors="replace")
    assert published_items(tmp_path / "store") == {"lab/dns1/live"}  # only what passed
    assert not any((tmp_path / "store").glob("sites/lab/dns1/badboot/*"))  # not even a partial upload


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A temporary directory with a short path (the demo key's gpg-agent socket must fit a Unix socket)."""
    path = Path(tempfile.mkdtemp(prefix="nightly-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_invoke_nightly_and_nightly_report(
    tmp_path: Path, short_tmp: Path, fixture_mirror: FixtureMirror
) -> None:
    # A project root of its own (COREOS_INFRA_ROOT) that shares the fixture mirror's cache; it signs with
    # its own throwaway demo key (generated by the first shard).
    root = _project_copy(short_tmp, {})
    (root / "artifacts" / "cache").mkdir(parents=True)
    (root / "artifacts" / "cache" / "fixtures").symlink_to(fixture_mirror.entry.parent)
    step = tmp_path / "step.md"
    env = {**os.environ, "COREOS_INFRA_ROOT": str(root), "GITHUB_STEP_SUMMARY": str(step)}

    def invoke(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "invoke", *args], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=600)  # fmt: skip

    items = select_items(load_project(root), hosts=["dns1"], targets=["live", "usb"])
    store = tmp_path / "store"
    summaries = []
    for n in (1, 2):
        out = tmp_path / f"shard{n}"
        r = invoke("nightly", "--offline", "--hosts", "dns1", "--targets", "live,usb", "--tester", "static",
                   "--shard", f"{n}/2", "--report-dir", str(out),
                   "--publish", "--store", str(store))  # fmt: skip
        assert r.returncode == 0, r.stdout + r.stderr
        got = [i["target"] for i in json.loads((out / "summary.json").read_text())["items"]]
        assert got == [i.target for i in shard_items(items, Shard(n, 2))]
        summaries.append(out / "summary.json")
    assert published_items(store) == {"lab/dns1/live", "lab/dns1/usb"} and index_keys(store) == []
    merged = tmp_path / "merged"
    r = invoke("nightly-report", str(tmp_path / "shard*" / "summary.json"), "--out", str(merged),
               "--store", str(store))  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 items (shards 1/2, 2/2): 2 passed, 0 failed" in r.stdout
    assert (merged / "junit.xml").is_file() and step.read_text().count("## Nightly images") == 3
    assert "streams/lab-dns1.json" in index_keys(store)
    latest = json.loads((store / "sites/lab/dns1/usb/latest.json").read_text())
    assert (store / latest["meta"]).is_file() and (store / latest["meta"]).with_name(
        "SHA256SUMS.sig"
    ).is_file()
