"""Install scenarios (like ``kola testiso``) with the fixture installer, and its config handling.

Boot tests (real QEMU, real firmware, Debian's real ``ignition``), as few boots as possible:

- ``usb`` (the ISO target in install mode, built for site lab host dns1 by the library pipeline, with
  extra destination kargs and a NetworkManager keyfile) installs under SeaBIOS from the ISO as a CD-ROM to
  a blank disk; the installed disk boots and passes the delivered-config comparison plus the installer
  checks (kargs, consoles, embedded config, keyfiles); a second boot of it shows Ignition did not run
  again and every file is unchanged. Three QEMU runs.
- ``pxe`` in install mode (initramfs customized like ``pxe customize --dest-device --dest-ignition``),
  netbooted by QEMU's iPXE over TFTP under OVMF, installs; the installed disk passes. Two QEMU runs.

Fast tests run ``installer.sh`` under the host's busybox ``sh`` with a fake applied system: the merge of
``/etc/coreos/installer.d/*.yaml`` (lexical order, lists appended, last scalar wins), the coreos.inst.*
kargs, the karg editor, and the errors for bad configs.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import http.server
import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from coreos_infra import pipeline, qemu
from coreos_infra.boottest import install
from coreos_infra.fixtures import FixtureMirror
from coreos_infra.recipes.project import load_project

ROOT = Path(__file__).resolve().parent.parent
INSTALLER_SH = ROOT / "coreos_infra" / "fixtures" / "data" / "installer.sh"
TIMEOUT = 600.0
KEYFILE = (
    "[connection]\nid=fixture-wired\ntype=ethernet\n\n"
    "[ipv4]\nmethod=manual\naddress1=10.0.2.15/24,10.0.2.2\n"
)


# ------------------------------------------------------------------ installer.sh under busybox


def _busybox() -> str:
    busybox = shutil.which("busybox")
    if busybox is None:
        pytest.skip("busybox (busybox-static) is not installed")
    return busybox


def _installer(
    tmp: Path, files: dict[str, str], *args: str, cmdline: str = ""
) -> subprocess.CompletedProcess[str]:
    root = tmp / "root"
    conf = root / "etc" / "coreos" / "installer.d"
    conf.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (conf / name).write_text(text)
    env = {**os.environ, "FIXTURE_INSTALL_ROOT": str(root), "FIXTURE_INSTALL_WORK": str(tmp / "work"),
           "CMDLINE": cmdline}  # fmt: skip
    return subprocess.run([_busybox(), "sh", str(INSTALLER_SH), *args], capture_output=True, text=True,
                          env=env, timeout=30)  # fmt: skip


def test_installer_merges_config_files_in_lexical_order(tmp_path: Path) -> None:
    files = {
        # what customize writes (serde_yaml style) ...
        "0001-customize.yaml": "ignition-file: /etc/coreos/dest.ign\nconsole:\n- tty0\n- ttyS0,115200n8\n"
        "append-karg:\n- from=customize\ndest-device: /dev/vda\n",
        # ... and a user's file, read first (lexical order), in other YAML spellings
        "0000-user.yaml": "---\n# comment\ndest-device: '/dev/sdz'   # overridden by the later file\n"
        'append-karg: [ "a=1", b ]\ndelete-karg:\n  - mitigations=auto,nosmt\ncopy-network: True\n'
        "console: [ttyS1]\n",
        "0002-empty.yaml": "{}\n",
    }
    r = _installer(tmp_path, files, "--config")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.splitlines() == [
        "ignition-file: /etc/coreos/dest.ign",
        "dest-device: /dev/vda",  # the last file wins for scalars
        "copy-network: true",
        "console:",  # lists append, files in order; consoles normalized (9600n8 default)
        "- ttyS1,9600n8",
        "- tty0",
        "- ttyS0,115200n8",
        "append-karg:",
        "- a=1",
        "- b",
        "- from=customize",
        "delete-karg:",
        "- mitigations=auto,nosmt",
    ]


def test_installer_takes_the_coreos_inst_kargs(tmp_path: Path) -> None:
    cmdline = (
        "coreos.inst.install_dev=vda coreos.inst.ignition_url=http://10.0.2.2/c.ign coreos.inst.insecure=1"
    )
    r = _installer(tmp_path, {}, "--config", cmdline=cmdline)
    assert r.returncode == 0, r.stdout
    assert "dest-device: /dev/vda" in r.stdout.splitlines()  # a bare name gets /dev/
    assert "ignition-url: http://10.0.2.2/c.ign" in r.stdout and "insecure-ignition: true" in r.stdout
    assert "insecure: true" in r.stdout
    clash = _installer(tmp_path, {"a.yaml": "dest-device: /dev/vdb\n"}, "--config", cmdline=cmdline)
    assert clash.returncode == 1
    assert "FIXTURE-INSTALL-FAILED two destination devices: dest-device /dev/vdb" in clash.stdout


def test_installer_karg_editor_is_coreos_installers(tmp_path: Path) -> None:
    r = _installer(tmp_path, {}, "--edit-options", "a b a  c $ignition_firstboot", "", "d=1\n  e  ")
    assert r.stdout.strip() == "a b a  c $ignition_firstboot d=1 e"  # inner spaces stay, as upstream
    # deletes replace every non-overlapping " D " (one of two adjacent duplicates survives), then appends
    r = _installer(tmp_path, {}, "--edit-options", "x x y x", "x", "z")
    assert r.stdout.strip() == "x y z"
    r = _installer(tmp_path, {}, "--edit-options", "mitigations=auto,nosmt ignition.platform.id=metal",
                   "mitigations=auto,nosmt\nabsent", "console=ttyS0,115200n8")  # fmt: skip
    assert r.stdout.strip() == "ignition.platform.id=metal console=ttyS0,115200n8"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("bogus: 1\n", "line 1: unknown field `bogus`"),
        ("console: ttyS0\n", "line 1: console: invalid type: expected a sequence of strings"),
        (
            "dest-device: [/dev/vda]\n",
            "line 1: dest-device: invalid type: expected a scalar, not a sequence",
        ),
        ("copy-network: maybe\n", 'line 1: copy-network: invalid value "maybe", expected a boolean'),
        ("append-karg:\ndest-device: /dev/vda\n", "line 2: append-karg: invalid type"),
        ("dest-device: '/dev/vda\n", "line 1: unterminated single-quoted scalar"),
        ("- a\n", "line 1: a sequence item outside of a list option"),
        ("dest-device: /dev/vda\ndest-device: /dev/vdb\n", "line 2: duplicate field `dest-device`"),
        ("console: [ttyX0]\n", 'console: invalid console "ttyX0"'),
    ],
)
def test_installer_refuses_bad_configs(tmp_path: Path, text: str, message: str) -> None:
    r = _installer(tmp_path, {"0000-ok.yaml": "dest-device: /dev/vda\n", "0001-bad.yaml": text}, "--config")
    assert r.returncode == 1
    assert r.stdout.startswith("FIXTURE-INSTALL-FAILED "), r.stdout
    assert message in r.stdout
    if "console" not in message:
        assert "/etc/coreos/installer.d/0001-bad.yaml" in r.stdout  # the file, as seen in the live system


def test_installer_refuses_a_missing_destination(tmp_path: Path) -> None:
    r = _installer(tmp_path, {"a.yaml": "dest-device: /dev/nonexistent-disk\n"})
    assert r.returncode == 1
    assert "FIXTURE-INSTALL-FAILED dest-device /dev/nonexistent-disk does not exist" in r.stdout
    r = _installer(tmp_path / "2", {"a.yaml": "append-karg: [a]\n"})
    assert "FIXTURE-INSTALL-FAILED no destination device" in r.stdout
    nothing = _installer(tmp_path / "3", {})
    assert (
        nothing.returncode == 2 and nothing.stdout == ""
    )  # no configs, no karg: the installer does not run


def test_the_live_rootfs_carries_the_metal_image_packed(fixture_mirror: FixtureMirror) -> None:
    from coreos_infra.cpio import read_initrd
    from coreos_infra.fixtures.initramfs import IMAGE_DIR

    files = read_initrd(fixture_mirror.os["x86_64"].rootfs.read_bytes())
    head, *extents = files[f"{IMAGE_DIR}/metal.extents"].decode().splitlines()
    data = files[f"{IMAGE_DIR}/metal.data"]
    size, sector, _ = head.split()
    metal = fixture_mirror.metal["x86_64"]
    assert (int(size), int(sector)) == (metal.stat().st_size, 512)
    with open(metal, "rb") as f:  # every extent is the image's bytes at that offset
        for line in extents:
            off, length, at = map(int, line.split())
            f.seek(off)
            assert f.read(length) == data[at : at + length]
    assert sum(int(line.split()[1]) for line in extents) == len(data) < 32 * 1024**2


# ------------------------------------------------------------------ install boots


def _project_with(target: str, **options: object) -> object:
    project = load_project(ROOT)
    recipe = project.targets[target]
    project.targets[target] = dataclasses.replace(
        recipe, options={**recipe.options, **options}, settings=None
    )
    return project


def _source(mirror: FixtureMirror) -> pipeline.Source:
    return pipeline.Source(base_url=mirror.base_url, keyring=mirror.keyring, bundled_keys=False,
                           fixture_firmware=mirror.entry.parent, fixture=True)  # fmt: skip


def _build(tmp: Path, mirror: FixtureMirror, target: str, **options: object) -> pipeline.BuildOutcome:
    plan = pipeline.BuildPlan(root=ROOT, target=target, site="lab", host="dns1", source=_source(mirror),
                              cache_dir=tmp / "cache", out_root=tmp / "build")  # fmt: skip
    return pipeline.build(plan, _project_with(target, **options))  # type: ignore[arg-type]


def _install_time(report: install.BootTestReport) -> str:
    return ", ".join(c for c in report.passed if c.startswith("install: the live system rebooted"))


def _install(out: pipeline.BuildOutcome, live_vm: qemu.VmConfig, tmp: Path) -> install.BootTestReport:
    return install.run_install(out.meta_path, ignition_bytes=out.request.ignition, live_vm=live_vm,
                               workdir=tmp / "vm", timeout=TIMEOUT, log_dir=tmp / "logs")  # fmt: skip


@pytest.mark.boot
@pytest.mark.slow
def test_usb_installs_under_seabios_and_the_installed_disk_boots_twice(
    fixture_mirror: FixtureMirror, tmp_path: Path
) -> None:
    out = _build(tmp_path, fixture_mirror, "usb", dest_karg_append=["coreos-infra.installed=usb"],
                 dest_karg_delete=["mitigations=auto,nosmt"],
                 network_keyfiles={"fixture-wired.nmconnection": KEYFILE})  # fmt: skip
    iso = out.meta_path.parent / out.meta["artifacts"][0]["name"]
    live_vm = qemu.VmConfig(qemu.Machine("x86_64", "bios", memory_mb=1536), cdrom=iso)
    start = time.monotonic()
    report = _install(out, live_vm, tmp_path)
    print(
        f"usb/bios/install: install + first boot {time.monotonic() - start:.1f} s ({_install_time(report)})"
    )
    print(report.summary())
    assert report.ok, report.summary()
    assert "installed: karg coreos-infra.installed=usb on the command line (append-karg)" in report.passed
    assert "installed: karg mitigations=auto,nosmt removed (delete-karg)" in report.passed
    assert "installed: the primary console is ttyS0,115200n8" in report.passed
    assert "install: 1 NetworkManager keyfiles copied to /boot (copy-network)" in report.passed
    # the lab site's config writes a keyfile, so FCOS (and the fixture) do not propagate the live one
    nm = "installed: the copied keyfiles were not propagated (Ignition wrote NetworkManager keyfiles)"
    assert nm in report.passed
    assert any(c.startswith("live: file /etc/coreos/installer.d/") for c in report.passed)
    assert any(c.startswith("installed: file /etc/hostname") for c in report.passed)
    install_log = (tmp_path / "logs" / "install-x86_64-bios.log").read_text()
    assert (
        "FIXTURE-INSTALL-BEGIN dest=/dev/vda configs=/etc/coreos/installer.d/0000-customize.yaml"
        in install_log
    )
    installed = qemu.parse_log(report.serial_log.read_text())  # type: ignore[union-attr]
    assert "/etc/NetworkManager/system-connections/fixture-wired.nmconnection" not in installed.files
    assert "/etc/NetworkManager/system-connections/lan.nmconnection" in installed.files
    assert "FIXTURE-GRUB-BLS Fedora CoreOS" in report.serial_log.read_text()  # type: ignore[union-attr]

    start = time.monotonic()
    second = install.run_second_boot(out.meta_path, disk=install.installed_disk(tmp_path / "vm"),
                                     machine=live_vm.machine, expected=report, timeout=TIMEOUT,
                                     log_dir=tmp_path / "logs")  # fmt: skip
    print(f"usb/bios/second-boot: {time.monotonic() - start:.1f} s\n{second.summary()}")
    assert second.ok, second.summary()
    assert "second boot: Ignition did not run again" in second.passed
    assert "second boot: file /etc/hostname unchanged" in second.passed
    assert "FIXTURE-IGNITION-OK" not in second.serial_log.read_text()  # type: ignore[union-attr]


@pytest.mark.boot
@pytest.mark.slow
def test_pxe_install_mode_netboots_installs_and_the_installed_disk_boots(
    fixture_mirror: FixtureMirror, tmp_path: Path
) -> None:
    out = _build(tmp_path, fixture_mirror, "pxe", mode="install", dest_device="/dev/vda",
                 dest_karg_append=["coreos-infra.installed=pxe"],
                 dest_console=["ttyS0,115200n8"])  # fmt: skip
    assert install.installs(out.meta)
    start = time.monotonic()
    # the target's own boot: iPXE ROM, TFTP, boot.ipxe (what invoke boot-test would run)
    report = install.install_artifact(out.meta_path, ignition_bytes=out.request.ignition, firmware="uefi",
                                      timeout=TIMEOUT, workdir=tmp_path / "vm",
                                      log_dir=tmp_path / "logs")  # fmt: skip
    took = time.monotonic() - start
    print(f"pxe/uefi/ipxe-tftp-install: install + first boot {took:.1f} s ({_install_time(report)})")
    print(report.summary())
    assert report.ok, report.summary()
    assert "installed: karg coreos-infra.installed=pxe on the command line (append-karg)" in report.passed
    assert "installed: Ignition read /boot/ignition/config.ign (source boot)" in report.passed


@pytest.mark.boot
@pytest.mark.slow
def test_installer_fails_fast_with_the_reason_on_a_too_small_disk(
    fixture_mirror: FixtureMirror, tmp_path: Path
) -> None:
    conf = b"dest-device: /dev/vda\nappend-karg: [x=1]\n"
    config = {"ignition": {"version": "3.3.0"}, "storage": {"files": [
        {"path": "/etc/coreos/installer.d/0000-test.yaml", "mode": 0o600,
         "contents": {"source": "data:;base64," + base64.b64encode(conf).decode()}}]}}  # fmt: skip
    small = tmp_path / "small.raw"
    with open(small, "wb") as f:
        f.truncate(64 * 1024**2)
    disk = ("-drive", f"if=none,id=dest,format=raw,file={small}", "-device", "virtio-blk-pci,drive=dest")
    vm = fixture_mirror.os["x86_64"].direct_boot(tmp_path, ignition=json.dumps(config).encode(), live=True,
                                                 extra_args=disk)  # fmt: skip
    log = qemu.boot(vm, until=("FIXTURE-INSTALL-FAILED",), timeout=120, log_path=tmp_path / "serial.log")
    print(f"installer failure reported after {log.elapsed:.1f} s")
    assert log.reason == "marker:FIXTURE-INSTALL-FAILED"
    assert "FIXTURE-INSTALL-FAILED dest-device /dev/vda is smaller than the image (67108864 < " in log.text
    assert log.elapsed < 60


@pytest.mark.boot
@pytest.mark.slow
def test_pxe_karg_install_over_http_with_image_url_under_seabios(
    fixture_mirror: FixtureMirror, tmp_path: Path
) -> None:
    """pxe/bios/ipxe-http-install: coreos.inst.install_dev / ignition_url / image_url, no customization."""
    root = tmp_path / "http"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://10.0.2.2:{server.server_address[1]}"
        out = _build(tmp_path, fixture_mirror, "pxe", mode="install", dest_device="/dev/vda",
                     ignition_delivery="url", base_url=f"{base}/pxe/",
                     image_url=f"{base}/metal.raw.xz")  # fmt: skip
        bundle = out.meta_path.parent / out.meta["pxe"]["directory"]
        shutil.copytree(bundle, root / "pxe")
        os.link(fixture_mirror.artifact("stable", "x86_64", "raw.xz"), root / "metal.raw.xz")
        assert f"coreos.inst.image_url={base}/metal.raw.xz" in out.meta["pxe"]["kargs"]
        live_vm = qemu.VmConfig(qemu.Machine("x86_64", "bios", memory_mb=1536), net=True, pxe=True,
                                bootfile=f"{base}/pxe/boot.ipxe")  # fmt: skip
        start = time.monotonic()
        report = _install(out, live_vm, tmp_path)
    finally:
        server.shutdown()
        server.server_close()
    took = time.monotonic() - start
    print(f"pxe/bios/ipxe-http-install: install + first boot {took:.1f} s ({_install_time(report)})")
    print(report.summary())
    assert report.ok, report.summary()
    install_log = (tmp_path / "logs" / "install-x86_64-bios.log").read_text()
    assert f"FIXTURE-INSTALL-IMAGE source=url {base}/metal.raw.xz" in install_log
    assert f"FIXTURE-INSTALL-IGNITION source={base}/pxe/config.ign" in install_log
    assert "installed: Ignition read /boot/ignition/config.ign (source boot)" in report.passed


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def test_the_harness_merges_installer_configs_as_the_installer_does() -> None:
    from coreos_infra.fixtures.initramfs import FEATURES
    from coreos_infra.live.customize import CustomizeOptions, Features, InputFile, customize

    user = InputFile("extra.yaml", b"append-karg: [first]\ndest-device: /dev/sdz\nconsole: [ttyS1]\n")
    opts = CustomizeOptions.from_paths(
        dest_ignition=[InputFile("dest.ign", b'{"ignition":{"version":"3.3.0"}}')], dest_device="/dev/vda",
        dest_karg_append=["second"], dest_console=["ttyS0,115200n8"], installer_config=[user],
    )  # fmt: skip
    features = Features.parse(json.dumps(FEATURES).encode())
    live = json.loads(customize(opts, features).live_config or b"{}")
    settings = install.merge_installer_configs(live)
    # 0000-extra.yaml first, then 0001-customize.yaml: lists append, the last dest-device wins
    assert settings["append-karg"] == ["first", "second"]
    assert settings["console"] == ["ttyS1,9600n8", "ttyS0,115200n8"]  # normalized, as installer.sh does
    assert settings["dest-device"] == "/dev/vda"
    assert settings["ignition-file"] == "/etc/coreos/dest.ign"
