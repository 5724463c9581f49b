"""Every Invoke task has a one-line summary and documents every option."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from invoke import Task

ROOT = Path(__file__).resolve().parent.parent


def _tasks() -> dict[str, Task]:  # type: ignore[type-arg]
    """Every task of the project's ``tasks`` package (each module's tasks, as the collection has them)."""
    sys.path.insert(0, str(ROOT))
    try:
        package = importlib.import_module("tasks")
        found = {}
        for name in ("dev", "build", "boot", "nightly", "store"):
            module = importlib.import_module(f"tasks.{name}")
            found.update({n: obj for n, obj in vars(module).items() if isinstance(obj, Task)})
    finally:
        sys.path.remove(str(ROOT))
    assert set(package.ns.tasks) == {t.name.replace("_", "-") for t in found.values()}, (
        "a task is not collected"
    )
    return found


def test_every_task_documents_every_option() -> None:
    tasks = _tasks()
    assert {"build", "boot_test", "demo", "fixtures", "fetch", "mirror", "render", "list_", "test"} <= set(
        tasks
    )
    for name, t in tasks.items():
        assert t.__doc__ and t.__doc__.strip().splitlines()[0], f"task {name} has no summary"
        undocumented = [a.name for a in t.get_arguments() if not a.help]
        assert undocumented == [], f"task {name}: options without help: {undocumented}"


def test_invoke_list_shows_every_task() -> None:
    r = subprocess.run([sys.executable, "-m", "invoke", "--list"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    for name in (
        "build",
        "boot-test",
        "demo",
        "fixtures",
        "fetch",
        "mirror",
        "render",
        "list",
        "test",
        "bench",
    ):
        assert f"  {name} " in r.stdout


@pytest.mark.parametrize("option", ["--stream-base-url=http://mirror.example", "--keyring=keys.asc",
                                    "--firmware-url=http://mirror.example/fw"])  # fmt: skip
def test_offline_refuses_mirror_options(option: str) -> None:
    r = subprocess.run([sys.executable, "-m", "invoke", "build", "--offline", "--target", "usb", option],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 1, r.stdout + r.stderr
    flag = option.split("=")[0]
    assert (
        f"--offline uses the built-in fixture mirror and its key; it cannot be combined with {flag}"
        in r.stderr
    )
    assert "Traceback" not in r.stderr
