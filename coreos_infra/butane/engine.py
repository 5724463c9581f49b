"""The Butane → Ignition pipeline, in upstream Butane's order (which fixes the order of reports):

1. sniff ``variant``/``version`` and pick the translator;
2. decode with the version's schema (type errors are fatal);
3. ``unused key`` warnings;
4. Butane's source validation;
5. translation and desugaring (mount units, trees, boot_device, partition warnings, grub);
6. Ignition validation of the output;
7. ``--strict``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coreos_infra.butane import bootdev, decode, grub, mounts, trees
from coreos_infra.butane.paths import Resolver, fixed_resolver, merged_resolver, prefix_resolver
from coreos_infra.butane.schema import FCOS_VERSIONS
from coreos_infra.butane.translate import Context, translate_base
from coreos_infra.butane.validate import validate_source
from coreos_infra.errors import CoreosInfraError
from coreos_infra.ignition import jsonfmt
from coreos_infra.ignition import rules as ign_rules
from coreos_infra.ignition.merging import merge_with_origins
from coreos_infra.ignition.report import WARNING, PathT, Report, format_reports
from coreos_infra.ignition.types import minor as spec_minor

_IDENTIFIER = re.compile(r"^[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*$")


def go_semver(text: str) -> str | None:
    """Parse a version like go-semver (``01.6.0`` is 1.6.0) and return its canonical string, or None."""
    rest, plus, metadata = text.partition("+")
    core, dash, pre = rest.partition("-")
    parts = core.split(".", 2)
    if len(parts) != 3 or (dash and not _IDENTIFIER.match(pre)):
        return None
    numbers = []
    for part in parts:
        if not re.fullmatch(r"[+-]?\d+", part):
            return None
        numbers.append(int(part))
    out = ".".join(str(n) for n in numbers)
    if dash:
        out += "-" + pre
    if plus:
        out += "+" + metadata
    return out


REASON_SOURCE_INVALID = "source config is invalid"
REASON_OUTPUT_INVALID = "config generated was invalid"
REASON_STRICT = "Config produced warnings and --strict was specified"

WARN_ROOT_EXPAND = (
    "root partition cannot expand; it is set to fill available space but is followed by an "
    "auto-positioned partition"
)
_RESERVED_NUMBERS = {"BIOS-BOOT": 1, "PowerPC-PReP-boot": 1, "EFI-SYSTEM": 2, "boot": 3, "root": 4}


class ButaneError(CoreosInfraError):
    """Translation failed. ``reports`` holds the report entries; ``reason`` the final status line's reason.

    ``str()`` is the raw report lines followed by ``Error translating config: <reason>`` (or, for
    ``--strict``, ``Config produced warnings and --strict was specified``).
    """

    def __init__(self, reason: str, reports: list[Report] | None = None, *, source: str = "") -> None:
        self.reason = reason
        self.reports = list(reports or [])
        self.source = source
        super().__init__(format_reports(self.reports) + self.status_line)

    @property
    def status_line(self) -> str:
        """The last line Butane prints (``Error translating config: ...`` or the --strict message)."""
        return self.reason if self.reason == REASON_STRICT else f"Error translating config: {self.reason}"


@dataclass
class Translation:
    """A successful translation: the Ignition config and the warnings."""

    config: dict[str, Any]
    reports: list[Report] = field(default_factory=list)
    source: str = ""

    def to_json(self, pretty: bool = False) -> bytes:
        """The config as Butane prints it (compact or pretty), ending with a newline."""
        return jsonfmt.dumps(self.config, pretty=pretty)

    @property
    def version(self) -> str:
        return str(self.config["ignition"]["version"])


def _locate(reports: list[Report], decoded: decode.Decoded, resolver: Resolver | None) -> list[Report]:
    """Give each report a YAML path (through ``resolver`` for JSON paths) and a line/column."""
    out = []
    for r in reports:
        path = r.path
        if path is not None and resolver is not None:
            path = resolver(path)
        line, col = r.line, r.column
        if line is None and path is not None:
            pos = decoded.position(path)
            if pos is not None:
                line, col = pos
        out.append(Report(r.kind, r.message, path, line, col))
    return out


def _partition_warnings(config: dict[str, Any], fcos_minor: int) -> list[Report]:
    out = []
    for i, disk in enumerate((config.get("storage") or {}).get("disks") or []):
        if disk.get("wipeTable") is True:
            continue
        parts = disk.get("partitions") or []
        for j, part in enumerate(parts):
            label = part.get("label")
            ppath: PathT = ("storage", "disks", i, "partitions", j)
            if label in _RESERVED_NUMBERS and part.get("number", 0) != _RESERVED_NUMBERS[label]:
                out.append(
                    Report(
                        WARNING,
                        "incorrect partition number; a new partition will be created using reserved label",
                        (*ppath, "label"),
                    )
                )
            if label == "root" and fcos_minor >= 3:
                size = part.get("sizeMiB") or 0
                if size == 0 and any(not p.get("startMiB") for k, p in enumerate(parts) if k != j):
                    out.append(Report(WARNING, WARN_ROOT_EXPAND, (*ppath, "sizeMiB")))
                if 0 < size < 8192:
                    out.append(
                        Report(WARNING, "root should have 8GiB of space assigned", (*ppath, "sizeMiB"))
                    )
    return out


def _variant_version(root: Any, text: str) -> tuple[int, str, str]:
    """(fcos minor version, Ignition spec version, decoder base) from the config's variant and version."""
    try:
        variant, version = decode.sniff_version(root)
    except decode.DecodeError as e:
        raise ButaneError(f"Error unmarshaling yaml: {e}", source=text) from None
    if not variant:
        raise ButaneError("error parsing variant; must be specified", source=text)
    parsed_version = go_semver(version)
    if parsed_version is None:
        raise ButaneError("error parsing version; must be a valid semver", source=text)
    version = parsed_version
    if variant == "rhcos":
        raise ButaneError(
            "rhcos variant has been removed; use openshift variant instead: "
            "https://coreos.github.io/butane/upgrading-openshift/",
            source=text,
        )
    if variant != "fcos" or version not in FCOS_VERSIONS:
        raise ButaneError(f"No translator exists for variant {variant} with version {version}", source=text)
    fcos_minor = int(version.split(".")[1])
    target = FCOS_VERSIONS[version]
    base = {0: "v0_1", 1: "v0_2", 2: "v0_3", 3: "v0_3", 4: "v0_4", 5: "v0_5", 6: "v0_6", 7: "v0_7"}[
        fcos_minor
    ]
    return fcos_minor, target, base


def translate(
    data: bytes | str,
    *,
    filename: str = "<stdin>",
    files_dir: Path | str | None = None,
    strict: bool = False,
) -> Translation:
    """Translate a Butane config (``variant: fcos``, 1.0.0–1.7.0) into an Ignition config.

    Raises :class:`ButaneError` (with ``.reports``) when the config is invalid, or when ``strict`` and
    there are warnings.
    """
    text = data.decode("utf-8", "surrogateescape") if isinstance(data, bytes) else data
    try:
        root = decode.compose(text)
    except decode.YAMLSyntaxError as e:
        raise ButaneError(f"Error unmarshaling yaml: {e}", source=text) from None
    fcos_minor, target, base = _variant_version(root, text)
    try:
        decoded = decode.decode(root, fcos_minor, base)
    except decode.DecodeError as e:
        raise ButaneError(str(e), source=text) from None
    cfg = decoded.value
    reports = list(decoded.warnings)

    # Butane's own validation
    reports += _locate(validate_source(cfg, fcos_minor, target), decoded, None)
    if any(r.is_error for r in reports):
        raise ButaneError(REASON_SOURCE_INVALID, reports, source=text)

    # translation and desugaring
    ctx = Context(fcos_minor=fcos_minor, target=target, files_dir=Path(files_dir) if files_dir else None)
    config = translate_base(ctx, cfg)
    resolver: Resolver = prefix_resolver(ctx.exceptions)

    generated, gen_origins = mounts.mount_units(cfg, fcos_minor)
    if generated:
        config, origins = merge_with_origins(generated, config)
        resolver = merged_resolver(
            origins, fixed_resolver(gen_origins, ("storage", "filesystems")), resolver
        )

    tree_origins = trees.add_trees(ctx, cfg, config)
    if tree_origins:
        resolver = _override(tree_origins, resolver)

    if fcos_minor >= 3:
        generated, gen_origins = bootdev.boot_device_config(cfg)
        if generated:
            config, origins = merge_with_origins(generated, config)
            resolver = merged_resolver(origins, fixed_resolver(gen_origins, ("boot_device",)), resolver)

    translation_reports = _partition_warnings(config, fcos_minor)

    if fcos_minor >= 5:
        generated = grub.grub_config(cfg)
        if generated:
            config, origins = merge_with_origins(generated, config)
            resolver = merged_resolver(origins, fixed_resolver({}, ("grub", "users")), resolver)

    reports += _locate(ctx.reports + translation_reports, decoded, resolver)
    if any(r.is_error for r in reports):
        raise ButaneError(REASON_SOURCE_INVALID, reports, source=text)

    config = jsonfmt.normalize(config)
    reports += _locate(ign_rules.validate(config, spec_minor=spec_minor(target)), decoded, resolver)
    if any(r.is_error for r in reports):
        raise ButaneError(REASON_OUTPUT_INVALID, reports, source=text)
    if strict and reports:
        raise ButaneError(REASON_STRICT, reports, source=text)
    return Translation(config, reports, source=text)


def _override(exceptions: dict[PathT, PathT], fallback: Resolver) -> Resolver:
    def resolve(path: PathT) -> PathT:
        for n in range(len(path), 0, -1):
            if path[:n] in exceptions:
                return exceptions[path[:n]]
        return fallback(path)

    return resolve
