"""PXE bundles netboot in QEMU through its built-in iPXE ROM (pxe-virtio.rom under SeaBIOS, efi-virtio.rom
under OVMF), over slirp TFTP and over HTTP from a server on 127.0.0.1, and the fixture OS (real Ignition)
reports the config applied. Four boots: BIOS+TFTP live, UEFI+HTTP live (everything by URL), UEFI+TFTP
unattended-install customization, BIOS+HTTP live with the wrapped Ignition initrd.
"""

from __future__ import annotations

import functools
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from coreos_infra.build import BuildRequest
from coreos_infra.targets.pxe import build

pytestmark = [pytest.mark.boot, pytest.mark.slow]

HOSTNAME = "pxe-fixture-node"
IGNITION = (
    b'{"ignition":{"version":"3.3.0"},"storage":{"files":['
    b'{"path":"/etc/hostname","mode":420,"contents":{"source":"data:,' + HOSTNAME.encode() + b'%0A"}},'
    b'{"path":"/etc/pxe-marker","mode":384,"contents":{"source":"data:,netbooted"}}]}}'
)
TIMEOUT = 300.0


@pytest.fixture(scope="module")
def live_base() -> dict[str, Path]:
    """kernel / initramfs / rootfs of the fixture OS's live media (x86_64), read-only."""
    from coreos_infra.fixtures import ensure_mirror

    return ensure_mirror().live_artifacts("x86_64")


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def http_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, int]]:
    """A directory served over HTTP on 127.0.0.1 (the guest sees it as 10.0.2.2:<port>)."""
    root = tmp_path_factory.mktemp("http")
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, server.server_address[1]
    server.shutdown()
    server.server_close()


def _bundle(out: Path, base: dict[str, Path], **options: Any) -> Path:
    options = {"console": ["ttyS0,115200n8"], "tarball": False, **options}
    req = BuildRequest(target="pxe-boot", kind="pxe", arch="x86_64", ignition=IGNITION, base=base,
                       base_release="fixture", build_id="t", out_dir=out, cache_dir=out / "cache",
                       options=options, name="node")  # fmt: skip
    build(req)
    return out / "node-pxe"


def _netboot(firmware: str, bundle: Path | None, bootfile: str, log: Path) -> Any:
    from coreos_infra.qemu import Machine, VmConfig, boot, parse_log

    vm = VmConfig(Machine("x86_64", firmware, memory_mb=1536), net=True, pxe=True, tftp_dir=bundle,
                  bootfile=bootfile)  # fmt: skip
    result = boot(vm, timeout=TIMEOUT, log_path=log)
    return parse_log(result.text), result


def _assert_applied(r: Any, source: str) -> None:
    assert r.booted, "fixture OS did not boot"
    assert r.ignition_ok, f"Ignition failed: {r.ignition_failed} {r.ignition_log}"
    assert r.source == source
    assert r.files["/etc/hostname"].text == HOSTNAME + "\n"
    assert r.files["/etc/pxe-marker"].text == "netbooted"
    assert r.files["/etc/pxe-marker"].mode == 0o600
    assert "ignition.firstboot" in r.kargs and r.karg("ignition.platform.id") == "metal"


def test_bios_tftp_live_rootfs_and_ignition_as_initrds(tmp_path: Path, live_base: dict[str, Path]) -> None:
    bundle = _bundle(tmp_path, live_base)  # no base_url: iPXE fetches relative to the script, over TFTP
    r, log = _netboot("bios", bundle, "boot.ipxe", tmp_path / "serial.log")
    _assert_applied(r, "initrd")
    assert r.rootfs == {"source": "initrd", "stamp-match": "yes"}
    assert r.karg("initrd") == "ignition.img"  # the UEFI names are on the command line under BIOS too


def test_uefi_http_live_everything_by_url(
    tmp_path: Path, live_base: dict[str, Path], http_root: tuple[Path, int]
) -> None:
    root, port = http_root
    base_url = f"http://10.0.2.2:{port}/uefi-live"
    bundle = _bundle(tmp_path, live_base, base_url=base_url, ignition_delivery="url")
    bundle.rename(root / "uefi-live")
    r, log = _netboot("uefi", None, f"{base_url}/boot.ipxe", tmp_path / "serial.log")
    _assert_applied(r, "url")
    assert r.rootfs == {"source": "url", "stamp-match": "yes"}
    assert r.karg("ignition.config.url") == f"{base_url}/config.ign"
    assert r.karg("coreos.live.rootfs_url") == f"{base_url}/rootfs.img"


def test_uefi_tftp_unattended_install_customization(tmp_path: Path, live_base: dict[str, Path]) -> None:
    bundle = _bundle(
        tmp_path, live_base, mode="install", dest_device="/dev/vda", dest_console=["ttyS0,115200n8"]
    )
    r, log = _netboot("uefi", bundle, "boot.ipxe", tmp_path / "serial.log")
    assert r.booted and r.ignition_ok, f"Ignition failed: {r.ignition_failed} {r.ignition_log}"
    assert r.source == "initrd"
    assert r.rootfs == {"source": "initrd", "stamp-match": "yes"}
    # the live config from `pxe customize` semantics, applied by the real Ignition
    installer = r.files["/etc/coreos/installer.d/0000-customize.yaml"]
    assert (
        installer.text
        == "ignition-file: /etc/coreos/dest.ign\nconsole:\n- ttyS0,115200n8\ndest-device: /dev/vda\n"
    )
    assert installer.mode == 0o600
    dest = json.loads(r.files["/etc/coreos/dest.ign"].text)  # --dest-ignition, re-serialized
    assert [f["path"] for f in dest["storage"]["files"]] == ["/etc/hostname", "/etc/pxe-marker"]


def test_bios_http_live_wrapped_ignition_rootfs_by_url(
    tmp_path: Path, live_base: dict[str, Path], http_root: tuple[Path, int]
) -> None:
    root, port = http_root
    base_url = f"http://10.0.2.2:{port}/bios-live"
    bundle = _bundle(tmp_path, live_base, base_url=base_url)
    bundle.rename(root / "bios-live")
    r, log = _netboot("bios", None, f"{base_url}/boot.ipxe", tmp_path / "serial.log")
    _assert_applied(r, "initrd")
    assert r.rootfs == {"source": "url", "stamp-match": "yes"}
