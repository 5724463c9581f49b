"""Invoke tasks for coreos-infra: thin wrappers that parse options and call the library.

`invoke --list` shows them all; `invoke TASK --help` documents every option.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from invoke import Context, Exit, task

from coreos_infra.exits import exits_on_errors

if TYPE_CHECKING:
    from coreos_infra.pipeline import BuildOutcome

PY = sys.executable
ROOT = Path(__file__).resolve().parent


def _recipes() -> str:
    """The target recipes (recipes/<name>.yaml), for the help texts."""
    return ", ".join(sorted(p.stem for p in (ROOT / "recipes").glob("*.yaml")))


@task(help={"fix": "apply ruff's automatic fixes and formatting instead of only checking"})
@exits_on_errors
def lint(c: Context, fix: bool = False) -> None:
    """Run ruff (lint + format check) and mypy on the library."""
    if fix:
        c.run(f"{PY} -m ruff check --fix .")
        c.run(f"{PY} -m ruff format .")
    c.run(f"{PY} -m ruff check .")
    c.run(f"{PY} -m ruff format --check .")
    c.run(f"{PY} -m mypy")


@task(
    help={
        "k": "only run tests matching this pytest -k expression",
        "marker": "only run tests with this marker expression (e.g. 'not boot')",
        "verbose": "list every test",
    }
)
@exits_on_errors
def test(c: Context, k: str = "", marker: str = "", verbose: bool = False) -> None:
    """Run the whole test suite (unit, linters, boot tests in QEMU); benchmarks are `invoke bench`."""
    args = ["-m", f"'not bench and ({marker})'" if marker else "'not bench'"]
    if k:
        args += ["-k", f"'{k}'"]
    if verbose:
        args.append("-v")
    result = c.run(f"{PY} -m pytest {' '.join(args)}", warn=True, pty=sys.stdout.isatty())
    if result is None or result.exited != 0:
        raise Exit(code=result.exited if result is not None else 1)


@task(
    help={
        "target": f"target recipe to render for (recipes/<target>.yaml): {_recipes()}",
        "site": "site profile (recipes/sites/<site>.yaml); may be left out when there is only one",
        "host": "host of the site to render for; left out: a site-wide config (admins, updates, DHCP)",
        "base_release": "FCOS release the build will use (part of the build ID); default: none yet",
        "firmware_version": "firmware version the build will use (part of the build ID); default: none",
        "out": "output directory; default: artifacts/render/<site>/<host>/<target>/",
        "all": "render every target for the site and each of its hosts (a quick check of a site change)",
    }
)
@exits_on_errors
def render(
    c: Context,
    target: str = "",
    site: str = "",
    host: str = "",
    base_release: str = "",
    firmware_version: str = "",
    out: str = "",
    all: bool = False,
) -> None:
    """Render a site's Butane and Ignition for a target (and host); print the paths and the build ID."""
    from coreos_infra.paths import artifacts_dir, project_root
    from coreos_infra.recipes import load_project
    from coreos_infra.recipes import render as render_config
    from coreos_infra.recipes.output import render_all, render_dir, write_render
    from coreos_infra.summary import render_all_lines, render_lines

    if all:
        project = load_project(project_root())
        results = render_all(project, site or project.default_site().name, artifacts_dir())
        print("\n".join(render_all_lines(results)))
        return
    if not target:
        print("Error: --target is required (see `invoke list`)", file=sys.stderr)
        raise Exit(code=2)
    project = load_project(project_root())
    site_name = site or project.default_site().name
    rendered = render_config(
        project,
        target=target,
        site=site_name,
        host=host or None,
        base_release=base_release,
        firmware_version=firmware_version,
    )
    files = write_render(rendered, Path(out) if out else render_dir(artifacts_dir(), rendered))
    print("\n".join(render_lines(rendered, files)))
    if rendered.contains_secrets:
        print("note: the Ignition config contains secrets; the files are mode 0600", file=sys.stderr)


@task(name="list", help={"overlays": "also list every overlay variable with its default and documentation"})
@exits_on_errors
def list_(c: Context, overlays: bool = False) -> None:
    """List the sites (with their hosts, roles and update windows), target recipes and overlays."""
    from coreos_infra.paths import project_root
    from coreos_infra.recipes import load_project
    from coreos_infra.recipes.output import describe

    text = describe(load_project(project_root()))
    if not overlays:
        text = "\n".join(line for line in text.splitlines() if not line.startswith("      "))
    print(text)


_FETCH_HELP = {
    "stream": "FCOS stream (stable, testing, next); default: the recipe's, else stable",
    "arch": "architecture (x86_64, aarch64); default: the recipe's, else x86_64",
    "platform": "platform in the stream metadata; default: the recipe's, else metal",
    "format": "artifact format: iso, pxe, raw.xz, 4k.raw.xz, qcow2.xz, ...; default: the recipe's",
    "release": "pin this FCOS release (found in the release index); default: the recipe's or newest",
    "stream_base_url": "official server or a mirror laid out like it (http://, https://, file://, a path); "
    "default: $COREOS_INFRA_STREAM_BASE_URL or https://builds.coreos.fedoraproject.org",
    "cache_dir": "verified artifact cache; default: artifacts/cache/",
    "keyring": "extra trusted OpenPGP key file or directory of them (rotation; see README 'Trusted keys')",
    "insecure": "accept artifacts WITHOUT a signature (a bad signature is still rejected)",
}


@task(
    iterable=["target"],
    help={"target": "target recipe(s) whose base image to fetch (repeatable)"} | _FETCH_HELP,
)
@exits_on_errors
def fetch(
    c: Context,
    target: list[str] | None = None,
    stream: str = "",
    arch: str = "",
    platform: str = "",
    format: str = "",
    release: str = "",
    stream_base_url: str = "",
    cache_dir: str = "",
    keyring: str = "",
    insecure: bool = False,
) -> None:
    """Download the official FCOS artifacts a target builds from into the verified cache (artifacts/cache/).

    Each file is checked against the SHA-256 in the stream metadata and its detached OpenPGP signature
    (pinned Fedora keys) before it enters the cache; a second run is a cache hit with no download.
    """
    from coreos_infra.fetch import fetch_artifacts, stream_base_url_default
    from coreos_infra.log import setup_logging
    from coreos_infra.paths import cache_dir as default_cache
    from coreos_infra.summary import fetch_lines
    from coreos_infra.taskplan import fetch_wants

    setup_logging()
    for want in fetch_wants(ROOT, target or [], stream, arch, platform, format, release):
        sel = want.selection
        got = fetch_artifacts(
            base_url=stream_base_url or stream_base_url_default(),
            stream=want.stream,
            arch=sel.arch,
            platform=sel.platform,
            fmt=sel.fmt,
            release=want.release,
            cache_dir=Path(cache_dir) if cache_dir else default_cache(),
            keyring=Path(keyring) if keyring else None,
            insecure=insecure,
        )
        print("\n".join(fetch_lines(want, got)))


@task(
    iterable=["target"],
    help={
        "dest": "directory of the mirror to create or update (required)",
        "target": "only these target recipes (repeatable); default: every recipe in recipes/",
        "mirror_url": "URL the mirror will be served from, written into its metadata; default: the official "
        "URL, which coreos-infra rewrites to wherever it reads the mirror from",
        **_FETCH_HELP,
    },
)
@exits_on_errors
def mirror(
    c: Context,
    dest: str = "",
    target: list[str] | None = None,
    stream: str = "",
    arch: str = "",
    platform: str = "",
    format: str = "",
    release: str = "",
    stream_base_url: str = "",
    cache_dir: str = "",
    keyring: str = "",
    insecure: bool = False,
    mirror_url: str = "",
) -> None:
    """Copy the verified artifacts the recipes need into a local mirror laid out like the official server.

    The mirror gets the files with their .sig, streams/<stream>.json, releases.json and release.json, so
    an air-gapped site can use it with --stream-base-url (http://, https:// or file://).
    """
    from coreos_infra.fetch import mirror_artifacts, stream_base_url_default
    from coreos_infra.log import setup_logging
    from coreos_infra.paths import cache_dir as default_cache
    from coreos_infra.stream import DEFAULT_BASE_URL
    from coreos_infra.taskplan import fetch_wants, mirror_groups

    if not dest:
        print("Error: --dest is required", file=sys.stderr)
        raise Exit(code=2)
    setup_logging()
    wants = fetch_wants(ROOT, target or [], stream, arch, platform, format, release)
    for (stream_name, rel), selections in mirror_groups(wants).items():
        path = mirror_artifacts(
            Path(dest),
            selections,
            base_url=stream_base_url or stream_base_url_default(),
            stream=stream_name,
            release=rel,
            cache_dir=Path(cache_dir) if cache_dir else default_cache(),
            keyring=Path(keyring) if keyring else None,
            insecure=insecure,
            mirror_url=mirror_url or DEFAULT_BASE_URL,
        )
        what = ", ".join(f"{s.arch}/{s.platform}/{s.fmt}" for s in selections)
        print(f"{path}: {stream_name} {rel or '(newest)'}: {what}")


@task(
    help={
        "cache_dir": "directory for the fixture cache (default artifacts/cache/fixtures)",
        "rebuild": "rebuild the images and the mirror even if the cache entry is current",
        "debug": "log every command run",
    }
)
@exits_on_errors
def fixtures(c: Context, cache_dir: str = "", rebuild: bool = False, debug: bool = False) -> None:
    """Build (or reuse) the offline fixture mirror: FCOS-shaped ISO, PXE set and metal disks from Debian.

    No root needed. Cached by input hash, so a second run is instant. Prints the mirror's location, the
    file:// base URL to pass as --stream-base-url, and the keyring that verifies its signatures.
    """
    import time

    from coreos_infra.fixtures import ensure_mirror
    from coreos_infra.log import setup_logging
    from coreos_infra.summary import fixture_mirror_lines

    setup_logging(debug=debug)
    start = time.monotonic()
    m = ensure_mirror(Path(cache_dir) if cache_dir else None, rebuild=rebuild)
    print("\n".join(fixture_mirror_lines(m, time.monotonic() - start)))


# ----------------------------------------------------------------------------- build, boot-test, demo

_SOURCE_HELP = {
    "offline": "use the built-in offline fixture mirror (built by `invoke fixtures`) instead of the "
    "official server; trusts only the mirror's throwaway key",
    "stream_base_url": "mirror of builds.coreos.fedoraproject.org to fetch from (http(s):// or file://)",
    "keyring": "extra trusted OpenPGP keys (a key file or a directory of them)",
    "insecure": "accept base images without a signature (a bad signature is still an error)",
    "firmware_url": "directory URL holding RPi4_UEFI_Firmware_<version>.zip (a firmware mirror)",
    "force": "build even if the output's meta.json already records the same build ID",
}


def _outcomes(
    target: str,
    site: str,
    host: list[str] | None,
    all_hosts: bool,
    source_args: tuple[bool, str, str, bool, str],
    force: bool,
) -> Iterator[BuildOutcome]:
    """Build (or find up to date) each requested (target, site, host); yield the outcomes."""
    from coreos_infra.log import setup_logging
    from coreos_infra.taskplan import build_outcomes, source_of

    if not target:
        print("Error: --target is required (see `invoke list`)", file=sys.stderr)
        raise Exit(code=2)
    setup_logging()
    yield from build_outcomes(ROOT, target, site, host, all_hosts, source_of(*source_args), force)


@task(
    iterable=["host"],
    help={
        "target": f"target recipe to build ({_recipes()}; see `invoke list`)",
        "site": "site profile (default: the only/first site in recipes/sites/)",
        "host": "host of the site to build for (repeatable); default: a site-wide image",
        "all_hosts": "build one image per host of the site",
        **_SOURCE_HELP,
    },
)
@exits_on_errors
def build(
    c: Context,
    target: str = "",
    site: str = "",
    host: list[str] | None = None,
    all_hosts: bool = False,
    offline: bool = False,
    stream_base_url: str = "",
    keyring: str = "",
    insecure: bool = False,
    firmware_url: str = "",
    force: bool = False,
) -> None:
    """Build a ready-to-flash artifact: fetch the verified FCOS base, render the site, customize, meta.json.

    Outputs go to artifacts/build/<target>/<site>-<host>-<target>/ with a meta.json (sha256, size, build ID,
    base release). A build whose inputs did not change (same build ID) is not redone.
    """
    from coreos_infra.summary import build_lines

    source_args = (offline, stream_base_url, keyring, insecure, firmware_url)
    for outcome in _outcomes(target, site, host, all_hosts, source_args, force):
        print("\n".join(build_lines(outcome)))


@task(
    iterable=["host", "path"],
    help={
        "target": f"target recipe to build and boot ({_recipes()})",
        "site": "site profile (default: the only/first site)",
        "host": "host of the site (repeatable); default: a site-wide image",
        "all_hosts": "boot-test one image per host of the site",
        "firmware": "x86_64 firmware: uefi (OVMF) or bios (SeaBIOS); aarch64 always boots AAVMF",
        "timeout": "seconds a boot may take at most (default: derived from the accelerator and host load)",
        "all": "boot every declared boot path (target x firmware x scenario) of the host; writes "
        "artifacts/boot-test/junit.xml and summary.md",
        "jobs": "--all: VMs at once (default: one per 2 cores, bounded by free memory)",
        "path": "--all: only the paths matching this pattern, e.g. 'pxe/*' or '*/uefi/*' (repeatable)",
        **_SOURCE_HELP,
    },
)
@exits_on_errors
def boot_test(
    c: Context,
    target: str = "",
    site: str = "",
    host: list[str] | None = None,
    all_hosts: bool = False,
    firmware: str = "uefi",
    timeout: float = 0.0,
    all: bool = False,
    jobs: int = 0,
    path: list[str] | None = None,
    offline: bool = False,
    stream_base_url: str = "",
    keyring: str = "",
    insecure: bool = False,
    firmware_url: str = "",
    force: bool = False,
) -> None:
    """Build (if needed) and boot an artifact in QEMU; check that the system applied its Ignition config.

    Every file, directory, link, unit and user the delivered config declares is compared with what the booted
    system reports. KVM is used when it works, TCG otherwise. The serial log is kept beside the artifact.

    With --all, every boot path the project claims for the host is built and booted (ISO as CD and USB
    stick under SeaBIOS and OVMF, installs, iPXE TFTP/HTTP, PXELINUX, GRUB netboot, metal BIOS/UEFI/4Kn,
    rpi4 under AAVMF, ...; see qemu/README.md "Boot paths"), --jobs at a time; one JUnit testcase per
    path named <target>/<bios|uefi>/<scenario>. Exit code 1 when any path fails.
    """
    if all:
        source = (offline, stream_base_url, keyring, insecure, firmware_url)
        _boot_matrix(site, host, jobs, path, timeout, source, force)
        return
    from coreos_infra.boottest import boot_artifact

    failed = 0
    source_args = (offline, stream_base_url, keyring, insecure, firmware_url)
    for outcome in _outcomes(target, site, host, all_hosts, source_args, force):
        report = boot_artifact(
            outcome.meta_path,
            ignition_bytes=outcome.request.ignition,
            firmware=firmware,
            timeout=timeout or 600.0,
        )
        print(report.summary())
        print(f"  serial log: {report.serial_log}")
        failed += 0 if report.ok else 1
    if failed:
        raise Exit(code=1)


def _boot_matrix(
    site: str,
    host: list[str] | None,
    jobs: int,
    patterns: list[str] | None,
    timeout: float,
    source_args: tuple[bool, str, str, bool, str],
    force: bool,
) -> None:
    """``boot-test --all``: the host's boot paths, built through the pipeline, booted by boottest.matrix."""
    from coreos_infra.boottest.matrix import MatrixOptions, declared_paths, run_matrix
    from coreos_infra.boottest.paths import select
    from coreos_infra.paths import artifacts_dir
    from coreos_infra.recipes import load_project

    if host and len(host) > 1:
        print("Error: --all boots the paths of one host (give --host once)", file=sys.stderr)
        raise Exit(code=2)
    paths = select(declared_paths(sorted(load_project(ROOT).targets)), tuple(patterns or ()))

    def build(recipe: str) -> tuple[Path, bytes]:
        (outcome,) = _outcomes(recipe, site, host, False, source_args, force)
        return outcome.meta_path, outcome.request.ignition

    out = artifacts_dir(ROOT) / "boot-test"
    opts = MatrixOptions(paths, out, jobs=jobs or None, timeout=timeout or None)
    results = run_matrix(opts, build, lambda line: print(line, flush=True))
    failed = [r for r in results if not r.ok]
    print(f"\nboot-test --all: {len(results) - len(failed)}/{len(results)} paths passed; "
          f"{out / 'junit.xml'}, {out / 'summary.md'}")  # fmt: skip
    if failed:
        raise Exit(code=1)


@task(
    help={
        "targets": "comma-separated targets to build and boot-test (default: usb,pxe,metal,rpi4)",
        "host": "host of the lab site to build for",
    }
)
@exits_on_errors
def demo(c: Context, targets: str = "usb,pxe,metal,rpi4", host: str = "dns1") -> None:
    """The whole path on the offline mirror: fixtures → nightly (build, boot-test, publish) → download.

    Publishes into the local store artifacts/store/ (signed with a throwaway demo key, generated on first
    use), downloads one image back and verifies it, then prints where every image can be downloaded.
    """
    from coreos_infra.demo import DemoOptions, run_demo
    from coreos_infra.log import setup_logging
    from coreos_infra.nightly.matrix import split_names
    from coreos_infra.paths import project_root

    setup_logging()
    fixtures(c)

    def done(r) -> None:  # type: ignore[no-untyped-def]
        why = f" at {r.failed_step}: {r.error.splitlines()[0]}" if r.failed_step and r.error else ""
        print(f"  {r.status:<7} {r.key:<32} {r.seconds:7.1f} s{why}", flush=True)

    d = run_demo(DemoOptions(root=project_root(), targets=split_names(targets), host=host), on_result=done)
    n = d.job.summary.counts()
    counts = f"{n['passed']} passed, {n['failed']} failed, {n['skipped']} skipped"
    print(f"\nnightly: {counts}: {d.job.files.markdown}")
    key = "GENERATED a throwaway demo signing key" if d.new_key else "signed with the throwaway demo key"
    print(f"store: {d.store} ({key} in {d.key_dir}; never use it for real images)")
    if d.downloaded is not None:
        print(f"downloaded {d.download_target} build {d.downloaded.build.build_id[:16]} back into "
              f"{d.downloaded.dest}: signed SHA256SUMS and every SHA-256 verified")  # fmt: skip
    print(f"download page: {d.page}")
    for target, paths in sorted(d.latest.items()):
        for path in paths:
            print(f"  {target:<6} {path}")
    first = d.download_target or next(iter(sorted(d.latest)), "usb")
    print(f"fetch one: invoke download --site lab --host {host} --target {first}")
    if d.job.summary.failed:
        raise Exit(code=1)


@task(help={"k": "only run benchmarks matching this pytest -k expression"})
@exits_on_errors
def bench(c: Context, k: str = "") -> None:
    """Run the speed and memory benchmarks (tests/bench); each prints its ratio against a baseline."""
    args = f"-k '{k}'" if k else ""
    c.run(f"{PY} -m pytest tests/bench -m bench -s {args}", pty=sys.stdout.isatty())


@task(
    iterable=["initrd"],
    help={
        "iso": "boot this ISO as a CD-ROM",
        "disk": "boot this raw disk image (virtio-blk, snapshot mode: the file is never modified)",
        "kernel": "direct kernel boot: the kernel image",
        "initrd": "direct kernel boot: an initrd (repeatable; concatenated in order)",
        "append": "direct kernel boot: the kernel command line",
        "arch": "guest architecture: x86_64 (default) or aarch64",
        "firmware": "x86_64 firmware: uefi (OVMF, default) or bios (SeaBIOS); aarch64 always uses AAVMF",
        "sector_size": "logical sector size of --disk (4096 for 4Kn images)",
        "timeout": "seconds to wait for FIXTURE-DONE",
        "log": "also write the serial console to this file",
    },
)
@exits_on_errors
def qemu_boot(
    c: Context,
    iso: str = "",
    disk: str = "",
    kernel: str = "",
    initrd: list[str] | None = None,
    append: str = "",
    arch: str = "x86_64",
    firmware: str = "uefi",
    sector_size: int = 512,
    timeout: float = 600.0,
    log: str = "",
) -> None:
    """Boot an image carrying the fixture OS in QEMU and print what it reported (Ignition, files, users).

    The building block of the boot tests, for trying an artifact by hand: KVM when usable, else TCG;
    fails fast on GRUB's "Press any key", a kernel panic or a timeout. Exit code 1 if Ignition failed.
    """
    from coreos_infra.log import setup_logging
    from coreos_infra.qemu import Machine, VmConfig, boot, parse_log
    from coreos_infra.summary import fixture_boot_lines

    setup_logging()
    if sum(bool(x) for x in (iso, disk, kernel)) != 1:
        print("Error: give exactly one of --iso, --disk, --kernel", file=sys.stderr)
        raise Exit(code=2)
    vm = VmConfig(
        Machine(arch, firmware if arch == "x86_64" else "uefi"),
        kernel=Path(kernel) if kernel else None,
        initrds=tuple(Path(p) for p in initrd or []),
        append=append,
        cdrom=Path(iso) if iso else None,
        disks=(Path(disk),) if disk else (),
        disk_sector_size=sector_size,
    )
    result = boot(vm, timeout=timeout, log_path=Path(log) if log else None)
    r = parse_log(result.text)
    print("\n".join(fixture_boot_lines(result, r)))
    if not r.ok:
        raise Exit(code=1)


# ----------------------------------------------------------------------------- nightly

_NIGHTLY_HELP = {
    "store": "store URL (s3://BUCKET/PREFIX, file:///DIR or a directory); default: the site's",
    "endpoint_url": "S3 endpoint of a non-AWS server (else $AWS_ENDPOINT_URL)",
    "keep": "builds to keep per (site, host, target) when pruning",
}


def _step_summary():  # type: ignore[no-untyped-def]
    import os
    from pathlib import Path

    path = os.environ.get("GITHUB_STEP_SUMMARY")
    return Path(path) if path else None


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
    from pathlib import Path

    from coreos_infra.fetch import stream_base_url_default
    from coreos_infra.log import setup_logging
    from coreos_infra.nightly.job import NightlyJob, run_job
    from coreos_infra.nightly.matrix import split_names
    from coreos_infra.paths import artifacts_dir, cache_dir, project_root
    from coreos_infra.pipeline import Source, offline_source

    setup_logging()
    root = project_root()

    def done(r) -> None:  # type: ignore[no-untyped-def]
        why = f" at {r.failed_step}: {r.error.splitlines()[0]}" if r.failed_step and r.error else ""
        print(f"  {r.status:<7} {r.key:<32} {r.seconds:7.1f} s{why}", flush=True)

    job = NightlyJob(
        root=root,
        source=offline_source() if offline else Source(base_url=stream_base_url_default()),
        cache_dir=cache_dir(root),
        out_root=artifacts_dir(root) / "build",
        report_dir=Path(report_dir) if report_dir else artifacts_dir(root) / "nightly",
        sites=split_names(sites), hosts=split_names(hosts), targets=split_names(targets),
        shard=shard, publish=publish, store=store or None, endpoint_url=endpoint_url or None,
        keep=keep, jobs=jobs, tester=tester, boot_timeout=boot_timeout, force=force,
        step_summary=_step_summary(),
    )  # fmt: skip
    result = run_job(job, on_result=done)
    _print_nightly(result)


def _print_nightly(result) -> None:  # type: ignore[no-untyped-def]
    s, n = result.summary, result.summary.counts()
    print(f"{len(s.items)} items (shards {', '.join(s.shards)}): {n['passed']} passed, "
          f"{n['failed']} failed, {n['skipped']} skipped: {result.files.markdown}")  # fmt: skip
    for key in result.pruned:
        print(f"  pruned {key}")
    for r in result.summary.items:
        if r.url:
            print(f"  {r.key}: {r.url}")
    if result.summary.failed:
        raise Exit(code=1)


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
    from pathlib import Path

    from coreos_infra.nightly.job import expand_summaries, merge_job
    from coreos_infra.paths import artifacts_dir, project_root

    result = merge_job(
        expand_summaries(summaries),
        Path(out) if out else artifacts_dir() / "nightly",
        root=project_root(), store=store or None, endpoint_url=endpoint_url or None, keep=keep,
        step_summary=_step_summary(),
    )  # fmt: skip
    _print_nightly(result)


# ---- publish


class _store_errors:  # noqa: N801 - used like a function: `with _store_errors():`
    """A CoreosInfraError or a failed file operation: one `Error:` line and exit code 1 (no traceback).

    Self-contained (needs nothing else from this file), so it keeps working when the top of tasks.py changes.
    """

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, e: BaseException | None, tb: object) -> Literal[False]:
        from coreos_infra.errors import CoreosInfraError

        if isinstance(e, CoreosInfraError):
            print(f"Error: {e}", file=sys.stderr)
            raise Exit(code=1) from None
        if isinstance(e, OSError):
            print(f"Error: {e.filename or ''}{': ' if e.filename else ''}{e.strerror or e}", file=sys.stderr)
            raise Exit(code=1) from None
        return False


def _open_store(site: str, store: str, endpoint_url: str, create_bucket: bool = False):  # type: ignore[no-untyped-def]
    from pathlib import Path

    from coreos_infra.publish.publish import prepare_store
    from coreos_infra.publish.settings import resolve

    root = Path(__file__).resolve().parent
    settings = resolve(root, site or "lab", store=store, endpoint_url=endpoint_url)
    return prepare_store(settings, create_bucket=create_bucket)


_STORE_HELP = {
    "store": "s3://BUCKET[/PREFIX], file:///DIR or a directory (default: the site's publish.store, "
    "else artifacts/store/)",
    "endpoint_url": "S3-compatible endpoint (default: the site's publish.endpoint_url or AWS_ENDPOINT_URL)",
}


@task(
    help={
        "site": "publish only builds of this site",
        "host": "publish only builds for this host",
        "target": "publish only builds of this target",
        **_STORE_HELP,
        "public_base_url": "URL readers use for the store's root (written into the stream metadata)",
        "unsigned": "publish without signatures (downloads then need --allow-unsigned)",
        "gnupg_home": "GnuPG home with the site signing key (default: publish.signing_key, else a demo key)",
        "key_id": "key ID or fingerprint of the signing key in that home",
        "create_bucket": "create the S3 bucket if it does not exist",
        "allow_secrets": "also publish builds whose Ignition carries secrets (use a private store)",
        "build_dir": "where the builds are (default: artifacts/build)",
        "debug": "log every step",
    }
)
def publish(
    c: Context,
    site: str = "",
    host: str = "",
    target: str = "",
    store: str = "",
    endpoint_url: str = "",
    public_base_url: str = "",
    unsigned: bool = False,
    gnupg_home: str = "",
    key_id: str = "",
    create_bucket: bool = False,
    allow_secrets: bool = False,
    build_dir: str = "",
    debug: bool = False,
) -> None:
    """Publish what `invoke build` produced to a store (never builds), then indexes, streams and latest."""
    from pathlib import Path

    from coreos_infra.log import setup_logging
    from coreos_infra.publish.publish import PublishOptions
    from coreos_infra.publish.publish import publish as run_publish

    setup_logging(debug=debug)
    opts = PublishOptions(
        root=Path(__file__).resolve().parent, site=site or None, host=host or None, target=target or None,
        store=store or None, endpoint_url=endpoint_url or None, public_base_url=public_base_url or None,
        gnupg_home=gnupg_home or None, key_id=key_id or None, unsigned=unsigned, create_bucket=create_bucket,
        allow_secrets=allow_secrets, build_root=Path(build_dir) if build_dir else None,
    )  # fmt: skip
    with _store_errors():
        reports = run_publish(opts)
    for r in reports:
        mib = r.bytes_uploaded / (1 << 20)
        counts = f"{len(r.uploaded)} object(s) uploaded ({mib:.1f} MiB), {len(r.unchanged)} unchanged"
        print(f"published {len(r.builds)} build(s) of site {r.site} to {r.store}: {counts}")
        for b in r.builds:
            print(f"  {b.host}/{b.target}  build {b.build_id}")
        for url in r.streams:
            print(f"  stream   {url}")
        if r.page:
            print(f"  page     {r.page}")
        if r.key_url:
            print(f"  key      {r.key_url}")
        if not r.signed:
            print("  UNSIGNED: downloads need --allow-unsigned")


@task(
    help={
        "keep": "builds to keep per site/host/target (the latest always stays)",
        "older_than": "only remove builds older than this many days",
        "dry_run": "only print what would be removed",
        "site": "prune only this site (default: every site in the store)",
        **_STORE_HELP,
    }
)
def prune(
    c: Context,
    keep: int = 3,
    older_than: float = -1,
    dry_run: bool = False,
    site: str = "",
    store: str = "",
    endpoint_url: str = "",
) -> None:
    """Remove old builds from a store; never what an index or latest points to (indexes rewritten first)."""
    from coreos_infra.log import setup_logging
    from coreos_infra.publish.prune import prune as run_prune

    setup_logging()
    with _store_errors():
        st = _open_store(site, store, endpoint_url)
        report = run_prune(
            st, keep=keep, older_than_days=older_than if older_than >= 0 else None, site=site or None,
            dry_run=dry_run,
        )  # fmt: skip
    verb = "would remove" if dry_run else "removed"
    what = f"{len(report.removed_builds)} build(s) ({len(report.deleted_keys)} objects)"
    print(f"{verb} {what} from {st.url}; {report.kept_builds} kept")
    for b in report.removed_builds:
        print(f"  {b}")


@task(
    help={
        "site": "site of the build",
        "host": "host of the build",
        "target": "target of the build",
        "build": "build ID, or latest",
        "expires": "how long the URLs work: 7d, 12h, 30m or seconds (at most 7d)",
        **_STORE_HELP,
    }
)
def share(
    c: Context,
    site: str = "",
    host: str = "",
    target: str = "",
    build: str = "latest",
    expires: str = "7d",
    store: str = "",
    endpoint_url: str = "",
) -> None:
    """Print presigned URLs to a published build in a private S3 bucket."""
    from coreos_infra.publish.share import parse_duration
    from coreos_infra.publish.share import share as run_share

    if not (site and host and target):
        print("Error: --site, --host and --target are required", file=sys.stderr)
        raise Exit(code=2)
    with _store_errors():
        st = _open_store(site, store, endpoint_url)
        urls = run_share(st, site, host, target, expires_s=parse_duration(expires), build=build)
    for name, url in urls:
        print(f"{name}  {url}")


# ---- download and flash (the technician's side)

_FETCH_BUILD_HELP = {
    "site": "site of the build",
    "host": "host of the build ('all' for a site-wide build)",
    "target": "target of the build (rpi4, metal, usb, live, pxe, ...)",
    "build": "build ID, or latest (default; through the target's latest.json)",
    **_STORE_HELP,
    "keyring": "trusted site public key (file or directory of keys); default: the site's publish.keyring, "
    "else the local demo key; never only the key in the store",
    "allow_unsigned": "accept a build published with --unsigned (only its SHA-256 is checked)",
    "verify_each": "also check each file's own .sig with gpgv (streamed; the signed SHA256SUMS already "
    "covers every file)",
    "debug": "log every step",
}


def _download(site: str, host: str, target: str, build: str, store: str, endpoint_url: str, keyring: str,  # type: ignore[no-untyped-def]  # noqa: E501
              allow_unsigned: bool, dest: str, names_of=None, verify_each: bool = False):  # fmt: skip
    """Resolve and download (verified) a build; ``names_of(build)`` picks the files (default: all)."""
    from pathlib import Path

    from coreos_infra.paths import artifacts_dir
    from coreos_infra.publish.download import download_build, keyring_for, resolve_build

    root = Path(__file__).resolve().parent
    st = _open_store(site, store, endpoint_url)
    b = resolve_build(st, site, host, target, build or "latest")
    with keyring_for(root, site, Path(keyring) if keyring else None) as trusted:
        return download_build(
            st, site, host, target, dest=Path(dest) if dest else artifacts_dir(root) / "download",
            per_build_dir=not dest, keyring=trusted, allow_unsigned=allow_unsigned,
            names=names_of(b) if names_of else None, resolved=b, verify_each=verify_each,
        )  # fmt: skip


@task(help={**_FETCH_BUILD_HELP, "dest": "directory for the files (default: "
            "artifacts/download/<site>/<host>/<target>/<build ID>/)"})  # fmt: skip
def download(
    c: Context,
    site: str = "",
    host: str = "",
    target: str = "",
    build: str = "latest",
    dest: str = "",
    store: str = "",
    endpoint_url: str = "",
    keyring: str = "",
    allow_unsigned: bool = False,
    verify_each: bool = False,
    debug: bool = False,
) -> None:
    """Download a published build: resumes, checks signatures and SHA-256 before a file gets its name."""
    from coreos_infra.log import setup_logging

    if not (site and host and target):
        print("Error: --site, --host and --target are required", file=sys.stderr)
        raise Exit(code=2)
    setup_logging(debug=debug)
    with _store_errors():
        got = _download(site, host, target, build, store, endpoint_url, keyring, allow_unsigned, dest,
                        verify_each=verify_each)  # fmt: skip
    how = (
        "verified (signed SHA256SUMS" + (", each .sig" if verify_each else "") + ")"
        if got.signed
        else "UNSIGNED: only the SHA-256 was checked"
    )
    print(f"build {got.build.build_id} of {site}/{host}/{target}: {how}", file=sys.stderr)
    for path in got.files.values():
        print(path)


def _confirm(question: str) -> bool:
    print(f"{question}\nType 'yes' to continue: ", end="", file=sys.stderr, flush=True)
    answer = sys.stdin.readline()
    return answer.strip().lower() == "yes"


@task(
    help={
        **_FETCH_BUILD_HELP,
        "device": "the USB stick or SD card to overwrite (a whole disk, e.g. /dev/sdb), or an image file",
        "image": "flash this local image, not a published build (needs IMAGE.sig, or --allow-unsigned)",
        "yes": "do not ask for confirmation",
        "dest": "where the downloaded image is kept (default: artifacts/download/...)",
    }
)
def flash(
    c: Context,
    device: str = "",
    site: str = "",
    host: str = "",
    target: str = "",
    build: str = "latest",
    image: str = "",
    yes: bool = False,
    dest: str = "",
    store: str = "",
    endpoint_url: str = "",
    keyring: str = "",
    allow_unsigned: bool = False,
    verify_each: bool = False,
    debug: bool = False,
) -> None:
    """Write a verified image to a device: decompresses while writing, refuses mounted and system disks,
    asks first (unless --yes), syncs and reads back to compare."""
    from pathlib import Path

    from coreos_infra.log import setup_logging
    from coreos_infra.publish.flash import flash_image, verify_local_image

    if not device or not (image or (site and host and target)):
        print("Error: give --device and either --site/--host/--target or --image", file=sys.stderr)
        raise Exit(code=2)
    setup_logging(debug=debug)
    root = Path(__file__).resolve().parent
    with _store_errors():
        expected = None
        if image:
            from contextlib import nullcontext

            from coreos_infra.publish.download import keyring_for

            given = Path(keyring) if keyring else None
            with keyring_for(root, site, given) if site else nullcontext(given) as trusted:
                verify_local_image(Path(image), keyring=trusted, allow_unsigned=allow_unsigned)
            path = Path(image)
        else:
            got = _download(site, host, target, build, store, endpoint_url, keyring, allow_unsigned, dest,
                            names_of=lambda b: [b.disk_image().name], verify_each=verify_each)  # fmt: skip
            path = got.files[got.build.disk_image().name]
            expected = got.uncompressed_sha256(path.name)
        result = flash_image(path, Path(device), confirm=None if yes else _confirm, expected_sha256=expected)
    print(
        f"wrote {result.written} bytes of {path.name} to {device} and read them back: sha256 {result.sha256}"
    )
