"""The nightly matrix, its sharding and its reports (no builds)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from coreos_infra.errors import CoreosInfraError
from coreos_infra.nightly import report
from coreos_infra.nightly.matrix import Item, select_items, split_names
from coreos_infra.nightly.runner import ItemResult
from coreos_infra.nightly.shard import Shard, assign, parse_shard, shard_items
from coreos_infra.recipes import load_project

ROOT = Path(__file__).resolve().parent.parent


def test_matrix_is_every_site_host_target_and_filters_narrow_it() -> None:
    project = load_project(ROOT)
    items = select_items(project)
    hosts = [h.name for s in project.sites.values() for h in s.hosts]
    assert len(items) == len(hosts) * len(project.targets) == len(set(items))
    assert Item("lab", "dns1", "rpi4") in items
    few = select_items(project, hosts=["dns2"], targets=split_names("pxe, metal"))
    assert few == [Item("lab", "dns2", "metal"), Item("lab", "dns2", "pxe")]
    assert select_items(project, sites=["lab"]) == items


@pytest.mark.parametrize(
    ("kw", "match"),
    [({"sites": ["nope"]}, "unknown site 'nope'"), ({"hosts": ["dns9"]}, "unknown host 'dns9'"),
     ({"targets": ["floppy"]}, "unknown target 'floppy'")],
)  # fmt: skip
def test_unknown_filter_names_are_errors(kw: dict[str, list[str]], match: str) -> None:
    with pytest.raises(CoreosInfraError, match=match):
        select_items(load_project(ROOT), **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["0/2", "3/2", "1", "a/b", "1/0", ""])
def test_bad_shard_specs_are_errors(text: str) -> None:
    with pytest.raises(CoreosInfraError, match="--shard"):
        parse_shard(text)


def _items(hosts: int, targets: int = 5) -> list[Item]:
    return [Item("site", f"h{h:03d}", f"t{t}") for h in range(hosts) for t in range(targets)]


@pytest.mark.parametrize("count", [1, 2, 3, 4, 7])
def test_shards_cover_the_matrix_exactly_once_and_evenly(count: int) -> None:
    items = _items(13)
    parts = [shard_items(items, Shard(i, count)) for i in range(1, count + 1)]
    flat = [i for p in parts for i in p]
    assert sorted(flat) == sorted(items) and len(flat) == len(set(flat))
    sizes = [len(p) for p in parts]
    assert max(sizes) - min(sizes) <= 1, sizes
    # Deterministic: independent of the input order.
    assert shard_items(list(reversed(items)), Shard(1, count)) == list(reversed(parts[0]))


def test_real_matrix_two_shards_cover_it_exactly_once() -> None:
    items = select_items(load_project(ROOT))
    a, b = shard_items(items, Shard(1, 2)), shard_items(items, Shard(2, 2))
    assert not set(a) & set(b) and sorted(a + b) == items and abs(len(a) - len(b)) <= 1


@pytest.mark.parametrize("count", [2, 4, 8])
def test_adding_a_host_moves_few_items(count: int) -> None:
    before = _items(40)
    after = before + [Item("site", "h019x", f"t{t}") for t in range(5)]  # sorts into the middle
    old, new = assign((i.key for i in before), count), assign((i.key for i in after), count)
    moved = sum(old[k] != new[k] for k in old)
    # Rendezvous hashing: an item moves only when new items fill its favourite shard; well under 1/N.
    assert moved <= len(before) / count / 2, (moved, len(before))
    # A modulo split (the obvious alternative) would move most items; measure it to show the difference.
    naive_old = {k: n % count for n, k in enumerate(sorted(old))}
    naive_new = {k: n % count for n, k in enumerate(sorted(new))}
    assert sum(naive_old[k] != naive_new[k] for k in old) > 2 * moved


def test_adding_a_shard_moves_about_one_in_n_plus_one() -> None:
    keys = [i.key for i in _items(60)]
    old, new = assign(keys, 4), assign(keys, 5)
    moved = sum(old[k] != new[k] for k in keys) / len(keys)
    assert 0.1 <= moved <= 0.3, moved  # ideal 1/5


# ------------------------------------------------------------------------------------------ reports


def _result(host: str, target: str, status: str, **kw: object) -> ItemResult:
    r = ItemResult("lab", host, target, status=status, build_id=f"{host}{target}".ljust(64, "0"),
                   durations={"fetch": 0.5, "build": 2.0}, **kw)  # type: ignore[arg-type]  # fmt: skip
    return r


ERR = 'FAIL <checks> & "quotes"'


def _shard_files(tmp: Path) -> list[Path]:
    a = [_result("dns1", "usb", "passed", url="file:///store/x.iso", work=["build"]),
         _result("dns1", "pxe", "failed", failed_step="boot-test", error=ERR)]  # fmt: skip
    b = [_result("dns2", "usb", "skipped"), _result("dns2", "pxe", "passed", work=["build"])]
    paths = []
    for n, items in enumerate((a, b), 1):
        files = report.write_reports(report.make_summary(items, f"{n}/2"), tmp / f"shard{n}")
        paths.append(files.json)
    return paths


def test_merged_report_is_the_union_of_the_shards(tmp_path: Path) -> None:
    paths = _shard_files(tmp_path)
    merged = report.merge(paths)
    union = [i for p in paths for i in json.loads(p.read_text())["items"]]
    assert sorted(json.dumps(i, sort_keys=True) for i in union) == sorted(
        json.dumps(i.to_json(), sort_keys=True) for i in merged.items
    )
    assert merged.shards == ["1/2", "2/2"]
    assert merged.counts() == {"passed": 2, "failed": 1, "skipped": 1}
    # The same item in two summaries means the shards overlapped: refused, naming both files.
    with pytest.raises(CoreosInfraError, match="also in"):
        report.merge([paths[0], paths[0]])


def test_summary_json_fields_and_markdown_table(tmp_path: Path) -> None:
    step = tmp_path / "step-summary.md"
    step.write_text("earlier step\n")
    files = report.write_reports(report.merge(_shard_files(tmp_path)), tmp_path / "out", step_summary=step)
    doc = json.loads(files.json.read_text())
    item = next(i for i in doc["items"] if i["status"] == "failed")
    for key in ("site", "host", "target", "status", "build_id", "failed_step", "durations", "url"):
        assert key in item
    assert item["failed_step"] == "boot-test"
    md = files.markdown.read_text()
    rows = [line for line in md.splitlines() if line.startswith("| lab |")]
    assert len(rows) == 4 and "file:///store/x.iso" in md and "at `boot-test`" in md
    assert step.read_text() == "earlier step\n" + md + "\n"  # appended, not replaced


def test_junit_xml_structure(tmp_path: Path) -> None:
    files = report.write_reports(report.merge(_shard_files(tmp_path)), tmp_path / "out")
    root = ET.parse(files.junit).getroot()
    assert root.tag == "testsuites"
    suites = list(root)
    assert suites and all(s.tag == "testsuite" for s in suites)
    cases = [c for s in suites for c in s]
    assert all(c.tag == "testcase" for c in cases)
    for attr in ("tests", "failures", "errors", "skipped"):
        assert int(root.get(attr, "-1")) == sum(int(s.get(attr, "-1")) for s in suites)
    assert int(root.get("tests", "0")) == len(cases) == 4
    for s in suites:
        assert s.get("name") and float(s.get("time", "x")) >= 0 and s.get("timestamp")
        assert int(s.get("failures", "0")) == sum(c.find("failure") is not None for c in s)
        assert int(s.get("skipped", "0")) == sum(c.find("skipped") is not None for c in s)
    allowed = {"failure", "skipped", "system-out"}
    for c in cases:
        assert c.get("name") and c.get("classname") and float(c.get("time", "x")) >= 0
        kids = [k.tag for k in c]
        assert set(kids) <= allowed and not ("failure" in kids and "skipped" in kids)
    failure = next(c for c in cases if c.find("failure") is not None).find("failure")
    assert failure is not None and failure.get("type") == "boot-test"
    assert failure.text == 'FAIL <checks> & "quotes"'  # escaped on the way out, intact on the way in
