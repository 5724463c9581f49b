"""The text the ``invoke`` tasks print about what they did: lines, no I/O."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from coreos_infra.fetch import FetchedArtifacts, Want
    from coreos_infra.fixtures import FixtureMirror
    from coreos_infra.nightly.job import JobResult
    from coreos_infra.nightly.runner import ItemResult
    from coreos_infra.pipeline import BuildOutcome
    from coreos_infra.publish.publish import PublishReport
    from coreos_infra.qemu import BootLog, FixtureResult
    from coreos_infra.recipes import Rendered
    from coreos_infra.recipes.output import RenderFiles


def render_lines(rendered: Rendered, files: RenderFiles) -> list[str]:
    return [
        f"butane:   {files.butane}",
        f"ignition: {files.ignition}",
        f"overlays: {', '.join(rendered.overlays)}",
        f"build ID: {rendered.build_id}",
    ]


def render_all_lines(results: list[tuple[Rendered, RenderFiles]]) -> list[str]:
    lines = []
    for rendered, files in results:
        who = rendered.host.name if rendered.host else "(site)"
        lines.append(f"{rendered.target.name:<8} {who:<12} {rendered.build_id[:16]}  {files.ignition}")
    return lines


def fetch_lines(want: Want, got: FetchedArtifacts) -> list[str]:
    sel = want.selection
    lines = [f"{want.stream} {got.release} {sel.arch} {sel.platform} {sel.fmt}:"]
    lines += [f"  {role:<10} {path}  ({got.artifacts[role].name})" for role, path in got.files.items()]
    return lines


def fixture_mirror_lines(m: FixtureMirror, elapsed: float) -> list[str]:
    state = "built" if m.rebuilt else "cached"
    lines = [
        f"fixture mirror ({state} in {elapsed:.1f} s): {m.root}",
        f"  --stream-base-url {m.base_url}",
        f"  keyring {m.keyring}  (fingerprint {m.fingerprint})",
        f"  streams: {', '.join(f'{s}={r}' for s, r in sorted(m.streams.items()))}",
        f"  live ISO {m.iso}",
    ]
    lines += [f"  metal {arch} {path}" for arch, path in sorted(m.metal.items())]
    return lines


def build_lines(outcome: BuildOutcome) -> list[str]:
    lines = [f"{outcome.meta_path.parent}: {'up to date' if outcome.cached else 'built'}"]
    meta: dict[str, Any] = outcome.meta
    lines += [f"  {a['name']}  {a['size']} bytes  sha256 {a['sha256']}" for a in meta["artifacts"]]
    if meta.get("contains_secrets"):
        lines.append("  WARNING: contains secrets (password hashes or keys); keep it private")
    return lines


def fixture_boot_lines(log: BootLog, r: FixtureResult) -> list[str]:
    """What a booted fixture OS reported: Ignition's result, files, directories, links, users."""
    lines = [
        f"booted in {log.elapsed:.1f} s ({log.reason}); arch {r.arch}; release {r.release or '-'}",
        f"kernel command line: {r.cmdline}",
    ]
    if r.rootfs:
        lines.append(f"live rootfs: {r.rootfs}")
    status = "OK" if r.ignition_ok else ("skipped" if r.ignition_skipped else f"FAILED: {r.ignition_failed}")
    lines.append(f"Ignition (config from {r.source}): {status}")
    lines += [f"  {line}" for line in r.ignition_log]
    lines += [
        f"  file {p} mode={f.mode:04o} uid={f.uid} gid={f.gid} size={f.size}"
        for p, f in sorted(r.files.items())
    ]
    lines += [f"  dir  {p} mode={m:04o} uid={u} gid={g}" for p, (m, u, g) in sorted(r.dirs.items())]
    lines += [f"  link {p} -> {t}" for p, t in sorted(r.links.items())]
    lines += [f"  user {u.name} uid={u.uid} groups={','.join(u.groups) or '-'}" for u in r.users.values()]
    return lines


def publish_lines(reports: list[PublishReport]) -> list[str]:
    """What ``invoke publish`` did, per site: objects uploaded, builds, streams, page and key URLs."""
    lines = []
    for r in reports:
        mib = r.bytes_uploaded / (1 << 20)
        counts = f"{len(r.uploaded)} object(s) uploaded ({mib:.1f} MiB), {len(r.unchanged)} unchanged"
        lines.append(f"published {len(r.builds)} build(s) of site {r.site} to {r.store}: {counts}")
        lines += [f"  {b.host}/{b.target}  build {b.build_id}" for b in r.builds]
        lines += [f"  stream   {url}" for url in r.streams]
        if r.page:
            lines.append(f"  page     {r.page}")
        if r.key_url:
            lines.append(f"  key      {r.key_url}")
        if not r.signed:
            lines.append("  UNSIGNED: downloads need --allow-unsigned")
    return lines


def nightly_item_line(r: ItemResult) -> str:
    """One finished nightly item, printed as it completes."""
    why = f" at {r.failed_step}: {r.error.splitlines()[0]}" if r.failed_step and r.error else ""
    return f"  {r.status:<7} {r.key:<32} {r.seconds:7.1f} s{why}"


def nightly_lines(result: JobResult) -> list[str]:
    """The nightly's totals, what was pruned and where the passed builds were published."""
    s, n = result.summary, result.summary.counts()
    lines = [f"{len(s.items)} items (shards {', '.join(s.shards)}): {n['passed']} passed, "
             f"{n['failed']} failed, {n['skipped']} skipped: {result.files.markdown}"]  # fmt: skip
    lines += [f"  pruned {key}" for key in result.pruned]
    lines += [f"  {r.key}: {r.url}" for r in s.items if r.url]
    return lines
