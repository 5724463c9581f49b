"""The whole build of one (target, site[, host]): fetch → render → target builder → meta.json.

Each step is a function of its inputs: the verified base artifacts come from the content-addressed
cache, the Ignition config and the build ID from :func:`coreos_infra.recipes.render`, and the artifact
from the target builder. A build whose ``meta.json`` already records the same build ID (and whose
artifacts still have the recorded SHA-256) is not built again.
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from coreos_infra import fetch
from coreos_infra.build import BuildRequest, BuildResult, write_meta
from coreos_infra.fsutil import sha256_file
from coreos_infra.log import step
from coreos_infra.recipes import Project, Rendered, TargetRecipe, load_project, render
from coreos_infra.targets import target as target_class
from coreos_infra.targets.base import ExtraInput, InputSource

LOG = logging.getLogger("coreos_infra.pipeline")


@dataclass(frozen=True)
class Source:
    """Where base images come from and which keys are trusted."""

    base_url: str = fetch.DEFAULT_BASE_URL
    keyring: Path | None = None  # extra trusted keys (file or directory)
    bundled_keys: bool = True  # also trust the pinned Fedora keys
    insecure: bool = False  # allow artifacts without a signature (never a bad one)
    firmware_url: str | None = None  # directory URL holding RPi4_UEFI_Firmware_<version>.zip (mirror)
    fixture_firmware: Path | None = None  # offline: make fixture firmware zips in this directory
    fixture: bool = False  # the offline fixture mirror: its images run the fixture OS, not FCOS


@dataclass(frozen=True)
class BuildPlan:
    root: Path  # the project checkout (recipes/, overlays/)
    target: str
    site: str | None = None
    host: str | None = None
    source: Source = field(default_factory=Source)
    cache_dir: Path = Path("artifacts/cache")
    out_root: Path = Path("artifacts/build")
    force: bool = False  # rebuild even if meta.json has the same build ID
    # where the site's throw-away boot-test SSH key lives (artifacts/keys); None: no boot-test key unless
    # the site names one (coreos_infra.recipes.boottestkey)
    keys_dir: Path | None = None


@dataclass(frozen=True)
class BuildOutcome:
    request: BuildRequest
    meta_path: Path
    meta: dict[str, Any]
    rendered: Rendered
    cached: bool
    identity: Path | None = None  # the boot-test SSH key the image accepts for core (boot_test_identity)


def offline_source(cache_root: Path | None = None) -> Source:
    """The built-in offline mirror (:mod:`coreos_infra.fixtures`), trusting only its throwaway key."""
    from coreos_infra.fixtures import ensure_mirror

    mirror = ensure_mirror(cache_root)
    return Source(
        base_url=mirror.base_url,
        keyring=mirror.keyring,
        bundled_keys=False,
        fixture_firmware=mirror.entry.parent,
        fixture=True,
    )


def _up_to_date(meta_path: Path, build_id: str) -> dict[str, Any] | None:
    try:
        meta: dict[str, Any] = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        return None
    if meta.get("build_id") != build_id:
        return None
    for art in meta.get("artifacts", []):
        path = meta_path.parent / art["name"]
        if not path.is_file():  # a PXE bundle's files are in its subdirectory
            path = next(meta_path.parent.rglob(art["name"]), path)
        if not path.is_file() or path.stat().st_size != art["size"] or sha256_file(path) != art["sha256"]:
            return None
    return meta


def _fetch_base(plan: BuildPlan, recipe: TargetRecipe) -> fetch.FetchedArtifacts:
    with step(f"Fetching {recipe.stream} {recipe.arch} {recipe.base.platform}/{recipe.base.format}"):
        fetched = fetch.fetch_artifacts(
            base_url=plan.source.base_url,
            stream=recipe.stream,
            arch=recipe.arch,
            platform=recipe.base.platform,
            fmt=recipe.base.format,
            release=recipe.release or None,
            cache_dir=plan.cache_dir,
            keyring=plan.source.keyring,
            insecure=plan.source.insecure,
            bundled_keys=plan.source.bundled_keys,
        )
    LOG.info("  base release %s", fetched.release)
    return fetched


def _fetch_inputs(plan: BuildPlan, inputs: tuple[ExtraInput, ...]) -> dict[str, Path]:
    """The target's extra inputs (e.g. the Raspberry Pi firmware), verified and cached, by role."""
    source = InputSource(plan.cache_dir, plan.source.firmware_url, plan.source.fixture_firmware)
    extra: dict[str, Path] = {}
    for needed in inputs:
        with step(f"Fetching the {needed.role} {needed.version}"):
            extra[needed.role] = needed.fetch(source)
    return extra


def recipe_options(recipe: TargetRecipe) -> Any:
    """The recipe's options as its target parsed them."""
    if recipe.settings is not None:
        return recipe.settings
    return target_class(recipe.kind).parse_options(recipe.name, recipe.options)


def _render(
    plan: BuildPlan, project: Project, recipe: TargetRecipe, release: str
) -> tuple[Rendered, dict[str, Path]]:
    """The render of the build (its build ID covers the target's declared inputs, fetched here first)."""
    inputs = target_class(recipe.kind).inputs(recipe_options(recipe))
    extra = _fetch_inputs(plan, inputs)  # before rendering: the build ID covers their bytes
    with step(f"Rendering {plan.target} for site {plan.site or '(default)'} host {plan.host or '(none)'}"):
        rendered = render(
            project,
            target=plan.target,
            site=plan.site or project.default_site().name,
            host=plan.host,
            base_release=release,
            firmware_version=",".join(i.version for i in inputs),
            firmware_sha256=",".join(sha256_file(p) for p in extra.values()),
            extra_ssh_keys=boot_test_keys(plan, project),
        )
    return rendered, extra


def boot_test_keys(plan: BuildPlan, project: Project) -> tuple[str, ...]:
    """The throw-away boot-test key of the site (when ``plan.keys_dir`` is set and the site names none)."""
    from coreos_infra.recipes.boottestkey import throwaway_key

    site = project.site(plan.site) if plan.site else project.default_site()
    if plan.keys_dir is None or site.boot_test_key is not None:
        return ()
    return (throwaway_key(site.name, plan.keys_dir).public,)


def boot_test_identity(plan: BuildPlan, project: Project | None = None) -> Path | None:
    """The private key that logs in to what ``plan`` builds as core (None: the images accept none)."""
    from coreos_infra.recipes.boottestkey import throwaway_key

    project = project or load_project(plan.root)
    site = project.site(plan.site) if plan.site else project.default_site()
    if site.boot_test_key is not None:
        return site.boot_test_key.private
    return throwaway_key(site.name, plan.keys_dir).private if plan.keys_dir is not None else None


def planned_build_id(plan: BuildPlan, project: Project, release: str) -> str:
    """The build ID :func:`build` gives ``plan`` on base ``release`` (fetches the declared inputs)."""
    return _render(plan, project, project.target(plan.target), release)[0].build_id


def build(plan: BuildPlan, project: Project | None = None) -> BuildOutcome:
    """Build ``plan.target`` for the site/host and return where the artifact and its meta.json are."""
    project = project or load_project(plan.root)
    recipe = project.target(plan.target)
    fetched = _fetch_base(plan, recipe)
    target = target_class(recipe.kind)
    settings = recipe_options(recipe)
    rendered, extra = _render(plan, project, recipe, fetched.release)
    LOG.info("  build ID %s", rendered.build_id)
    base = {target.base_roles.get(role, role): path for role, path in fetched.files.items()} | extra
    out_dir = plan.out_root / plan.target / rendered.name
    request = BuildRequest(
        target=recipe.name,
        kind=recipe.kind,
        arch=recipe.arch,
        ignition=rendered.ignition,
        base=base,
        base_release=fetched.release,
        build_id=rendered.build_id,
        out_dir=out_dir,
        cache_dir=plan.cache_dir,
        options=settings,
        name=rendered.name,
        contains_secrets=rendered.contains_secrets,
    )
    meta_path = out_dir / "meta.json"
    if not plan.force and (meta := _up_to_date(meta_path, rendered.build_id)) is not None:
        LOG.info("‣ %s is up to date (build ID %s)", meta_path, rendered.build_id[:16])
        return BuildOutcome(request, meta_path, meta, rendered, cached=True,
                            identity=boot_test_identity(plan, project))  # fmt: skip
    new_dir = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        with step(f"Building {recipe.kind} artifact {rendered.name}"):
            result = target().build(request)
    except BaseException:
        if new_dir:  # a failed or interrupted first build leaves no empty output directory
            with contextlib.suppress(OSError):
                out_dir.rmdir()
        raise
    result = _with_site_facts(result, rendered, plan.source)
    meta_path = write_meta(request, result)
    meta = json.loads(meta_path.read_text())
    return BuildOutcome(request, meta_path, meta, rendered, cached=False,
                        identity=boot_test_identity(plan, project))  # fmt: skip


def _with_site_facts(result: BuildResult, rendered: Rendered, source: Source) -> BuildResult:
    facts = {
        "site": rendered.site.name if rendered.site else None,
        "host": rendered.host.name if rendered.host else None,
        "overlays": list(rendered.overlays),
        # the boot test reads it: a fixture base boots the fixture OS (serial markers), others real FCOS
        "base_source": {"url": source.base_url, "fixture": source.fixture},
    }
    return replace(result, meta={**facts, **result.meta})
