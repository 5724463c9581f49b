"""A target kind is one module: a throw-away kind, known only from its file, works end to end.

The ``toy`` module is written into a temporary directory added to the ``coreos_infra.targets`` package
path; nothing else in the project names it. The recipe loader, ``invoke list``, the pipeline (base
artifact, declared extra input, build ID), the build ID the nightly plans, publishing (stream format and
artifact kinds) and the boot profile must all pick it up from the registry alone.
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from recipes_testlib import make_project

import coreos_infra.targets as targets_package
from coreos_infra import pipeline
from coreos_infra.errors import InputError
from coreos_infra.fixtures import FixtureMirror
from coreos_infra.publish.targets import target_facts
from coreos_infra.recipes import load_project
from coreos_infra.recipes.output import describe
from coreos_infra.targets import base

TOY_MODULE = '''
"""A throw-away target kind for tests/test_target_registry.py."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from coreos_infra.build import BuildRequest, BuildResult
from coreos_infra.targets.base import Arch, Base, BootProfile, InputSource, OptionSource, Output, Target


@dataclass(frozen=True)
class ToyOptions:
    KEYS = ("greeting",)
    greeting: str = "hello"

    @classmethod
    def parse(cls, src: OptionSource) -> ToyOptions:
        greeting = src.get("greeting", "hello")
        if not isinstance(greeting, str):
            raise src.error("greeting", "must be a string")
        return cls(greeting)


@dataclass(frozen=True)
class ToyExtra:
    version: str
    role: str = "toy-extra"

    def fetch(self, source: InputSource) -> Path:
        path = source.cache_dir / "toy-extra.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.version)
        return path


class ToyTarget(Target, kind="toy"):
    title = "throw-away test kind"
    options = ToyOptions
    bases = (Base("metal", "raw.xz"),)
    arches = (Arch.X86_64,)
    output = Output("metal", "toy", ".toy")
    boot = BootProfile(medium="disk", firmware=("bios",))

    @classmethod
    def inputs(cls, options: ToyOptions) -> tuple[ToyExtra, ...]:
        return (ToyExtra(f"v-{options.greeting}"),)

    def build(self, req: BuildRequest) -> BuildResult:
        opts: ToyOptions = self.options_of(req)
        out = req.out_dir / self.output.artifact_name(req.name)
        out.parent.mkdir(parents=True, exist_ok=True)
        extra = req.base["toy-extra"].read_text()
        out.write_bytes(f"{opts.greeting} {extra} {req.base['disk']}\\n".encode() + req.ignition)
        return BuildResult(artifacts=[out], meta={"toy": {"greeting": opts.greeting}})
'''

RECIPE = """\
description: a kind nothing but its module knows
kind: toy
options:
  greeting: {greeting}
overlays:
  - base
"""


@pytest.fixture
def toy_kind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``coreos_infra.targets.toy`` from a temporary directory, in a registry of this test's own."""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "toy.py").write_text(textwrap.dedent(TOY_MODULE))
    registry = dict(base.load_all())  # the shipped kinds, loaded before the path has the toy
    monkeypatch.setattr(targets_package, "__path__", [*targets_package.__path__, str(plugins)])
    monkeypatch.setattr(base, "REGISTRY", registry)
    monkeypatch.setattr(base, "_LOADED", [])
    try:
        yield
    finally:
        sys.modules.pop("coreos_infra.targets.toy", None)


def _project(tmp_path: Path, greeting: str = "hi") -> Path:
    root = make_project(tmp_path / "project", site=None, target=None, copy_recipes=True)
    (root / "recipes" / "toy.yaml").write_text(RECIPE.format(greeting=greeting))
    return root


def test_the_registry_alone_finds_a_new_module(toy_kind: None) -> None:
    assert "toy" in targets_package.REGISTRY and "toy" in targets_package.KINDS
    assert targets_package.Kind("toy") == "toy"
    assert targets_package.REGISTRY["toy"].__module__ == "coreos_infra.targets.toy"


def test_without_the_module_there_is_no_such_kind() -> None:
    assert "toy" not in targets_package.REGISTRY  # the fixture's registry did not leak


def test_recipe_list_and_options_come_from_the_module(toy_kind: None, tmp_path: Path) -> None:
    root = _project(tmp_path)
    project = load_project(root)
    recipe = project.target("toy")
    assert (recipe.kind, recipe.arch, str(recipe.base.platform), recipe.base.format) == (
        "toy", "x86_64", "metal", "raw.xz",
    )  # fmt: skip
    assert recipe.settings.greeting == "hi"
    kinds = describe(project).split("Target kinds:\n")[1]
    line = next(x for x in kinds.splitlines() if x.split()[0] == "toy")
    assert "throw-away test kind" in line and "metal/raw.xz" in line and line.endswith("-> metal/toy")
    (root / "recipes" / "toy.yaml").write_text(RECIPE.format(greeting="[1]"))
    with pytest.raises(InputError) as e:
        load_project(root)
    assert e.value.location.path == "options.greeting" and e.value.location.line == 4


def test_pipeline_nightly_publish_and_boot_read_the_module(
    toy_kind: None, tmp_path: Path, fixture_mirror: FixtureMirror
) -> None:
    root = _project(tmp_path)
    source = pipeline.Source(base_url=fixture_mirror.base_url, keyring=fixture_mirror.keyring,
                             bundled_keys=False, fixture=True)  # fmt: skip
    plan = pipeline.BuildPlan(root=root, target="toy", site="lab", host="dns1", source=source,
                              cache_dir=tmp_path / "cache", out_root=tmp_path / "build")  # fmt: skip
    outcome = pipeline.build(plan)
    artifact = outcome.meta_path.parent / "lab-dns1-toy.toy"
    assert outcome.meta["artifacts"][0]["name"] == artifact.name and outcome.meta["kind"] == "toy"
    first_line, _, ignition = artifact.read_bytes().partition(b"\n")
    assert first_line.split()[:2] == [b"hi", b"v-hi"]  # its options and its declared input reached it
    disk = Path(first_line.split()[2].decode())  # the default base, fetched and verified from the stream
    served = fixture_mirror.artifact("stable", "x86_64", "raw.xz", platform="metal")
    assert disk.read_bytes() == served.read_bytes()
    assert ignition == outcome.request.ignition

    # what the nightly plans (to skip builds already published) covers the declared input too
    planned = pipeline.planned_build_id(plan, load_project(root), outcome.request.base_release)
    assert planned == outcome.meta["build_id"]

    facts = target_facts(outcome.meta)
    assert (facts.platform, facts.format, facts.kinds) == ("toy", "toy", {"disk": artifact.name})

    toy = targets_package.REGISTRY["toy"]
    assert (toy.boot.medium, toy.boot.firmware, toy.boot.disk_format) == ("disk", ("bios",), "raw")


def test_every_kind_can_build_offline(fixture_mirror: FixtureMirror) -> None:
    """The one thing the registry cannot give a new kind: its default base in the offline fixture mirror
    (``invoke demo``, the nightly and the tests build from it). Add it in coreos_infra/fixtures/mirror.py."""
    doc = fixture_mirror.stream_json("stable")
    missing = []
    for kind, cls in sorted(targets_package.REGISTRY.items()):
        arch, default = cls.arches[0], cls.bases[0]
        formats = doc["architectures"].get(arch, {}).get("artifacts", {}).get(default.platform, {})
        if default.format not in formats.get("formats", {}):
            missing.append(f"{kind}: {arch} {default}")
    assert missing == []
