"""pftf Raspberry Pi 4 UEFI firmware: download over HTTP (loopback), lock file, cache, archive checks,
config.txt, the RamLimitTo3GB variable, install into a FAT ESP."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from rawdisk_helpers import LoopbackServer, sh

from coreos_infra import firmware
from coreos_infra.disk.fat import FatImage
from coreos_infra.errors import VerificationError
from coreos_infra.fixtures.firmware import firmware_files, make_zip


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackServer]:
    root = tmp_path_factory.mktemp("www")
    (root / "v1.50").mkdir()
    (root / "v1.50" / "RPi4_UEFI_Firmware_v1.50.zip").write_bytes(make_zip(firmware_files()))
    (root / "evil.zip").write_bytes(make_zip({**firmware_files(), "../../etc/evil": b"x"}))
    srv = LoopbackServer(root)
    yield srv
    srv.close()


def test_official_url_pattern() -> None:
    assert firmware.FirmwareSpec("v1.50").resolved_url == (
        "https://github.com/pftf/RPi4/releases/download/v1.50/RPi4_UEFI_Firmware_v1.50.zip"
    )
    assert firmware.FirmwareSpec("v1.38", url="http://mirror/x.zip").resolved_url == "http://mirror/x.zip"


def test_download_pins_then_verifies(server: LoopbackServer, tmp_path: Path) -> None:
    url = f"{server.url}/v1.50/RPi4_UEFI_Firmware_v1.50.zip"
    spec = firmware.FirmwareSpec("v1.50", url=url)
    lock = tmp_path / "firmware.lock"
    cache = tmp_path / "cache"
    path, digest = firmware.fetch_firmware(spec, cache, lock)
    assert path == cache / "firmware" / "sha256" / f"{digest}.zip"
    assert firmware.read_lock(lock)[url] == {"version": "v1.50", "sha256": digest}
    hits = server.hits["/v1.50/RPi4_UEFI_Firmware_v1.50.zip"]
    # second use: from the verified cache, no download
    assert firmware.fetch_firmware(spec, cache, lock) == (path, digest)
    assert server.hits["/v1.50/RPi4_UEFI_Firmware_v1.50.zip"] == hits
    # a corrupted cache entry is noticed and replaced by a fresh, verified download
    path.write_bytes(b"garbage")
    assert firmware.fetch_firmware(spec, cache, lock) == (path, digest)
    assert server.hits["/v1.50/RPi4_UEFI_Firmware_v1.50.zip"] == hits + 1
    # the release asset changes upstream: refused against the lock file, nothing cached
    (server.root / "v1.50" / "RPi4_UEFI_Firmware_v1.50.zip").write_bytes(make_zip(firmware_files("changed")))
    shutil.rmtree(cache)
    with pytest.raises(VerificationError, match="does not match the pinned"):
        firmware.fetch_firmware(spec, cache, lock)
    assert not list((cache / "firmware" / "sha256").iterdir())
    (server.root / "v1.50" / "RPi4_UEFI_Firmware_v1.50.zip").write_bytes(make_zip(firmware_files()))


def test_recipe_pin_must_agree_with_lock(server: LoopbackServer, tmp_path: Path) -> None:
    url = f"{server.url}/v1.50/RPi4_UEFI_Firmware_v1.50.zip"
    lock = tmp_path / "firmware.lock"
    _, digest = firmware.fetch_firmware(firmware.FirmwareSpec("v1.50", url=url), tmp_path / "c", lock)
    with pytest.raises(VerificationError, match="the recipe pins sha256"):
        firmware.fetch_firmware(
            firmware.FirmwareSpec("v1.50", url=url, sha256="0" * 64), tmp_path / "c", lock
        )
    wrong = tmp_path / "wrong.lock"
    with pytest.raises(VerificationError, match="does not match the pinned"):
        firmware.fetch_firmware(
            firmware.FirmwareSpec("v1.50", url=url, sha256="1" * 64), tmp_path / "d", wrong
        )
    assert not wrong.exists()
    ok = firmware.fetch_firmware(
        firmware.FirmwareSpec("v1.50", url=url, sha256=digest), tmp_path / "e", wrong
    )
    assert ok[1] == digest and json.loads(wrong.read_text())["firmware"][url]["sha256"] == digest


def test_download_errors(server: LoopbackServer, tmp_path: Path) -> None:
    with pytest.raises(firmware.FirmwareError, match="HTTP 404"):
        firmware.fetch_firmware(
            firmware.FirmwareSpec("v9", url=f"{server.url}/nope.zip"), tmp_path, tmp_path / "l"
        )
    with pytest.raises(firmware.FirmwareError, match="downloading http://127.0.0.1:9/x.zip failed"):
        firmware.fetch_firmware(
            firmware.FirmwareSpec("v9", url="http://127.0.0.1:9/x.zip"), tmp_path, tmp_path / "l"
        )
    (tmp_path / "bad.lock").write_text("{")
    with pytest.raises(firmware.FirmwareError, match="bad.lock: not a valid firmware lock file"):
        firmware.read_lock(tmp_path / "bad.lock")


@pytest.mark.parametrize(
    ("variant", "message"),
    [
        ({"../evil": b"x"}, "escapes the target directory"),
        ({"overlays/../../evil": b"x"}, "escapes the target directory"),
        ({"/etc/evil": b"x"}, "absolute path"),
        ({"C:/evil": b"x"}, "absolute path"),
        ({"a\\..\\evil": b"x"}, "backslash"),
        ({"CONFIG.TXT": b"x"}, "appears twice"),
    ],
)
def test_bad_entries_refused(tmp_path: Path, variant: dict[str, bytes], message: str) -> None:
    z = tmp_path / "fw.zip"
    z.write_bytes(make_zip({**firmware_files(), **variant}))
    with pytest.raises(firmware.FirmwareError, match=message):
        firmware.read_firmware_zip(z)


def test_links_special_and_corrupt_refused(tmp_path: Path) -> None:
    z = tmp_path / "fw.zip"
    z.write_bytes(make_zip(firmware_files(), symlinks={"overlays/link": "/etc/passwd"}))
    with pytest.raises(firmware.FirmwareError, match="symbolic link"):
        firmware.read_firmware_zip(z)
    z.write_bytes(make_zip(firmware_files(), special=("fifo",)))
    with pytest.raises(firmware.FirmwareError, match="special file"):
        firmware.read_firmware_zip(z)
    good = make_zip(firmware_files())
    z.write_bytes(good[: len(good) // 2])
    with pytest.raises(firmware.FirmwareError, match="not a valid zip archive"):
        firmware.read_firmware_zip(z)
    damaged = bytearray(good)
    pos = damaged.index(b"RPI_EFI.fd") + len("RPI_EFI.fd") + 10  # inside the first entry's deflate data
    damaged[pos : pos + 40] = bytes(40)
    z.write_bytes(bytes(damaged))
    with pytest.raises(firmware.FirmwareError, match="corrupt"):
        firmware.read_firmware_zip(z)
    z.write_bytes(make_zip({"README": b"not firmware"}))
    with pytest.raises(firmware.FirmwareError, match="missing RPI_EFI.fd"):
        firmware.read_firmware_zip(z)


def test_config_txt() -> None:
    default = firmware.render_config_txt(None)
    assert default.splitlines()[:6] == [
        "arm_64bit=1",
        "arm_boost=1",
        "enable_uart=1",
        "uart_2ndstage=1",
        "enable_gic=1",
        "armstub=RPI_EFI.fd",
    ]
    assert firmware.config_txt_value(default, "dtoverlay") == ["miniuart-bt", "upstream-pi4"]
    custom = firmware.render_config_txt(
        {
            "arm_boost": 0,
            "dtoverlay": ["miniuart-bt", "upstream-pi4", "disable-wifi"],
            "gpu_mem": 16,
            "enable_gic": None,
        }
    )
    assert "arm_boost=0\n" in custom and "enable_gic" not in custom and custom.endswith("gpu_mem=16\n")
    assert firmware.config_txt_value(custom, "dtoverlay") == ["miniuart-bt", "upstream-pi4", "disable-wifi"]
    assert firmware.render_config_txt("verbatim=1") == "verbatim=1\n"


def test_ram_limit_variable() -> None:
    fd = firmware_files()["RPI_EFI.fd"]
    assert firmware.get_ram_limit(fd) is None
    off = firmware.set_ram_limit(fd, False)
    assert len(off) == len(fd) and off != fd
    assert firmware.get_ram_limit(off) == 0
    on = firmware.set_ram_limit(off, True)
    assert firmware.get_ram_limit(on) == 1
    # read back independently with virt-firmware's own CLI
    with pytest.raises(firmware.FirmwareError, match="no EDK2 UEFI variable store"):
        firmware.set_ram_limit(b"\0" * 65536, False)


def test_ram_limit_readable_by_virt_fw_vars(tmp_path: Path) -> None:
    p = tmp_path / "RPI_EFI.fd"
    p.write_bytes(firmware.set_ram_limit(firmware_files()["RPI_EFI.fd"], False))
    venv_bin = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "virt-fw-vars"
    out = sh(venv_bin, "--input", p, "--output-json", tmp_path / "vars.json")
    assert out.returncode == 0
    variables = json.loads((tmp_path / "vars.json").read_text())["variables"]
    var = next(v for v in variables if v["name"] == "RamLimitTo3GB")
    assert var["guid"] == firmware.RAM_LIMIT_GUID and var["data"] == "00000000" and var["attr"] == 7


def test_install_into_esp(tmp_path: Path) -> None:
    esp = tmp_path / "esp.img"
    sh("mkfs.vfat", "-C", "-n", "EFI-SYSTEM", esp, "32768")
    sh("mmd", "-i", esp, "::/EFI", "::/EFI/BOOT")
    z = tmp_path / "fw.zip"
    z.write_bytes(make_zip(firmware_files()))
    fat = FatImage(esp, 0)
    inst = firmware.install_firmware(
        z, "ab" * 32, "v1.50", fat, config_txt={"gpu_mem": 16}, ram_limit_3gb=False
    )
    names = set(fat.list_files())
    assert {
        "/RPI_EFI.fd",
        "/start4.elf",
        "/fixup4.dat",
        "/overlays/upstream-pi4.dtbo",
        "/bcm2711-rpi-4-b.dtb",
    } <= names
    assert "/EFI/BOOT" in names
    assert fat.read("/config.txt").decode() == inst.config_txt and "gpu_mem=16\n" in inst.config_txt
    assert firmware.get_ram_limit(fat.read("/RPI_EFI.fd")) == 0 and inst.ram_limit_3gb == 0
    assert fat.read("/start4.elf") == firmware_files()["start4.elf"]
    sh("fsck.vfat", "-n", esp)
    # without config_txt the shipped one stays
    inst2 = firmware.install_firmware(z, "ab" * 32, "v1.50", fat)
    assert inst2.config_txt == firmware_files()["config.txt"].decode()
    with pytest.raises(firmware.FirmwareError, match="armstub must stay RPI_EFI.fd"):
        firmware.install_firmware(z, "ab" * 32, "v1.50", fat, config_txt={"armstub": "u-boot.bin"})


def test_invalid_download_is_neither_cached_nor_pinned(server: LoopbackServer, tmp_path: Path) -> None:
    (server.root / "login.zip").write_bytes(b"<html>please log in</html>\n")
    url = f"{server.url}/login.zip"
    lock, cache = tmp_path / "firmware.lock", tmp_path / "cache"
    with pytest.raises(firmware.FirmwareError, match="not a valid zip archive") as e:
        firmware.fetch_firmware(firmware.FirmwareSpec("v1.50", url=url), cache, lock)
    assert str(e.value).startswith(url)
    assert "nothing was cached or pinned" in str(e.value)
    assert not lock.exists()
    assert list((cache / "firmware" / "sha256").iterdir()) == []
    # once the URL serves the real archive, it is pinned as usual
    (server.root / "login.zip").write_bytes(make_zip(firmware_files()))
    _, digest = firmware.fetch_firmware(firmware.FirmwareSpec("v1.50", url=url), cache, lock)
    assert firmware.read_lock(lock)[url]["sha256"] == digest


def test_pinned_bad_archive_names_the_lock_entry(server: LoopbackServer, tmp_path: Path) -> None:
    # a lock written before archives were validated pins a file that is not firmware
    bad = make_zip({"README": b"not firmware"})
    (server.root / "bad.zip").write_bytes(bad)
    url = f"{server.url}/bad.zip"
    lock, cache = tmp_path / "firmware.lock", tmp_path / "cache"
    digest = hashlib.sha256(bad).hexdigest()
    lock.write_text(json.dumps({"firmware": {url: {"version": "v1.50", "sha256": digest}}}))
    for cached in (False, True):
        if cached:
            (cache / "firmware" / "sha256").mkdir(parents=True, exist_ok=True)
            (cache / "firmware" / "sha256" / f"{digest}.zip").write_bytes(bad)
        with pytest.raises(firmware.FirmwareError, match="missing RPI_EFI.fd") as e:
            firmware.fetch_firmware(firmware.FirmwareSpec("v1.50", url=url), cache, lock)
        assert f'the entry "{url}" of {lock}: remove that entry' in str(e.value)
    with pytest.raises(firmware.FirmwareError, match="fix the pin"):
        firmware.fetch_firmware(
            firmware.FirmwareSpec("v1.50", url=url, sha256=digest), tmp_path / "c2", lock
        )


def test_entries_without_file_type_bits_are_regular_files(tmp_path: Path) -> None:
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in firmware_files().items():
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.create_system = 3  # Unix, but only permission bits (as some zip writers store them)
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)
    z = tmp_path / "fw.zip"
    z.write_bytes(buf.getvalue())
    names = {f.path for f in firmware.read_firmware_zip(z)}
    assert set(firmware.REQUIRED_FILES) <= names
