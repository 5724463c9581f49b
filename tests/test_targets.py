"""The target registry: one class per kind, read by the recipe loader; the option bugs it removed."""

from __future__ import annotations

from pathlib import Path

import pytest
from recipes_testlib import make_project

from coreos_infra.build import BuildRequest
from coreos_infra.errors import InputError
from coreos_infra.recipes import load_project
from coreos_infra.targets import KINDS, REGISTRY, Arch, Base, Kind, Target, load_builder
from coreos_infra.targets.base import OptionSource

REPO = Path(__file__).resolve().parent.parent


def _load_target(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    make_project(tmp_path, target=text)
    return load_project(tmp_path).target("t")


def test_every_kind_declares_its_facts() -> None:
    assert {"iso", "pxe", "rpi4", "metal"} <= set(REGISTRY)
    assert KINDS == tuple(sorted(REGISTRY)) and {str(k) for k in Kind} == set(REGISTRY)
    for kind, cls in REGISTRY.items():
        assert cls.kind == kind and issubclass(cls, Target)
        assert cls.bases and all(isinstance(b, Base) for b in cls.bases), kind
        assert cls.arches and all(isinstance(a, Arch) for a in cls.arches), kind
        assert cls.output.artifact_name("n").startswith("n") and cls.title
        assert cls.boot.medium in ("cdrom", "pxe", "disk")
        assert set(cls.boot.firmware) <= {"uefi", "bios"} and cls.boot.firmware
        assert callable(load_builder(kind))


def test_a_kind_is_declared_once() -> None:
    with pytest.raises(TypeError, match="declared twice"):

        class Again(Target, kind="metal"):  # pragma: no cover - refused at class creation
            pass

    assert REGISTRY["metal"].__name__ == "MetalTarget"


def test_every_project_recipe_parses_its_options_once() -> None:
    project = load_project(REPO)
    for recipe in project.targets.values():
        cls = REGISTRY[recipe.kind]
        assert isinstance(recipe.settings, cls.options), recipe.name
        assert recipe.arch in cls.arches and Base(recipe.base.platform, recipe.base.format) in cls.bases


def test_unknown_kind_lists_the_registry(tmp_path: Path) -> None:
    with pytest.raises(InputError) as e:
        _load_target(tmp_path, "kind: floppy\n")
    assert e.value.hint is not None and all(k in e.value.hint for k in REGISTRY)


# ------------------------------------------------------------------------- the bugs of issue 12


def test_metal_kernel_args_map_passes_loader_and_builder(tmp_path: Path) -> None:
    # before: the loader wanted a list, the builder a map: no value passed both
    recipe = _load_target(
        tmp_path, "kind: metal\noptions:\n  kernel_args: {append: [quiet], delete: [rhgb]}\n"
    )
    assert recipe.options["kernel_args"] == {"append": ["quiet"], "delete": ["rhgb"]}
    assert (recipe.settings.append_kargs, recipe.settings.delete_kargs) == (("quiet",), ("rhgb",))


def test_metal_kernel_args_list_is_refused_at_its_line(tmp_path: Path) -> None:
    with pytest.raises(InputError) as e:
        _load_target(tmp_path, "kind: metal\noptions:\n  kernel_args: [quiet]\n")
    assert str(e.value).startswith("recipes/t.yaml:3:16: options.kernel_args: must be a map")


def test_rpi4_kernel_args_map_and_bad_append_at_its_line(tmp_path: Path) -> None:
    recipe = _load_target(tmp_path, "kind: rpi4\noptions:\n  kernel_args: {append: [quiet]}\n")
    assert recipe.settings.disk.append_kargs == ("quiet",)
    with pytest.raises(InputError) as e:
        _load_target(tmp_path / "b", "kind: rpi4\noptions:\n  kernel_args:\n    append: quiet\n")
    assert str(e.value).startswith("recipes/t.yaml:4:13: options.kernel_args.append: must be a list")


def test_pxe_without_mode_has_one_default(tmp_path: Path) -> None:
    # before: the loader made it an install (then missed dest_device), the builder a live boot
    live = _load_target(tmp_path / "a", "kind: pxe\noptions:\n  console: [tty0]\n")
    assert live.settings.pxe.mode == "live"
    install = _load_target(tmp_path / "b", "kind: pxe\noptions:\n  dest_device: /dev/sda\n")
    assert install.settings.pxe.mode == "install" and install.settings.pxe.dest_device == "/dev/sda"


def test_metal_refuses_a_qcow2_base_at_load_time(tmp_path: Path) -> None:
    # before: the loader accepted it and the builder failed later with "no GPT found"
    with pytest.raises(InputError) as e:
        _load_target(tmp_path, "kind: metal\nbase: {platform: qemu, format: qcow2.xz}\n")
    assert str(e.value).splitlines()[0] == (
        "recipes/t.yaml:2:7: base: the metal target cannot start from qemu/qcow2.xz"
    )
    assert e.value.hint == "allowed: metal/4k.raw.xz, metal/raw.xz"


def test_options_errors_point_at_key_value_or_parent(tmp_path: Path) -> None:
    cases = {
        "kind: metal\noptions:\n  colour: red\n": "recipes/t.yaml:3:3: options.colour: unknown key",
        "kind: metal\noptions:\n  xz_preset: 12\n": "recipes/t.yaml:3:14: options.xz_preset: must be",
        "kind: metal\noptions:\n  console: [tty0, 'ttyS0,x']\n": "recipes/t.yaml:3:19: options.console[1]:",
    }
    for i, (text, expected) in enumerate(cases.items()):
        with pytest.raises(InputError) as e:
            _load_target(tmp_path / str(i), text)
        assert str(e.value).startswith(expected), str(e.value)


def test_parsed_options_reach_the_builder_unparsed_mappings_are_parsed_the_same_way() -> None:
    cls = REGISTRY["metal"]
    parsed = cls.parse_options("m", {"kernel_args": {"append": ["quiet"]}})
    req = BuildRequest(target="m", kind="metal", arch="x86_64", ignition=b"{}", base={}, base_release="",
                       build_id="", out_dir=Path("/nonexistent"), cache_dir=Path("/nonexistent"),
                       options=parsed)  # fmt: skip
    assert cls.options_of(req) is parsed
    plain = BuildRequest(**{**req.__dict__, "options": {"kernel_args": ["quiet"]}})
    with pytest.raises(InputError, match="recipe m: options.kernel_args: must be a map"):
        cls.options_of(plain)


def test_rpi4_custom_firmware_url_needs_a_pin() -> None:
    src = {"firmware": {"version": "v1.50", "url": "https://example.com/fw.zip"}}
    with pytest.raises(InputError, match="options.firmware.sha256: a firmware url needs its sha256"):
        REGISTRY["rpi4"].parse_options("pi", src)
    pinned = REGISTRY["rpi4"].parse_options("pi", {**src, "firmware_lock": "/tmp/own.lock"})
    assert (
        pinned.firmware.lock == Path("/tmp/own.lock")
        and REGISTRY["rpi4"].inputs(pinned)[0].version == "v1.50"
    )


def test_option_source_paths() -> None:
    src = OptionSource("usb", "iso", {})
    assert src.error("console[0]", "x").location.path == "options.console[0]"
    assert src.error("", "x").location.path == "options"
    assert str(src.error("a.b", "bad")) == "recipe usb: options.a.b: bad"
