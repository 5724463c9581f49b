"""The metal target (x86_64): same pipeline as rpi4, no firmware; the ESP stays untouched."""

from __future__ import annotations

import dataclasses
import lzma
from pathlib import Path
from typing import Any

import pytest
from rawdisk_helpers import compress, debugfs_cat, debugfs_stat_mode, make_disk, sh

from coreos_infra import xzsplice
from coreos_infra.build import BuildRequest
from coreos_infra.disk.gpt import verify_gpt
from coreos_infra.errors import InputError
from coreos_infra.targets import load_builder

IGNITION = b'{"ignition":{"version":"3.3.0"}}'


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    d = tmp_path_factory.mktemp("metal")
    offsets = make_disk(d / "base.raw", arch="x86_64", esp_mb=32, boot_mb=64, root_mb=24)
    compress(d / "base.raw", d / "base.raw.xz", block_mb=8)
    single = d / "single.raw.xz"
    single.write_bytes(lzma.compress((d / "base.raw").read_bytes(), preset=1))
    return {"dir": d, "offsets": offsets, "multi": d / "base.raw.xz", "single": single}


def _req(disk: Path, tmp: Path, **options: Any) -> BuildRequest:
    return BuildRequest(
        target="lab-metal",
        kind="metal",
        arch="x86_64",
        ignition=IGNITION,
        base={"disk": disk},
        base_release="40.20240101.3.0",
        build_id="b2",
        out_dir=tmp / "out",
        cache_dir=tmp / "cache",
        options={"xz_preset": 1, **options},
        name="lab-ntp1-metal",
    )


def test_metal_build_spliced(base: dict[str, Any], tmp_path: Path) -> None:
    keyfile = tmp_path / "bond0.nmconnection"
    keyfile.write_text("[connection]\nid=bond0\ntype=bond\n[wifi-security]\npsk=hunter22\n")
    req = _req(
        base["multi"],
        tmp_path,
        console=["ttyS0,115200n8", "tty0"],
        network_keyfiles=[str(keyfile)],
        kernel_args={"append": ["nosmt"]},
    )
    result = load_builder("metal")(req)
    out = result.artifacts[0]
    assert out == tmp_path / "out" / "lab-ntp1-metal.raw.xz"
    img = result.meta["image"]
    assert result.meta["network_keyfiles_contain_secrets"] is True
    assert out.stat().st_mode & 0o777 == 0o600  # the keyfile's psk is inside the image
    assert "firmware" not in result.meta
    assert img["checks"] == ["sgdisk -v", "e2fsck -fn boot"]
    layout = xzsplice.read_layout(base["multi"])
    assert layout is not None
    off = base["offsets"]
    esp_only = set(layout.blocks_covering([(off["esp"], off["boot"])])) - set(
        layout.blocks_covering([(off["boot"], off["root"])])
    )
    assert esp_only and not esp_only & set(img["xz"]["reencoded"])  # the ESP is never touched on metal
    raw = tmp_path / "out.raw"
    xzsplice.decompress_to_sparse(out, raw)
    assert debugfs_cat(raw, off["boot"], "/ignition/config.ign") == IGNITION
    assert debugfs_stat_mode(raw, off["boot"], "/coreos-firstboot-network/bond0.nmconnection") == 0o600
    entry = debugfs_cat(raw, off["boot"], "/loader/entries/ostree-2-fedora-coreos.conf").decode()
    opts = next(line for line in entry.splitlines() if line.startswith("options ")).split()
    assert opts[-3:] == ["console=ttyS0,115200n8", "console=tty0", "nosmt"]
    assert "ignition.platform.id=metal" in opts
    console = debugfs_cat(raw, off["boot"], "/grub2/console.cfg").decode()
    assert "terminal_output console serial\n# CONSOLE-SETTINGS-END" in console
    assert b"No problems found" in sh("sgdisk", "-v", raw).stdout
    sh("e2fsck", "-fn", f"{raw}?offset={off['boot']}")
    assert verify_gpt(raw).sector_size == 512


def test_metal_single_block_falls_back_to_round_trip(base: dict[str, Any], tmp_path: Path) -> None:
    result = load_builder("metal")(_req(base["single"], tmp_path))
    img = result.meta["image"]
    assert img["xz"] == {"spliced": False, "preset": 1}
    assert img["checks"] == ["sgdisk -v", "fsck.vfat -n EFI-SYSTEM", "e2fsck -fn boot", "e2fsck -fn root"]
    raw = tmp_path / "out.raw"
    xzsplice.decompress_to_sparse(result.artifacts[0], raw)
    assert debugfs_cat(raw, base["offsets"]["boot"], "/ignition/config.ign") == IGNITION
    assert img["uncompressed_size"] == raw.stat().st_size
    # holes stayed holes in the working and decompressed image
    assert raw.stat().st_blocks * 512 < raw.stat().st_size / 2


def test_metal_missing_base_and_bad_options(base: dict[str, Any], tmp_path: Path) -> None:
    req = _req(base["multi"], tmp_path, firmware={"version": "v1.50"})
    with pytest.raises(InputError) as exc:
        load_builder("metal")(req)
    assert exc.value.location.path == "options.firmware"
    req = BuildRequest(**{**_req(base["multi"], tmp_path).__dict__, "base": {}})
    with pytest.raises(InputError, match="needs the base 'disk' artifact"):
        load_builder("metal")(req)
    assert not (tmp_path / "out").exists()


def test_metal_build_is_reproducible_without_source_date_epoch(
    base: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same inputs, same bytes: file times come from the base release's date, not the clock."""
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    first = load_builder("metal")(_req(base["multi"], tmp_path / "a")).artifacts[0]
    second = load_builder("metal")(_req(base["multi"], tmp_path / "b")).artifacts[0]
    assert first.read_bytes() == second.read_bytes()
    # ...and the time does matter: another epoch gives other bytes.
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    third = load_builder("metal")(_req(base["multi"], tmp_path / "c")).artifacts[0]
    assert third.read_bytes() != first.read_bytes()


def test_metal_image_with_secrets_is_private(base: dict[str, Any], tmp_path: Path) -> None:
    req = _req(base["multi"], tmp_path)
    public = load_builder("metal")(req).artifacts[0]
    assert public.stat().st_mode & 0o777 == 0o644
    secret = load_builder("metal")(dataclasses.replace(req, out_dir=tmp_path / "s", contains_secrets=True))
    assert secret.artifacts[0].stat().st_mode & 0o777 == 0o600
