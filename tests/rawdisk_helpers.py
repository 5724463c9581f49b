"""Test helpers: small FCOS-metal-like GPT disk images built without root (sgdisk, mke2fs -d, mkfs.vfat,
mtools), multi-block xz compression, and fixture Raspberry Pi 4 firmware zips with the real pftf file
list and fake contents.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

MIB = 1 << 20
ROOT = Path(__file__).resolve().parent.parent

BOOT_UUID = "96d15588-3596-4b3c-adca-a2ff7279ea63"
BLS_OPTIONS = (
    "mitigations=auto,nosmt ignition.platform.id=metal $ignition_firstboot "
    "ostree=/ostree/boot.1/fedora-coreos/abc/0 root=UUID=910678ff-f77e-4a7d-8d53-86f2ac47a823 rw"
)
CONSOLE_CFG = (
    "# Any changes to this file will be overwritten during OS updates.\n"
    "\n# CONSOLE-SETTINGS-START\n"
    "serial --speed=115200\nterminal_input serial console\nterminal_output serial console\n"
    "# CONSOLE-SETTINGS-END\n"
)
PLATFORMS_JSON = {
    "metal": {
        "grub_commands": [
            "serial --speed=115200",
            "terminal_input serial console",
            "terminal_output serial console",
        ],
        "kernel_arguments": ["console=tty0", "console=ttyS0,115200n8"],
    }
}


def sh(*args: str | os.PathLike[str], **kw: object) -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ, MTOOLS_SKIP_CHECK="1")
    return subprocess.run([os.fspath(a) for a in args], check=True, capture_output=True, env=env, **kw)  # type: ignore[call-overload,no-any-return]


def _place(disk: Path, part: Path, offset: int) -> None:
    with open(part, "rb") as src, open(disk, "r+b") as dst:
        dst.seek(offset)
        while chunk := src.read(MIB):
            if chunk.count(0) == len(chunk):
                dst.seek(len(chunk), 1)
            else:
                dst.write(chunk)


def make_disk(
    path: Path,
    *,
    arch: str = "aarch64",
    esp_mb: int = 32,
    boot_mb: int = 64,
    root_mb: int = 24,
    random_mb: int = 2,
    seed: int = 1,
) -> dict[str, int]:
    """An FCOS-metal-like 512-byte-sector GPT image: p1 BIOS-BOOT/reserved 1M, p2 EFI-SYSTEM (vfat),
    p3 boot (ext4 label boot, BLS entry, console.cfg, platforms.json), p4 root (ext4, some random data).
    Returns the partition byte offsets."""
    work = path.parent / f".{path.name}.parts"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    total_mb = 1 + 1 + esp_mb + boot_mb + root_mb + 1
    with open(path, "wb") as f:
        f.truncate(total_mb * MIB)
    p1_type = (
        "21686148-6449-6E6F-744E-656564454649"
        if arch == "x86_64"
        else "8DA63339-0007-60C0-C436-083AC8230908"
    )
    p1_name = "BIOS-BOOT" if arch == "x86_64" else "reserved"
    root_type = (
        "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"
        if arch == "x86_64"
        else "B921B045-1DF0-41C3-AF44-4C6F280D3FAE"
    )
    sh(
        "sgdisk",
        "-Z",
        path,
        "-U",
        "00000000-0000-4000-a000-000000000001",
        "-n",
        "1:0:+1M",
        "-c",
        f"1:{p1_name}",
        "-t",
        f"1:{p1_type}",
        "-n",
        f"2:0:+{esp_mb}M",
        "-c",
        "2:EFI-SYSTEM",
        "-t",
        "2:C12A7328-F81F-11D2-BA4B-00A0C93EC93B",
        "-n",
        f"3:0:+{boot_mb}M",
        "-c",
        "3:boot",
        "-t",
        "3:BC13C2FF-59E6-4262-A352-B275FD6F7172",
        "-n",
        f"4:0:+{root_mb}M",
        "-c",
        "4:root",
        "-t",
        f"4:{root_type}",
    )
    starts = {}
    for n in (2, 3, 4):
        out = sh("sgdisk", "-i", str(n), path).stdout.decode()
        first = next(line for line in out.splitlines() if line.startswith("First sector"))
        starts[n] = int(first.split(":")[1].split()[0]) * 512
    # boot filesystem
    bootfs = work / "bootfs"
    (bootfs / "loader" / "entries").mkdir(parents=True)
    (bootfs / "loader" / "entries" / "ostree-1-fedora-coreos.conf").write_text(
        f"title Fedora CoreOS 40 (ostree:1)   \nversion 1\nlinux /ostree/fedora-coreos-abc/vmlinuz\n"
        f"initrd /ostree/fedora-coreos-abc/initramfs.img\n"
        f"options {BLS_OPTIONS.replace('ostree/boot.1', 'old')}\n"
    )
    (bootfs / "loader" / "entries" / "ostree-2-fedora-coreos.conf").write_text(
        f"title Fedora CoreOS 40 (ostree:0)   \nversion 2\nlinux /ostree/fedora-coreos-abc/vmlinuz\n"
        f"initrd /ostree/fedora-coreos-abc/initramfs.img\noptions {BLS_OPTIONS}\n"
    )
    (bootfs / "grub2").mkdir()
    (bootfs / "grub2" / "console.cfg").write_text(CONSOLE_CFG)
    (bootfs / "grub2" / "grub.cfg").write_text("set timeout=1\nsource $prefix/console.cfg\n")
    (bootfs / "coreos").mkdir()
    (bootfs / "coreos" / "platforms.json").write_text(json.dumps(PLATFORMS_JSON))
    (bootfs / "ignition.firstboot").write_text("")
    (bootfs / "ostree" / "fedora-coreos-abc").mkdir(parents=True)
    rnd = __import__("random").Random(seed)
    (bootfs / "ostree" / "fedora-coreos-abc" / "vmlinuz").write_bytes(rnd.randbytes(random_mb * MIB // 2))
    (bootfs / "ostree" / "fedora-coreos-abc" / "initramfs.img").write_bytes(b"initramfs " * 100000)
    sh(
        "mke2fs",
        "-q",
        "-t",
        "ext4",
        "-L",
        "boot",
        "-U",
        BOOT_UUID,
        "-E",
        "root_owner=0:0",
        "-d",
        bootfs,
        work / "boot.img",
        f"{boot_mb}M",
    )
    _place(path, work / "boot.img", starts[3])
    # ESP
    esp = work / "esp.img"
    sh("mkfs.vfat", "-C", "-n", "EFI-SYSTEM", esp, str(esp_mb * 1024))
    sh("mmd", "-i", esp, "::/EFI", "::/EFI/BOOT", "::/EFI/fedora")
    (work / "BOOTAA64.EFI").write_bytes(b"MZ fake shim " * 1000)
    (work / "grub.cfg").write_text("search --label boot --set prefix\nconfigfile ($prefix)/grub2/grub.cfg\n")
    sh("mcopy", "-i", esp, work / "BOOTAA64.EFI", "::/EFI/BOOT/")
    sh("mcopy", "-i", esp, work / "grub.cfg", "::/EFI/fedora/")
    _place(path, esp, starts[2])
    # root
    rootfs = work / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    (rootfs / "etc" / "os-release").write_text("ID=fedora\nVARIANT_ID=coreos\n")
    (rootfs / "data.bin").write_bytes(rnd.randbytes(random_mb * MIB // 2))
    sh("mke2fs", "-q", "-t", "ext4", "-L", "root", "-d", rootfs, work / "root.img", f"{root_mb}M")
    _place(path, work / "root.img", starts[4])
    shutil.rmtree(work)
    return {"esp": starts[2], "boot": starts[3], "root": starts[4]}


def compress(raw: Path, out: Path, *, block_mb: float = 8, preset: int = 1) -> Path:
    """Multi-block xz like FCOS's (sizes in block headers), small blocks for tests."""
    block = int(block_mb * MIB)
    with open(out, "wb") as f:
        subprocess.run(
            ["xz", f"-{preset}", "-T2", f"--block-size={block}", "-c", str(raw)], stdout=f, check=True
        )
    return out


def debugfs_cat(image: Path, offset: int, path: str) -> bytes:
    return sh("debugfs", "-R", f"cat {path}", f"{image}?offset={offset}").stdout


def debugfs_stat_mode(image: Path, offset: int, path: str) -> int:
    out = sh("debugfs", "-R", f"stat {path}", f"{image}?offset={offset}").stdout.decode()
    mode = out.split("Mode:", 1)[1].split()[0]
    return int(mode, 8)


def mtype(image: Path, offset: int, path: str) -> bytes:
    return sh("mtype", "-i", f"{image}@@{offset}", f"::{path}").stdout


class LoopbackServer:
    """A static HTTP server on 127.0.0.1 (random port) serving ``root``; counts GETs per path."""

    def __init__(self, root: Path) -> None:
        import functools
        import http.server
        import threading

        self.root = root
        self.hits: dict[str, int] = {}
        hits = self.hits

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                hits[self.path] = hits.get(self.path, 0) + 1
                super().do_GET()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(Handler, directory=str(root))
        )
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
