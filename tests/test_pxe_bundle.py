"""PXE bundles: boot configs, DHCP snippets, option validation and the `pxe` target builder."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest
from test_pxe import fcos_like_initramfs

from coreos_infra.build import BuildRequest, write_meta
from coreos_infra.cpio import read_initrd
from coreos_infra.errors import CoreosInfraError, InputError
from coreos_infra.live.pxe import bootconfig, dhcp
from coreos_infra.live.pxe.plan import PxeOptions, plan_bundle
from coreos_infra.live.pxe.wrap import unwrap_ignition
from coreos_infra.targets import load_builder

IGNITION = (
    b'{"ignition":{"version":"3.3.0"},'
    b'"storage":{"files":[{"path":"/etc/hostname","contents":{"source":"data:,pxe"}}]}}'
)
ENTRY = bootconfig.BootEntry(
    "Fedora CoreOS", "vmlinuz", ("initramfs.img", "rootfs.img", "ignition.img"),
    ("ignition.firstboot", "ignition.platform.id=metal", "console=ttyS0,115200n8"),
)  # fmt: skip


# ---------------------------------------------------------------- boot configs


def test_ipxe_script_names_every_initrd_for_uefi() -> None:
    script = bootconfig.ipxe_script(ENTRY, "http://10.0.0.1:8080/pxe/", comments=["hello"])
    lines = script.splitlines()
    assert lines[:3] == ["#!ipxe", "# hello", "set base-url http://10.0.0.1:8080/pxe"]
    kernel = next(line for line in lines if line.startswith("kernel "))
    assert kernel.split()[1] == "${base-url}/vmlinuz"
    args = kernel.split()[2:-3]
    assert kernel.endswith(" || goto failed")
    assert args[:3] == ["initrd=initramfs.img", "initrd=rootfs.img", "initrd=ignition.img"]
    assert args[3:] == list(ENTRY.kargs)
    assert [line for line in lines if line.startswith("initrd ")] == [
        f"initrd --name {n} ${{base-url}}/{n} || goto failed" for n in ENTRY.initrds
    ]
    assert lines.index(kernel) < lines.index("boot || goto failed")
    relative = bootconfig.ipxe_script(ENTRY, None)
    assert "kernel vmlinuz initrd=initramfs.img" in relative and "base-url" not in relative


def test_pxelinux_config() -> None:
    text = bootconfig.pxelinux_config(ENTRY, "sites/lab/")
    assert "  KERNEL sites/lab/vmlinuz\n" in text
    append = re.search(r"^  APPEND (.*)$", text, re.M)
    assert append is not None
    assert append.group(1).split() == [
        "initrd=sites/lab/initramfs.img,sites/lab/rootfs.img,sites/lab/ignition.img",
        *ENTRY.kargs,
    ]
    assert "  IPAPPEND 2" in text and text.startswith("DEFAULT coreos\n")


def test_grub_config_is_valid_grub_script(tmp_path: Path) -> None:
    entry = bootconfig.BootEntry(
        "Lab", "vmlinuz", ("initramfs.img",), ("a=b", "coreos.inst.ignition_url=http://h/c?x=1&y=2")
    )
    text = bootconfig.grub_config(entry, "pxe")
    assert "    linux /pxe/vmlinuz a=b 'coreos.inst.ignition_url=http://h/c?x=1&y=2'\n" in text
    assert "    initrd /pxe/initramfs.img\n" in text
    assert "serial" not in text  # no serial console on the kernel command line
    serial = bootconfig.grub_config(ENTRY)
    assert "serial --unit=0 --speed=115200\nterminal_input console serial\n" in serial
    cfg = tmp_path / "grub.cfg"
    cfg.write_text(text)
    if shutil.which("grub-script-check"):
        subprocess.run(["grub-script-check", str(cfg)], check=True)
        cfg.write_text(text.replace("}", ""))
        assert subprocess.run(["grub-script-check", str(cfg)], capture_output=True).returncode != 0


@pytest.mark.parametrize("karg", ["a b", "x\nDEFAULT evil", "", "y=${net0/mac}", "tab\there"])
def test_unsafe_kernel_arguments_are_refused(karg: str) -> None:
    with pytest.raises(InputError, match="kernel argument"):
        bootconfig.BootEntry("x", "vmlinuz", (), (karg,))


def test_unsafe_file_names_and_dirs_are_refused() -> None:
    with pytest.raises(InputError, match="unsafe boot file name"):
        bootconfig.BootEntry("x", "../vmlinuz", (), ())
    with pytest.raises(InputError, match="not a plain relative directory"):
        bootconfig.pxelinux_config(ENTRY, "../etc")


# ---------------------------------------------------------------- DHCP


def test_dnsmasq_snippet_boot_file_by_arch() -> None:
    plan = dhcp.DhcpPlan("lab", "10.0.0.5", "http://10.0.0.5/pxe/boot.ipxe")
    lines = dhcp.dnsmasq_snippet(plan).splitlines()
    for code, tag in ((0, "pxe-bios"), (7, "pxe-efi-x64"), (9, "pxe-efi-x64")):
        assert f"dhcp-match=set:{tag},option:client-arch,{code}" in lines
        assert f"dhcp-match=set:coreos-x86_64,option:client-arch,{code}" in lines
    assert not any("client-arch,11" in line for line in lines)  # an x86_64 bundle is not for arm64 clients
    assert "dhcp-userclass=set:ipxe,iPXE" in lines
    assert "dhcp-boot=tag:pxe-bios,tag:!ipxe,undionly.kpxe,,10.0.0.5" in lines
    assert "dhcp-boot=tag:pxe-efi-x64,tag:!ipxe,ipxe.efi,,10.0.0.5" in lines
    assert "dhcp-boot=tag:ipxe,tag:coreos-x86_64,http://10.0.0.5/pxe/boot.ipxe,,10.0.0.5" in lines
    other = dhcp.dnsmasq_snippet(
        dhcp.DhcpPlan("lab", None, "boot.ipxe", "pxelinux", "grub", "lab")
    ).splitlines()
    assert "dhcp-boot=tag:pxe-bios,lab/pxelinux.0" in other
    assert "dhcp-boot=tag:pxe-efi-x64,lab/grubx64.efi" in other
    assert not any("iPXE" in line or "tag:ipxe" in line for line in other)
    arm = dhcp.dnsmasq_snippet(
        dhcp.DhcpPlan("lab", None, "http://h/a/boot.ipxe", arch="aarch64")
    ).splitlines()
    assert "dhcp-boot=tag:pxe-efi-arm64,tag:!ipxe,ipxe-arm64.efi" in arm
    assert "dhcp-boot=tag:ipxe,tag:coreos-aarch64,http://h/a/boot.ipxe" in arm
    assert not any("client-arch,0" in line for line in arm)
    shim = dhcp.dnsmasq_snippet(dhcp.DhcpPlan("lab", None, "boot.ipxe", "pxelinux", "shim")).splitlines()
    assert "dhcp-boot=tag:pxe-efi-x64,shimx64.efi" in shim


def test_kea_snippet_is_json_with_arch_classes() -> None:
    plan = dhcp.DhcpPlan("lab", "10.0.0.5", "http://10.0.0.5/pxe/boot.ipxe", "ipxe", "grub")
    doc = json.loads(dhcp.kea_snippet(plan))
    classes = {c["name"]: c for c in doc["Dhcp4"]["client-classes"]}
    assert list(classes) == ["coreos-ipxe-x86_64", "coreos-pxe-bios", "coreos-pxe-efi-x64"]
    ipxe = classes["coreos-ipxe-x86_64"]
    assert ipxe["boot-file-name"] == "http://10.0.0.5/pxe/boot.ipxe"
    assert ipxe["test"].startswith("substring(option[77].hex,0,4) == 'iPXE' and (option[93].hex == 0x0000")
    assert classes["coreos-pxe-bios"]["boot-file-name"] == "undionly.kpxe"
    assert (
        classes["coreos-pxe-bios"]["test"] == "not member('coreos-ipxe-x86_64') and option[93].hex == 0x0000"
    )
    x64 = classes["coreos-pxe-efi-x64"]
    assert x64["boot-file-name"] == "grubx64.efi"
    assert x64["test"].endswith("(option[93].hex == 0x0007 or option[93].hex == 0x0009)")
    assert all(c["next-server"] == "10.0.0.5" for c in classes.values())
    arm = dhcp.kea_client_classes(
        dhcp.DhcpPlan("lab", None, "boot.ipxe", uefi_loader="grub", arch="aarch64")
    )
    assert arm == [
        {
            "name": "coreos-pxe-efi-arm64",
            "test": "option[93].hex == 0x000b",
            "boot-file-name": "grubaa64.efi",
        }
    ]
    with pytest.raises(InputError, match="next_server"):
        dhcp.DhcpPlan("lab", "pxe.example", "boot.ipxe")


# ---------------------------------------------------------------- options


@pytest.mark.parametrize(
    ("options", "key", "message"),
    [
        ({"mode": "usb"}, "mode", "expected one of: live, install"),
        ({"colour": 1}, "colour", "unknown PXE option"),
        ({"mode": "install"}, "dest_device", "needs dest_device"),
        ({"mode": "install", "dest_device": "sda"}, "dest_device", "not a device path"),
        ({"mode": "live", "dest_device": "/dev/sda"}, "dest_device", "only valid with mode: install"),
        ({"image_url": "http://x/m.raw.xz"}, "image_url", "only valid with mode: install"),
        ({"rootfs": "url"}, "rootfs", "needs base_url"),
        ({"ignition_delivery": "url"}, "ignition_delivery", "needs base_url"),
        ({"base_url": "ftp://x/y"}, "base_url", "not an absolute"),
        ({"base_url": "http://x/y?a=b"}, "base_url", "query"),
        ({"kernel_args": ["ok", "not ok"]}, "kernel_args", "without spaces"),
        ({"console": 5}, "console", "list of strings"),
        ({"tarball": "yes"}, "tarball", "true or false"),
        ({"next_server": "host"}, "next_server", "IPv4"),
        ({"tftp_dir": "../x"}, "tftp_dir", "plain relative"),
        ({"bios_loader": "grub"}, "bios_loader", "ipxe, pxelinux"),
    ],
)
def test_option_errors_name_the_key(options: dict[str, Any], key: str, message: str) -> None:
    with pytest.raises(InputError, match=re.escape(message)) as e:
        PxeOptions.parse(options, where="targets.pxe")
    assert e.value.location.path == f"targets.pxe.{key}"


def test_kernel_arguments_per_mode() -> None:
    def kargs(**options: Any) -> tuple[str, ...]:
        return plan_bundle(PxeOptions.parse(options), name="n").entry.kargs

    base = "http://10.0.2.2:8000/b"
    assert kargs() == ("ignition.firstboot", "ignition.platform.id=metal")
    live_url = kargs(
        base_url=base, ignition_delivery="url", console=["ttyS0,115200n8"], kernel_args=["quiet"]
    )
    assert live_url == (
        "ignition.firstboot", "ignition.platform.id=metal", f"coreos.live.rootfs_url={base}/rootfs.img",
        f"ignition.config.url={base}/config.ign", "console=ttyS0,115200n8", "quiet",
    )  # fmt: skip
    assert kargs(base_url=base, mode="install", dest_device="/dev/sda", ignition_delivery="url",
                 image_url="http://m/metal.raw.xz", skip_reboot=True) == (
        f"coreos.live.rootfs_url={base}/rootfs.img", "coreos.inst.install_dev=/dev/sda",
        f"coreos.inst.ignition_url={base}/config.ign", "coreos.inst.image_url=http://m/metal.raw.xz",
        "coreos.inst.skip_reboot",
    )  # fmt: skip
    install_initrd = plan_bundle(PxeOptions.parse({"dest_device": "/dev/sda"}), name="n")  # mode inferred
    assert install_initrd.entry.kargs == ("ignition.firstboot", "ignition.platform.id=metal")
    assert install_initrd.entry.initrds == ("initramfs.img", "rootfs.img")
    assert install_initrd.customize and install_initrd.customize_dest_ignition
    live = plan_bundle(PxeOptions.parse({}), name="n")
    assert live.entry.initrds == ("initramfs.img", "rootfs.img", "ignition.img")
    assert plan_bundle(PxeOptions.parse({"base_url": base}), name="n").entry.initrds == (
        "initramfs.img", "ignition.img"
    )  # fmt: skip


# ---------------------------------------------------------------- target builder


@pytest.fixture(scope="module")
def base_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("base")
    (d / "kernel").write_bytes(b"MZ fake kernel" * 1000)
    (d / "initramfs").write_bytes(fcos_like_initramfs())
    (d / "rootfs").write_bytes(b"\x07\x07\x01rootfs" * 5000)
    return {"kernel": d / "kernel", "initramfs": d / "initramfs", "rootfs": d / "rootfs"}


def request(out: Path, base: dict[str, Path], secrets: bool = False, **options: Any) -> BuildRequest:
    return BuildRequest(target="lab", kind="pxe", arch="x86_64", ignition=IGNITION, base=base,
                        base_release="40.20240101.3.0", build_id="b1", out_dir=out, cache_dir=out / "cache",
                        options=options, name="lab-dns1", contains_secrets=secrets)  # fmt: skip


def test_build_live_bundle_and_tarball_verify(tmp_path: Path, base_files: dict[str, Path]) -> None:
    req = request(tmp_path / "out", base_files, console=["ttyS0,115200n8"])
    result = load_builder("pxe")(req)
    meta = json.loads(write_meta(req, result).read_text())
    bundle = tmp_path / "out" / "lab-dns1-pxe"
    tar = tmp_path / "out" / "lab-dns1-pxe.tar"
    assert result.artifacts[0] == tar
    assert sorted(p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file()) == [
        "README.txt", "SHA256SUMS", "boot.ipxe", "dnsmasq.conf", "grub.cfg", "ignition.img", "initramfs.img",
        "kea-dhcp4.json", "pxelinux.cfg/default", "rootfs.img", "vmlinuz",
    ]  # fmt: skip
    assert (bundle / "vmlinuz").read_bytes() == base_files["kernel"].read_bytes()
    assert (bundle / "initramfs.img").read_bytes() == base_files["initramfs"].read_bytes()
    assert unwrap_ignition((bundle / "ignition.img").read_bytes()) == IGNITION
    assert subprocess.run(["sha256sum", "-c", "--quiet", "SHA256SUMS"], cwd=bundle).returncode == 0
    extract = tmp_path / "extract"
    extract.mkdir()
    subprocess.run(["tar", "-xf", str(tar), "-C", str(extract)], check=True)
    assert subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=extract / "lab-dns1-pxe",
                          capture_output=True, check=True).stdout.count(b": OK") == 10  # fmt: skip
    # a tampered file fails verification
    (extract / "lab-dns1-pxe" / "boot.ipxe").write_text("#!ipxe\nshell\n")
    assert subprocess.run(["sha256sum", "-c", "--quiet", "SHA256SUMS"], cwd=extract / "lab-dns1-pxe",
                          capture_output=True).returncode != 0  # fmt: skip
    assert meta["pxe"]["kargs"] == [
        "ignition.firstboot",
        "ignition.platform.id=metal",
        "console=ttyS0,115200n8",
    ]
    assert meta["artifacts"][0]["sha256"] == hashlib.sha256(tar.read_bytes()).hexdigest()
    with tarfile.open(tar) as t:
        assert all(m.uid == 0 and m.mtime == 0 for m in t.getmembers())


def test_build_is_reproducible_and_replaces_old_bundle(tmp_path: Path, base_files: dict[str, Path]) -> None:
    build = load_builder("pxe")
    build(request(tmp_path / "a", base_files))
    (tmp_path / "a" / "lab-dns1-pxe" / "stale").write_text("old")
    build(request(tmp_path / "a", base_files))
    build(request(tmp_path / "b", base_files))
    assert not (tmp_path / "a" / "lab-dns1-pxe" / "stale").exists()
    assert (tmp_path / "a" / "lab-dns1-pxe.tar").read_bytes() == (
        tmp_path / "b" / "lab-dns1-pxe.tar"
    ).read_bytes()
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["lab-dns1-pxe", "lab-dns1-pxe.tar"]
    build(request(tmp_path / "a", base_files, tarball=False))
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["lab-dns1-pxe"]  # no stale tarball


def test_build_install_mode_customizes_initramfs(tmp_path: Path, base_files: dict[str, Path]) -> None:
    options = {"dest_console": ["ttyS0,115200n8"], "base_url": "http://10.0.2.2:8000/pxe", "tarball": False}
    req = request(tmp_path / "out", base_files, True, mode="install", dest_device="/dev/vda", **options)
    result = load_builder("pxe")(req)
    bundle = tmp_path / "out" / "lab-dns1-pxe"
    assert not (tmp_path / "out" / "lab-dns1-pxe.tar").exists()
    assert result.meta["pxe"]["customized_initramfs"] is True
    initramfs = (bundle / "initramfs.img").read_bytes()
    original = base_files["initramfs"].read_bytes()
    assert initramfs.startswith(original) and initramfs[len(original) + 1 : len(original) + 5] == b"7zXZ"
    live = json.loads(unwrap_ignition(initramfs))
    files = {f["path"]: f for f in live["storage"]["files"]}
    assert set(files) == {"/etc/coreos/dest.ign", "/etc/coreos/installer.d/0000-customize.yaml"}
    assert not (bundle / "config.ign").exists() and not (bundle / "ignition.img").exists()
    assert (bundle / "initramfs.img").stat().st_mode & 0o777 == 0o600  # carries the secret config
    ipxe = (bundle / "boot.ipxe").read_text()
    assert "coreos.live.rootfs_url=http://10.0.2.2:8000/pxe/rootfs.img" in ipxe
    assert "ignition.firstboot ignition.platform.id=metal" in ipxe
    assert "coreos.inst.install_dev" not in ipxe
    assert (
        "dhcp-boot=tag:ipxe,tag:coreos-x86_64,http://10.0.2.2:8000/pxe/boot.ipxe,,10.0.2.2"
        in (bundle / "dnsmasq.conf").read_text()
    )
    assert "WARNING" in (bundle / "README.txt").read_text()


def test_build_install_by_url(tmp_path: Path, base_files: dict[str, Path]) -> None:
    options = {"ignition_delivery": "url", "base_url": "tftp://10.0.0.1/lab", "tarball": False}
    req = request(tmp_path / "out", base_files, mode="install", dest_device="/dev/sda", **options)
    load_builder("pxe")(req)
    bundle = tmp_path / "out" / "lab-dns1-pxe"
    assert (bundle / "config.ign").read_bytes() == IGNITION
    assert (bundle / "initramfs.img").read_bytes() == base_files["initramfs"].read_bytes()
    grub = (bundle / "grub.cfg").read_text()
    assert "coreos.inst.install_dev=/dev/sda coreos.inst.ignition_url=tftp://10.0.0.1/lab/config.ign" in grub
    assert "ignition.firstboot" not in grub
    assert read_initrd((bundle / "initramfs.img").read_bytes(), "config.ign") == {}


def test_build_failure_leaves_nothing(tmp_path: Path, base_files: dict[str, Path]) -> None:
    out = tmp_path / "out"
    out.mkdir()
    bad = dict(base_files, rootfs=tmp_path / "missing")
    with pytest.raises(CoreosInfraError, match="rootfs"):
        load_builder("pxe")(request(out, bad))
    with pytest.raises(InputError, match="dest_device"):
        load_builder("pxe")(request(out, base_files, mode="install"))
    assert list(out.iterdir()) == []


def test_build_aarch64_bundle_has_no_pxelinux(tmp_path: Path, base_files: dict[str, Path]) -> None:
    req = request(
        tmp_path / "out", base_files, console=["ttyAMA0,115200n8"], uefi_loader="grub", tarball=False
    )
    req = BuildRequest(**{**req.__dict__, "arch": "aarch64"})
    load_builder("pxe")(req)
    bundle = tmp_path / "out" / "lab-dns1-pxe"
    assert not (bundle / "pxelinux.cfg").exists()
    assert "PXELINUX" not in (bundle / "README.txt").read_text()
    assert (
        "linux /vmlinuz ignition.firstboot ignition.platform.id=metal console=ttyAMA0,115200n8"
        in (bundle / "grub.cfg").read_text()
    )
    assert "dhcp-boot=tag:pxe-efi-arm64,grubaa64.efi" in (bundle / "dnsmasq.conf").read_text()
