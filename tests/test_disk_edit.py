"""ext4 (debugfs) and FAT (mtools) edits inside a whole disk image, boot-filesystem customization, and the
independent checkers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from rawdisk_helpers import BLS_OPTIONS, debugfs_cat, debugfs_stat_mode, make_disk, mtype, sh

from coreos_infra.disk.bls import Console
from coreos_infra.disk.bootfs import BootCustomization, BootFsError, NetworkKeyfile, customize_boot
from coreos_infra.disk.check import ImageCheckError, check_image
from coreos_infra.disk.ext4 import Ext4Error, Ext4Image, read_superblock_label
from coreos_infra.disk.fat import FatImage
from coreos_infra.disk.gpt import verify_gpt


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    image = tmp_path_factory.mktemp("disk") / "disk.raw"
    offsets = make_disk(image, arch="x86_64", esp_mb=16, boot_mb=32, root_mb=8, random_mb=1)
    return image, offsets


@pytest.fixture
def disk(pristine: tuple[Path, dict[str, int]], tmp_path: Path) -> tuple[Path, dict[str, int]]:
    image = tmp_path / "disk.raw"
    shutil.copyfile(pristine[0], image)
    return image, pristine[1]


def test_ext4_read_write_replace(disk: tuple[Path, dict[str, int]]) -> None:
    image, off = disk
    assert read_superblock_label(image, off["boot"]) == ("boot", "96d15588-3596-4b3c-adca-a2ff7279ea63")
    assert read_superblock_label(image, off["esp"]) is None
    fs = Ext4Image(image, off["boot"], source_date_epoch=1700000000)
    assert {e.name for e in fs.listdir("/")} >= {"loader", "grub2", "coreos", "ignition.firstboot"}
    assert fs.read("/grub2/grub.cfg").startswith(b"set timeout=1")
    fs.mkdir("/ignition", mode=0o700)
    fs.write("/ignition/config.ign", b'{"a": 1}', mode=0o600)
    assert fs.read("/ignition/config.ign") == b'{"a": 1}'
    fs.write("/ignition/config.ign", b'{"b": 2}', mode=0o600)  # replace
    assert debugfs_cat(image, off["boot"], "/ignition/config.ign") == b'{"b": 2}'
    assert debugfs_stat_mode(image, off["boot"], "/ignition/config.ign") == 0o600
    assert debugfs_stat_mode(image, off["boot"], "/ignition") == 0o700
    with pytest.raises(Ext4Error, match="already exists"):
        fs.write("/ignition/config.ign", b"x", replace=False)
    with pytest.raises(Ext4Error, match="no regular file /nope"):
        fs.read("/nope")
    with pytest.raises(Ext4Error, match="refusing ext4 path"):
        fs.write("/a/../b", b"x")
    assert fs.remove("/ignition/config.ign") and not fs.exists("/ignition/config.ign")
    sh("e2fsck", "-fn", f"{image}?offset={off['boot']}")


def test_fat_edits(disk: tuple[Path, dict[str, int]]) -> None:
    image, off = disk
    fat = FatImage(image, off["esp"])
    assert fat.label() == "EFI-SYSTEM"
    assert "/EFI/BOOT/BOOTAA64.EFI" in fat.list_files()
    fat.write("/overlays/x.dtbo", b"dtbo")
    assert mtype(image, off["esp"], "/overlays/x.dtbo") == b"dtbo"
    assert fat.read("/EFI/fedora/grub.cfg").startswith(b"search --label boot")
    fat.write("/config.txt", b"one\n")
    fat.write("/config.txt", b"two\n")
    assert fat.read("/config.txt") == b"two\n"
    check_image(image)


def test_customize_boot_like_coreos_installer(disk: tuple[Path, dict[str, int]]) -> None:
    image, off = disk
    fs = Ext4Image(image, off["boot"])
    cust = BootCustomization(
        ignition=b'{"ignition":{"version":"3.3.0"}}',
        append_kargs=("foo=bar", "quiet"),
        delete_kargs=("mitigations=auto,nosmt",),
        consoles=(Console.parse("ttyS0,115200"), Console.parse("tty0")),
        network_keyfiles=(NetworkKeyfile("eth0.nmconnection", b"[connection]\nid=eth0\ntype=ethernet\n"),),
    )
    res = customize_boot(fs, cust)
    assert res.bls_entry == "ostree-2-fedora-coreos.conf"
    expected = (
        BLS_OPTIONS.replace("mitigations=auto,nosmt ", "")
        + " console=ttyS0,115200n8 console=tty0 foo=bar quiet"
    )
    assert res.kargs == expected
    entry = debugfs_cat(image, off["boot"], "/loader/entries/ostree-2-fedora-coreos.conf").decode()
    assert (
        f"options {expected}\n" in entry and "title Fedora CoreOS 40 (ostree:0)\n" in entry
    )  # right-trimmed
    older = debugfs_cat(image, off["boot"], "/loader/entries/ostree-1-fedora-coreos.conf").decode()
    assert "mitigations=auto,nosmt" in older and "foo=bar" not in older  # only the last entry is edited
    console = debugfs_cat(image, off["boot"], "/grub2/console.cfg").decode()
    assert "serial --unit=0 --speed=115200 --word=8 --parity=no\nterminal_input console serial\n" in console
    assert debugfs_cat(image, off["boot"], "/ignition/config.ign") == cust.ignition
    assert debugfs_stat_mode(image, off["boot"], "/coreos-firstboot-network/eth0.nmconnection") == 0o600
    report = check_image(image)
    assert report.passed == ["sgdisk -v", "fsck.vfat -n EFI-SYSTEM", "e2fsck -fn boot", "e2fsck -fn root"]


def test_platform_id_is_kept(disk: tuple[Path, dict[str, int]]) -> None:
    image, off = disk
    fs = Ext4Image(image, off["boot"])
    with pytest.raises(BootFsError, match="refusing to delete 'ignition.platform.id=metal'"):
        customize_boot(fs, BootCustomization(delete_kargs=("ignition.platform.id=metal",)))
    with pytest.raises(BootFsError, match="refusing to append 'ignition.platform.id=qemu'"):
        customize_boot(fs, BootCustomization(append_kargs=("ignition.platform.id=qemu",)))
    with pytest.raises(BootFsError, match="must be one non-empty word"):
        customize_boot(fs, BootCustomization(append_kargs=("a b",)))
    with pytest.raises(BootFsError, match="no \\[connection\\] section"):
        customize_boot(
            fs, BootCustomization(network_keyfiles=(NetworkKeyfile("x.nmconnection", b"[ipv4]\n"),))
        )
    with pytest.raises(BootFsError, match="must be a plain file name"):
        customize_boot(fs, BootCustomization(network_keyfiles=(NetworkKeyfile("../x.nmconnection", b""),)))
    # nothing asked: nothing written, the entry keeps its platform id
    res = customize_boot(fs, BootCustomization())
    assert res.files == [] and "ignition.platform.id=metal" in res.kargs.split()


def test_checkers_catch_damage(disk: tuple[Path, dict[str, int]]) -> None:
    image, off = disk
    gpt = verify_gpt(image)
    check_image(image)
    # damage the ext4 root inode table of the boot filesystem
    with open(image, "r+b") as f:
        f.seek(off["boot"] + 1024 + 0x58)  # s_inode_size
        f.write(b"\x07\x00")
    with pytest.raises(ImageCheckError, match="e2fsck -fn found problems in boot"):
        check_image(image)
    # damage the FAT boot sector (bytes per sector)
    shutil.copyfile(image, image.with_suffix(".2"))
    with open(image, "r+b") as f:
        f.seek(off["esp"] + 11)
        f.write(b"\x00\x00")
    with pytest.raises(ImageCheckError, match="fsck.vfat -n found problems in EFI-SYSTEM"):
        check_image(image)
    assert gpt.by_label("boot").offset == off["boot"]
    # a disk whose backup GPT is gone fails the partition-table check
    with open(image, "r+b") as f:
        f.seek(-512, 2)
        f.write(b"\0" * 512)
    with pytest.raises(ImageCheckError, match="partition table check failed"):
        check_image(image)
    assert json.dumps(str(image))
