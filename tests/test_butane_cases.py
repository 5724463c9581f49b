"""Every upstream Butane case of the ``butane-cases`` corpus (``tests/shared_fixtures.py``), compared as
its README says.

- success: JSON equal to upstream's, byte for byte except auto-gzip resources, which are compared after
  decompressing (Go's deflate bytes cannot be reproduced with zlib);
- warnings and errors: the exact raw and pretty report texts, including the final status line.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from _ignition_oracle import IGNITION_VALIDATE, oracle_can_check, run_ignition_validate
from shared_fixtures import corpus, needs

from coreos_infra import ignition
from coreos_infra.butane import ButaneError, format_pretty, format_reports, translate

ROOT = Path(__file__).resolve().parent.parent
CASES = corpus("butane-cases")
_INDEX_FILE = CASES / "INDEX.json"
INDEX: list[dict[str, Any]] = json.loads(_INDEX_FILE.read_text()) if _INDEX_FILE.is_file() else []

pytestmark = needs("butane-cases")


def prepare_case(meta: dict[str, Any], tmp_path: Path) -> Path:
    """Copy a case to tmp_path and restore the permission bits and symlinks of its files/ tree."""
    src = CASES / meta["name"]
    dst = tmp_path / meta["name"]
    shutil.copytree(src, dst, symlinks=True)
    for p in dst.rglob("*"):
        if not p.is_symlink():
            os.chmod(p, 0o755 if p.is_dir() else 0o644)
    setup = meta.get("setup") or {}
    for rel, mode in (setup.get("modes") or {}).items():
        os.chmod(dst / "files" / rel, int(mode, 8))
    for rel, target in (setup.get("symlinks") or {}).items():
        link = dst / "files" / rel
        if link.exists() or link.is_symlink():
            link.unlink()
        os.symlink(target, link)
    return dst


def gunzip_sources(config: Any) -> Any:
    """Replace gzip data URLs by their decompressed bytes (hex), in place."""
    if isinstance(config, dict):
        src = config.get("source")
        if config.get("compression") == "gzip" and isinstance(src, str) and src.startswith("data:;base64,"):
            config["source"] = "gunzipped:" + gzip.decompress(base64.b64decode(src[13:])).hex()
        for v in config.values():
            gunzip_sources(v)
    elif isinstance(config, list):
        for v in config:
            gunzip_sources(v)
    return config


def run_case(meta: dict[str, Any], case_dir: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, str, str]:
    """Translate like `butane [--files-dir files] input.bu` from the case directory.

    Returns (Translation or ButaneError, raw stderr, pretty stderr).
    """
    monkeypatch.chdir(case_dir)
    files_dir = "files" if "--files-dir" in meta["args"] else None
    data = (case_dir / "input.bu").read_bytes()
    try:
        result: Any = translate(data, filename="input.bu", files_dir=files_dir)
        reports, source, tail = result.reports, result.source, ""
    except ButaneError as e:
        result = e
        reports, source, tail = e.reports, e.source, f"Error translating config: {e.reason}\n"
    pretty = format_pretty(reports, source, "input.bu") if reports else ""
    return result, format_reports(reports) + tail, pretty + tail


@pytest.mark.parametrize("meta", INDEX, ids=[m["name"] for m in INDEX])
def test_case(meta: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    case_dir = prepare_case(meta, tmp_path)
    expected_dir = CASES / meta["name"]
    result, raw, pretty = run_case(meta, case_dir, monkeypatch)
    if meta["expect"] == "error":
        assert isinstance(result, ButaneError)
        assert raw == (expected_dir / "expected-error.txt").read_text()
        assert pretty == (expected_dir / "expected-error-pretty.txt").read_text()
        assert str(result) + "\n" == raw
        return
    assert not isinstance(result, ButaneError), raw
    expected_bytes = (expected_dir / "expected.ign").read_bytes()
    out = result.to_json(pretty=True)
    assert result.config["ignition"]["version"] == meta["ignition_version"]
    if meta.get("auto_gzip_sources"):
        assert gunzip_sources(json.loads(out)) == gunzip_sources(json.loads(expected_bytes))
        assert b'"compression": "gzip"' in out
    else:
        assert out == expected_bytes
    # the output is valid for our Ignition model and round-trips through it
    assert not [r for r in ignition.validate(result.config) if r.is_error]
    assert ignition.dumps(ignition.parse(out), pretty=True) == out
    # and for the real ignition-validate
    if oracle_can_check(result.config):
        r = run_ignition_validate(result.config)
        assert r.returncode == 0, r.stdout + r.stderr
    if meta.get("warnings"):
        assert raw == (expected_dir / "expected-warnings.txt").read_text()
        assert pretty == (expected_dir / "expected-warnings-pretty.txt").read_text()
        with pytest.raises(ButaneError) as exc:
            translate(
                (case_dir / "input.bu").read_bytes(), filename="input.bu", files_dir="files", strict=True
            )
        assert exc.value.reason == "Config produced warnings and --strict was specified"
        assert str(exc.value) == raw + "Config produced warnings and --strict was specified"
    else:
        assert raw == ""


def test_all_cases_present() -> None:
    assert len(INDEX) >= 56
    assert {m["expect"] for m in INDEX} == {"success", "error"}


@pytest.mark.skipif(IGNITION_VALIDATE is None, reason="ignition-validate not installed")
def test_oracle_rejects_what_we_reject() -> None:
    """The oracle and our Ignition validator agree on invalid configs (same first error message)."""
    bad: list[dict[str, Any]] = [
        {"ignition": {"version": "3.3.0"}, "storage": {"files": [{"path": "rel"}]}},
        {"ignition": {"version": "3.3.0"}, "storage": {"files": [{"path": "/a"}, {"path": "/a"}]}},
        {"ignition": {"version": "3.3.0"}, "storage": {"files": [{"path": "/a/../b"}]}},
        {"ignition": {"version": "3.3.0"}, "systemd": {"units": [{"name": "x.bad"}]}},
        {
            "ignition": {"version": "3.3.0"},
            "systemd": {"units": [{"name": "x.service", "dropins": [{"name": "a"}]}]},
        },
        {
            "ignition": {"version": "3.3.0"},
            "storage": {"files": [{"path": "/a", "contents": {"source": "ftp://x"}}]},
        },
        {"ignition": {"version": "3.3.0"}, "storage": {"files": [{"path": "/a", "overwrite": True}]}},
        {"ignition": {"version": "3.3.0"}, "storage": {"files": [{"path": "/a", "mode": 99999}]}},
        {
            "ignition": {"version": "3.2.0"},
            "storage": {"filesystems": [{"device": "/dev/a", "format": "zfs"}]},
        },
        {"ignition": {"version": "3.3.0"}, "storage": {"disks": [{"device": "/dev/a", "partitions": [{}]}]}},
        {
            "ignition": {"version": "3.1.0"},
            "storage": {"raid": [{"name": "md", "level": "raid9", "devices": ["/a"]}]},
        },
        {"ignition": {"version": "3.3.0"}, "storage": {"links": [{"path": "/l"}]}},
        {
            "ignition": {"version": "3.3.0"},
            "kernelArguments": {"shouldExist": ["a"], "shouldNotExist": ["a"]},
        },
        {"ignition": {"version": "3.2.0"}, "storage": {"luks": [{"name": "a/b", "device": "/dev/x"}]}},
        {
            "ignition": {"version": "3.2.0"},
            "storage": {"files": [{"path": "/a", "contents": {"source": "data:,a b"}}]},
        },
    ]
    for config in bad:
        ours = [r for r in ignition.validate(config) if r.is_error]
        theirs = run_ignition_validate(config)
        assert ours, config
        assert theirs.returncode == 1, (config, theirs.stdout)
        assert ours[0].message in theirs.stdout + theirs.stderr, (ours, theirs.stdout)
        assert ignition.format_path(ours[0].path or ()) in theirs.stdout, (ours, theirs.stdout)
