"""What a target kind is: the :class:`Target` base class and the registry every target module fills.

A target module (``coreos_infra/targets/<kind>.py``) declares one subclass, and that class is the only
place the project learns about the kind::

    class QemuTarget(Target, kind="qemu"):
        title = "QEMU/KVM qcow2 disk image"
        options = QemuOptions                        # a dataclass with parse(OptionSource)
        bases = (Base("qemu", "qcow2.xz"),)          # allowed base artifacts, the first is the default
        arches = (Arch.X86_64, Arch.AARCH64)         # the first is the default
        output = Output("qemu", "qcow2", ".qcow2")   # what the main artifact is
        boot = BootProfile(medium="disk", disk_format="qcow2")
        boot_paths = (BootPath("qemu", "uefi", "disk", "disk"),)   # what `invoke boot-test --all` boots

        def build(self, req: BuildRequest) -> BuildResult: ...

``class ...(Target, kind=...)`` registers the class in :data:`REGISTRY`; ``coreos_infra.targets``
imports every module of the package, so a new kind is one new file. The recipe loader, the pipeline,
the boot test and ``invoke list`` read the registry; nothing else names kinds.

Options are parsed once: the recipe loader calls :meth:`Target.parse_options` on the recipe's
``options`` node (errors carry ``file:line:col``) and hands the parsed dataclass to the builder through
:attr:`BuildRequest.options`; a request built by hand with a plain mapping is parsed by the same code
(errors then name ``recipe <target>``).
"""

from __future__ import annotations

import contextlib
import importlib
import pkgutil
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from coreos_infra.build import BuildRequest, BuildResult
from coreos_infra.errors import CoreosInfraError, InputError, Location

if TYPE_CHECKING:
    from coreos_infra import qemu
    from coreos_infra.boottest.paths import BootPath
    from coreos_infra.recipes.yamlsrc import Node


class Arch(StrEnum):
    X86_64 = "x86_64"
    AARCH64 = "aarch64"


@dataclass(frozen=True, order=True)
class Base:
    """A base artifact in the stream metadata (``artifacts.<platform>.formats.<format>`` of an arch)."""

    platform: str
    format: str

    def __str__(self) -> str:
        return f"{self.platform}/{self.format}"


@dataclass(frozen=True)
class Output:
    """The main artifact a build writes: platform and format (as FCOS would name them), file suffix."""

    platform: str  # the FCOS platform the image is for (``ignition.platform.id``), e.g. metal, qemu
    format: str  # e.g. iso, pxe, raw.xz, qcow2
    suffix: str  # the main artifact is ``<name><suffix>``, e.g. ``.raw.xz``; ``-pxe.tar`` for pxe

    def artifact_name(self, name: str) -> str:
        return f"{name}{self.suffix}"


@dataclass(frozen=True)
class BootProfile:
    """How the boot test starts a built artifact in QEMU."""

    medium: str  # "cdrom", "pxe" (TFTP + iPXE) or "disk" (virtio-blk)
    firmware: tuple[str, ...] = ("uefi", "bios")  # x86_64 firmware that boots it (aarch64: always UEFI)
    disk_format: str = "raw"  # the format QEMU opens the disk in (after xz decompression)
    xz: bool = False  # the artifact is xz-compressed: decompress to a sparse file first
    memory_mb: int = 1536


@dataclass(frozen=True)
class InputSource:
    """Where a target's extra inputs (beyond the FCOS base artifacts) come from."""

    cache_dir: Path
    firmware_url: str | None = None  # a directory URL mirroring the Raspberry Pi firmware releases
    fixture_firmware: Path | None = None  # offline: make fixture firmware zips in this directory


class ExtraInput(Protocol):
    """A declared input of a build that is not in the FCOS stream (e.g. the Raspberry Pi firmware)."""

    @property
    def role(self) -> str: ...  # the key in ``BuildRequest.base``

    @property
    def version(self) -> str: ...  # part of the build ID

    def fetch(self, source: InputSource) -> Path: ...  # verified, cached


@dataclass(frozen=True)
class OptionSource:
    """The ``options`` of one recipe as plain data, for an options dataclass to parse."""

    target: str  # the recipe name, e.g. "usb"
    kind: str
    data: Mapping[str, Any]

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def error(self, key: str, message: str, *, hint: str | None = None) -> InputError:
        path = "options" + (f".{key}" if key and not key.startswith("[") else key)
        return InputError(message, Location(file=f"recipe {self.target}", path=path), hint=hint)

    def check_keys(self, allowed: tuple[str, ...]) -> None:
        for key in self.data:
            if key not in allowed:
                raise self.error(key, "unknown key", hint=f"expected one of: {', '.join(allowed)}")


REGISTRY: dict[str, type[Target]] = {}  # filled by Target.__init_subclass__; read it through load_all()
_LOADED: list[bool] = []


class Target:
    """One target kind. Subclasses set the class attributes and implement :meth:`build`."""

    kind: ClassVar[str]
    title: ClassVar[str]  # one line, for `invoke list` and messages ("the Raspberry Pi 4 target is aarch64")
    options: ClassVar[type[Any]]  # a dataclass with ``KEYS`` and ``parse(OptionSource)``
    bases: ClassVar[tuple[Base, ...]]  # allowed base artifacts; the first is the default
    arches: ClassVar[tuple[Arch, ...]] = (Arch.X86_64, Arch.AARCH64)  # the first is the default
    output: ClassVar[Output]
    boot: ClassVar[BootProfile]
    # every way the project claims the kind's artifacts boot (coreos_infra.boottest.paths): the boot
    # matrix (`invoke boot-test --all`) boots each one whose recipe exists
    boot_paths: ClassVar[tuple[BootPath, ...]] = ()
    base_roles: ClassVar[Mapping[str, str]] = {}  # stream artifact role -> role the builder reads

    def __init_subclass__(cls, *, kind: str, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if kind in REGISTRY:
            raise TypeError(f"target kind {kind!r} is declared twice: {REGISTRY[kind]} and {cls}")
        cls.kind = kind
        REGISTRY[kind] = cls

    # -- options ----------------------------------------------------------------------------------
    @classmethod
    def parse_options(cls, target: str, data: Mapping[str, Any], node: Node | None = None) -> Any:
        """Parse a recipe's ``options``; with its YAML ``node``, errors point at the line and column."""
        src = OptionSource(target, cls.kind, data)
        if node is not None:
            node.mapping(cls.options.KEYS)  # an unknown key is reported at the key itself
        with relocated(node):
            return cls.options.parse(src)

    @classmethod
    def options_of(cls, req: BuildRequest) -> Any:
        """The parsed options of ``req`` (parsed here when the request carries a plain mapping)."""
        if isinstance(req.options, cls.options):
            return req.options
        return cls.parse_options(req.target, req.options)

    @classmethod
    def check_arch(cls, req: BuildRequest) -> None:
        if req.arch not in cls.arches:
            raise InputError(
                f"the {cls.title} target is {' or '.join(cls.arches)}, not {req.arch}",
                Location(file=f"recipe {req.target}", path="arch"),
            )

    # -- inputs, build, boot ------------------------------------------------------------------------
    @classmethod
    def inputs(cls, options: Any) -> tuple[ExtraInput, ...]:
        """Inputs beyond the FCOS base artifacts that the pipeline fetches before :meth:`build`."""
        return ()

    def build(self, req: BuildRequest) -> BuildResult:
        raise NotImplementedError

    @classmethod
    def stream_artifacts(cls, meta: Mapping[str, Any], names: Sequence[str], source: str) -> dict[str, str]:
        """Which built file is which FCOS stream artifact (``disk``, ``kernel`` ...) when a build is
        published (``meta``: its meta.json, ``names``: its artifact files); by default the main artifact
        is the ``disk``."""
        disks = [n for n in names if n.endswith(cls.output.suffix)]
        if not disks:
            raise CoreosInfraError(f"{source}: no {cls.output.suffix} artifact in the build")
        return {"disk": disks[0]}

    def delivered_config(self, artifact: Path, ignition: bytes) -> bytes:
        """The Ignition config the artifact hands to its first boot (by default: the site's config)."""
        return ignition

    def boot_vm(self, artifact: Path, machine: qemu.Machine, workdir: Path) -> qemu.VmConfig:
        """The QEMU machine that boots ``artifact`` (per-boot files go to ``workdir``)."""
        from coreos_infra import qemu

        if self.boot.medium == "cdrom":
            return qemu.VmConfig(machine, cdrom=artifact)
        if self.boot.medium != "disk":
            raise CoreosInfraError(f"the {self.kind} target has no {self.boot.medium} boot")
        disk = artifact
        if self.boot.xz:
            from coreos_infra.xzsplice import decompress_to_sparse

            disk = workdir / f"disk.{self.boot.disk_format}"
            decompress_to_sparse(artifact, disk)
        sectors = 512
        if self.boot.disk_format == "raw":
            from coreos_infra.preflight import disk_sector_size

            sectors = disk_sector_size(disk) or 512  # a 4Kn image (metal4k) boots as a 4Kn disk
        return qemu.VmConfig(
            machine, disks=(disk,), disk_format=self.boot.disk_format, disk_sector_size=sectors
        )


def load_all() -> dict[str, type[Target]]:
    """Import every target module of the package (once) and return the registry."""
    if not _LOADED:
        import coreos_infra.targets as package

        for module in pkgutil.iter_modules(package.__path__):
            if module.name != "base" and not module.name.startswith("_"):
                importlib.import_module(f"{package.__name__}.{module.name}")
        _LOADED.append(True)
    return REGISTRY


def target(kind: str) -> type[Target]:
    """The target class of ``kind``."""
    cls = load_all().get(kind)
    if cls is None:
        raise CoreosInfraError(
            f"unknown target kind {kind!r}; expected one of: {', '.join(sorted(REGISTRY))}"
        )
    return cls


@contextlib.contextmanager
def relocated(node: Node | None) -> Iterator[None]:
    """Re-raise an option error of ``options.<path>`` at that path's position under ``node``."""
    try:
        yield
    except InputError as e:
        path = e.location.path or ""
        if node is None or not (path == "options" or path.startswith(("options.", "options["))):
            raise
        at = node_at(node, path.removeprefix("options"))
        mark = at.yaml_node.start_mark
        location = Location(node.file, path, mark.line + 1, mark.column + 1)
        raise InputError(e.reason, location, hint=e.hint) from None


def node_at(node: Node, rest: str) -> Node:
    """The deepest node on ``rest`` (``.key``, ``[i]``, keys may contain dots) that exists under ``node``;
    for a key that a mapping has but names unknown, the key's own node."""
    while rest:
        if rest.startswith("[") and node.is_list:
            index, _, after = rest[1:].partition("]")
            items = node.list()
            if not index.isdigit() or int(index) >= len(items):
                return node
            node, rest = items[int(index)], after
            continue
        if not (rest.startswith(".") and node.is_mapping):
            return node
        m = node.mapping()
        keys = sorted((k for k in m if rest[1:] == k or rest[1:].startswith((f"{k}.", f"{k}["))), key=len)
        if not keys:
            return node
        key = keys[-1]
        child = m.get(key)
        if child is None:
            return m.key_node(key)
        node, rest = child, rest[1 + len(key) :]
    return node
