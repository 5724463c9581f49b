"""The fixture live ISO, customized by the ISO target both ways, boots in QEMU and the fixture OS (Debian's
real ``ignition``) reports what Ignition applied. Four boots:

- live mode under SeaBIOS (CD-ROM) and OVMF (CD-ROM): the embedded config is the live config; its files
  appear and the live kargs written into the karg areas are on the kernel command line;
- install mode under SeaBIOS and OVMF: the live config writes the installer configuration
  (``/etc/coreos/installer.d/0000-customize.yaml`` with the right dest device, console and kargs) and the
  destination config ``/etc/coreos/dest.ign`` (the site's config, re-serialized), as coreos-installer's
  ``iso customize`` would.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from coreos_infra.build import BuildRequest
from coreos_infra.ignition.installer import parse_config
from coreos_infra.targets.iso import build

pytestmark = [pytest.mark.boot, pytest.mark.slow]

HOSTNAME = "iso-fixture-node"
SITE_CONFIG = (
    b'{"ignition":{"version":"3.3.0"},"storage":{"files":['
    b'{"path":"/etc/hostname","mode":420,"contents":{"source":"data:,' + HOSTNAME.encode() + b'%0A"}},'
    b'{"path":"/etc/iso-marker","mode":384,"contents":{"source":"data:,from-the-iso"}}]}}'
)
TIMEOUT = 300.0


@pytest.fixture(scope="module")
def base_iso() -> Path:
    from coreos_infra.fixtures import ensure_mirror

    return ensure_mirror().iso


def _build(base: Path, out: Path, **options: Any) -> Path:
    req = BuildRequest(target="iso-boot", kind="iso", arch="x86_64", ignition=SITE_CONFIG,
                       base={"iso": base}, base_release="fixture", build_id="t", out_dir=out,
                       cache_dir=out / "cache", options=options, name="node")  # fmt: skip
    return build(req).artifacts[0]


def _boot(iso: Path, firmware: str, log: Path) -> Any:
    from coreos_infra.qemu import Machine, VmConfig, boot, parse_log

    result = boot(VmConfig(Machine("x86_64", firmware, memory_mb=1536), cdrom=iso), timeout=TIMEOUT,
                  log_path=log)  # fmt: skip
    return parse_log(result.text)


@pytest.mark.parametrize("firmware", ["bios", "uefi"])
def test_live_iso_applies_config(firmware: str, base_iso: Path, tmp_path: Path) -> None:
    iso = _build(base_iso, tmp_path, mode="live", kernel_args=["coreos-infra.test=live-" + firmware])
    r = _boot(iso, firmware, tmp_path / "serial.log")
    assert r.booted, "fixture OS did not boot"
    assert r.source == "initrd", "the embedded config was not found in the initrd"
    assert r.ignition_ok, f"Ignition failed: {r.ignition_failed} {r.ignition_log}"
    assert r.files["/etc/hostname"].text == HOSTNAME + "\n"
    assert r.files["/etc/iso-marker"].text == "from-the-iso"
    assert r.files["/etc/iso-marker"].mode == 0o600
    assert r.karg("coreos-infra.test") == "live-" + firmware  # written into the karg embed areas
    assert r.karg("ignition.firstboot") == ""
    assert not any(p.startswith("/etc/coreos/installer.d") for p in r.files)


@pytest.mark.parametrize("firmware", ["bios", "uefi"])
def test_installer_iso_carries_install_config(firmware: str, base_iso: Path, tmp_path: Path) -> None:
    iso = _build(base_iso, tmp_path, mode="install", dest_device="/dev/vda",
                 dest_console=["ttyS0,115200n8"], dest_karg_append=["quiet"])  # fmt: skip
    r = _boot(iso, firmware, tmp_path / "serial.log")
    assert r.booted and r.source == "initrd"
    assert r.ignition_ok, f"Ignition failed: {r.ignition_failed} {r.ignition_log}"
    conf = r.files["/etc/coreos/installer.d/0000-customize.yaml"]
    assert conf.mode == 0o600
    assert yaml.safe_load(conf.text) == {
        "ignition-file": "/etc/coreos/dest.ign",
        "console": ["ttyS0,115200n8"],
        "append-karg": ["quiet"],
        "dest-device": "/dev/vda",
    }
    dest = r.files["/etc/coreos/dest.ign"]
    assert dest.mode == 0o600
    assert dest.content == parse_config(SITE_CONFIG).to_bytes()
    assert json.loads(dest.text)["storage"]["files"][0]["path"] == "/etc/hostname"
    # the site's config is for the installed system, not the live one
    assert "/etc/iso-marker" not in r.files and "/etc/hostname" not in r.files
