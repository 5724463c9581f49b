"""``publish.flash``: refusal rules, decompress-while-writing, read-back; on files and loop devices."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from coreos_infra.errors import VerificationError
from coreos_infra.publish import flash
from coreos_infra.publish.flash import FlashError, flash_image, inspect_destination

MIB = 1 << 20


def _image(tmp_path: Path, size: int = 9 * MIB, name: str = "disk.raw") -> tuple[Path, bytes]:
    """A raw image: random head and tail, zeros in between (like a disk image), and its bytes."""
    data = os.urandom(MIB) + bytes(size - 2 * MIB) + os.urandom(MIB)
    path = tmp_path / name
    path.write_bytes(data)
    return path, data


def _xz(raw: Path, *args: str) -> Path:
    subprocess.run(["xz", "-k", "-f", "-1", *args, str(raw)], check=True)
    return raw.with_name(raw.name + ".xz")


def _never(question: str) -> bool:
    raise AssertionError(f"asked for confirmation although the destination must be refused: {question}")


# --- regular files -------------------------------------------------------------------------------------


def test_raw_xz_decompressed_into_a_file(tmp_path: Path) -> None:
    raw, data = _image(tmp_path)
    xz = _xz(raw, "--block-size=1MiB", "-T2")  # multi-block, like FCOS images
    dest = tmp_path / "sdcard.img"
    dest.write_bytes(b"old contents that are longer than nothing" * 1000)
    asked: list[str] = []
    result = flash_image(xz, dest, confirm=lambda q: asked.append(q) or True,
                         expected_sha256=hashlib.sha256(data).hexdigest())  # fmt: skip
    assert dest.read_bytes() == data
    assert result.written == len(data)
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert len(asked) == 1 and "disk.raw.xz" in asked[0] and str(dest) in asked[0]


def test_multi_stream_xz_and_padding(tmp_path: Path) -> None:
    raw1, d1 = _image(tmp_path, 3 * MIB, "a.raw")
    raw2, d2 = _image(tmp_path, 2 * MIB, "b.raw")
    joined = tmp_path / "joined.raw.xz"
    joined.write_bytes(_xz(raw1).read_bytes() + b"\0" * 8 + _xz(raw2).read_bytes())
    assert flash.xz_uncompressed_size(joined) == len(d1) + len(d2)
    dest = tmp_path / "out.img"
    flash_image(joined, dest, confirm=None)
    assert dest.read_bytes() == d1 + d2


def test_plain_image_copied(tmp_path: Path) -> None:
    iso, data = _image(tmp_path, 3 * MIB, "live.iso")
    dest = tmp_path / "stick.img"
    flash_image(iso, dest, confirm=None)
    assert dest.read_bytes() == data


@pytest.mark.parametrize("damage", ["truncate", "trailing", "flip"])
def test_damaged_xz_refused(tmp_path: Path, damage: str) -> None:
    raw, _ = _image(tmp_path, 4 * MIB)
    xz = _xz(raw, "--block-size=1MiB")
    blob = bytearray(xz.read_bytes())
    if damage == "truncate":
        blob = blob[: len(blob) // 2]
    elif damage == "trailing":
        blob += b"garbage!"
    else:
        blob[len(blob) // 3] ^= 0xFF
    xz.write_bytes(bytes(blob))
    with pytest.raises(VerificationError):
        flash_image(xz, tmp_path / "out.img", confirm=None)


def test_expected_sha256_mismatch(tmp_path: Path) -> None:
    raw, _ = _image(tmp_path, 3 * MIB)
    with pytest.raises(VerificationError, match="build recorded"):
        flash_image(_xz(raw), tmp_path / "out.img", confirm=None, expected_sha256="0" * 64)


def test_declined_confirmation_writes_nothing(tmp_path: Path) -> None:
    raw, _ = _image(tmp_path, 3 * MIB)
    dest = tmp_path / "precious.img"
    dest.write_bytes(b"keep me")
    with pytest.raises(FlashError, match="not confirmed"):
        flash_image(raw, dest, confirm=lambda q: False)
    assert dest.read_bytes() == b"keep me"


def test_not_flashable_and_self(tmp_path: Path) -> None:
    q = tmp_path / "vm.qcow2.xz"
    q.write_bytes(b"x")
    with pytest.raises(FlashError, match="not a disk image"):
        flash_image(q, tmp_path / "out", confirm=None)
    raw, _ = _image(tmp_path, 3 * MIB)
    with pytest.raises(FlashError, match="image itself"):
        flash_image(raw, raw, confirm=None)
    with pytest.raises(FlashError, match="no such device"):
        inspect_destination(Path("/dev/does-not-exist-coreos-infra"))
    with pytest.raises(FlashError, match="not a block device"):
        inspect_destination(Path("/dev/null"))


# --- the disk holding / ----------------------------------------------------------------------------------


def test_root_disk_refused(tmp_path: Path) -> None:
    disks = flash.root_disks()
    if not disks:
        pytest.skip("/ is not on a block device here (overlay or tmpfs root): nothing to refuse")
    raw, _ = _image(tmp_path, 3 * MIB)
    for disk in disks:
        node = Path("/dev") / disk.name
        if not node.exists():
            continue
        # _never fails the test if the check lets it through to the prompt: nothing is written either way.
        with pytest.raises(FlashError, match="root filesystem"):
            flash_image(raw, node, confirm=_never)
        parts = [p.name for p in disk.iterdir() if (p / "partition").exists()]
        for part in parts:
            with pytest.raises(FlashError, match="partition"):
                flash_image(raw, Path("/dev") / part, confirm=_never)


# --- loop devices ----------------------------------------------------------------------------------------


def _losetup_usable() -> str | None:
    if os.geteuid() != 0:
        return "needs root for losetup"
    if not shutil.which("losetup"):
        return "losetup is not installed"
    if not Path("/dev/loop-control").exists():
        return "no /dev/loop-control on this machine"
    return None


@contextlib.contextmanager
def _loop(backing: Path, *, partscan: bool = False) -> Iterator[Path]:
    why = _losetup_usable()
    if why:
        pytest.skip(why)
    got = subprocess.run(
        ["losetup", "--find", "--show", *(["--partscan"] if partscan else []), str(backing)],
        capture_output=True, text=True,
    )  # fmt: skip
    if got.returncode != 0:
        pytest.skip(f"cannot attach a loop device here: {got.stderr.strip()}")
    dev = Path(got.stdout.strip())
    try:
        yield dev
    finally:
        subprocess.run(["losetup", "--detach", str(dev)], check=False)


@contextlib.contextmanager
def _mounted(dev: Path, where: Path) -> Iterator[None]:
    where.mkdir(exist_ok=True)
    got = subprocess.run(["mount", str(dev), str(where)], capture_output=True, text=True)
    if got.returncode != 0:
        pytest.skip(f"cannot mount here: {got.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", str(where)], check=True)


def test_loop_device_written_and_read_back(tmp_path: Path) -> None:
    raw, data = _image(tmp_path, 6 * MIB)
    xz = _xz(raw, "--block-size=1MiB")
    backing = tmp_path / "stick.bin"
    backing.write_bytes(b"\xaa" * (16 * MIB))
    with _loop(backing) as dev:
        d = inspect_destination(dev)
        assert d.block and d.size == 16 * MIB and "loop device of" in d.description
        result = flash_image(xz, dev, confirm=lambda q: str(dev) in q and "loop device" in q)
        assert result.written == len(data)
    on_disk = backing.read_bytes()
    assert on_disk[: len(data)] == data
    assert on_disk[len(data) :] == b"\xaa" * (16 * MIB - len(data))  # nothing written past the image


def test_loop_device_too_small(tmp_path: Path) -> None:
    raw, _ = _image(tmp_path, 6 * MIB)
    backing = tmp_path / "small.bin"
    backing.write_bytes(bytes(4 * MIB))
    with _loop(backing) as dev, pytest.raises(FlashError, match="has only"):
        flash_image(raw, dev, confirm=_never)
    assert backing.read_bytes() == bytes(4 * MIB)


def test_mounted_loop_device_refused(tmp_path: Path) -> None:
    raw, _ = _image(tmp_path, 3 * MIB)
    backing = tmp_path / "fs.bin"
    backing.write_bytes(bytes(32 * MIB))
    subprocess.run(["mkfs.ext4", "-q", "-F", str(backing)], check=True)
    before = hashlib.sha256(backing.read_bytes()).hexdigest()
    with _loop(backing) as dev:
        with _mounted(dev, tmp_path / "mnt"), pytest.raises(FlashError, match="mounted on"):
            flash_image(raw, dev, confirm=_never)
        # Unmounted, the same device is accepted (and written).
        flash_image(raw, dev, confirm=None)
    assert hashlib.sha256(backing.read_bytes()).hexdigest() != before


def test_mounted_partition_refuses_whole_disk(tmp_path: Path) -> None:
    if not shutil.which("sgdisk"):
        pytest.skip("sgdisk (gdisk) is not installed")
    raw, _ = _image(tmp_path, 3 * MIB)
    backing = tmp_path / "gpt.bin"
    backing.write_bytes(bytes(40 * MIB))
    subprocess.run(["sgdisk", "-q", "-n", "1:2048:+32M", str(backing)], check=True, capture_output=True)
    with _loop(backing, partscan=True) as dev:
        part = Path(f"{dev}p1")
        if not part.exists():
            pytest.skip(f"{part} did not appear (no partition scanning for loop devices here)")
        subprocess.run(["mkfs.ext4", "-q", "-F", str(part)], check=True)
        with pytest.raises(FlashError, match="partition of"):
            flash_image(raw, part, confirm=_never)
        with _mounted(part, tmp_path / "mnt"), pytest.raises(FlashError, match=f"{part.name} is mounted"):
            flash_image(raw, dev, confirm=_never)


# --- invoke flash: from a published build, and --image ------------------------------------------------


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """(store, trusted key file, metal meta.json): the metal build published, signed, to a local store."""
    import json

    from publish_testlib import ROOT, ensure_builds

    from coreos_infra import gpg
    from coreos_infra.publish.publish import PublishOptions, publish

    builds = ensure_builds(("metal",), tmp_path_factory.mktemp("builds"))
    store = tmp_path_factory.mktemp("store")
    with gpg.throwaway_key(tmp_path_factory.mktemp("key")) as key:
        publish(PublishOptions(root=ROOT, store=str(store), build_root=builds, gnupg_home=str(key.home),
                               key_id=key.fingerprint))  # fmt: skip
        trusted = tmp_path_factory.mktemp("trusted") / "lab.asc"
        trusted.write_bytes(key.public_key())
    meta = json.loads(next((builds / "metal").glob("*/meta.json")).read_text())
    return store, trusted, meta


def _invoke(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    from publish_testlib import INVOKE, ROOT, task_env

    return subprocess.run([INVOKE, "flash", *args], cwd=ROOT, env=task_env(), input=stdin,
                          capture_output=True, text=True, timeout=600)  # fmt: skip


def _site_args(published) -> list[str]:  # type: ignore[no-untyped-def]
    store, trusted, _ = published
    return [
        "--site",
        "lab",
        "--host",
        "dns1",
        "--target",
        "metal",
        "--store",
        str(store),
        "--keyring",
        str(trusted),
    ]


def test_invoke_flash_published_build(published, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, _, meta = published
    want = meta["image"]["uncompressed_sha256"]
    dest = tmp_path / "card.img"
    dest.write_bytes(b"keep")
    # Asked, and "no" (or nothing) leaves the destination alone.
    r = _invoke(*_site_args(published), "--device", str(dest), "--dest", str(tmp_path / "dl"), stdin="no\n")
    assert r.returncode == 1 and "not confirmed" in r.stderr and "EVERYTHING ON IT WILL BE LOST" in r.stderr
    assert dest.read_bytes() == b"keep"
    r = _invoke(*_site_args(published), "--device", str(dest), "--dest", str(tmp_path / "dl"), stdin="yes\n")
    assert r.returncode == 0, r.stderr
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == want
    assert f"sha256 {want}" in r.stdout
    # Only the image was downloaded (plus the verified SHA256SUMS and meta.json).
    names = {p.name for p in (tmp_path / "dl").iterdir()}
    assert names == {meta["artifacts"][0]["name"], "SHA256SUMS", "SHA256SUMS.sig", "meta.json"}, names


def test_invoke_flash_to_loop_device(published, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, _, meta = published
    backing = tmp_path / "sd.bin"
    backing.write_bytes(bytes(1))
    os.truncate(backing, 1 << 30)
    with _loop(backing) as dev:
        r = _invoke(*_site_args(published), "--device", str(dev), "--dest", str(tmp_path / "dl"), "--yes")
        assert r.returncode == 0, r.stderr
        written = int(r.stdout.split()[1])
    h = hashlib.sha256()
    with open(backing, "rb") as f:
        left = written
        while left:
            chunk = f.read(min(MIB, left))
            h.update(chunk)
            left -= len(chunk)
    assert h.hexdigest() == meta["image"]["uncompressed_sha256"]


def test_invoke_flash_image_needs_its_signature(published, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from publish_testlib import invoke

    _, trusted, meta = published
    r = invoke("download", *_site_args(published), "--dest", str(tmp_path / "dl"), "--verify-each")
    assert r.returncode == 0, r.stderr
    image = next(Path(p) for p in r.stdout.split() if p.endswith(".raw.xz"))
    r = _invoke(
        "--image", str(image), "--device", str(tmp_path / "a.img"), "--keyring", str(trusted), "--yes"
    )
    assert r.returncode == 0, r.stderr
    assert (
        hashlib.sha256((tmp_path / "a.img").read_bytes()).hexdigest() == meta["image"]["uncompressed_sha256"]
    )
    # Tampered local image: the .sig does not match, nothing written.
    bad = tmp_path / "bad.raw.xz"
    data = bytearray(image.read_bytes())
    data[100] ^= 1
    bad.write_bytes(bytes(data))
    (tmp_path / "bad.raw.xz.sig").write_bytes(Path(str(image) + ".sig").read_bytes())
    r = _invoke("--image", str(bad), "--device", str(tmp_path / "b.img"), "--keyring", str(trusted), "--yes")
    assert r.returncode == 1 and "BAD signature" in r.stderr and not (tmp_path / "b.img").exists()
    # No .sig: refused unless --allow-unsigned.
    raw, data2 = _image(tmp_path, 3 * MIB, "plain.raw")
    r = _invoke("--image", str(raw), "--device", str(tmp_path / "c.img"), "--yes")
    assert r.returncode == 1 and "refusing an unverified image" in r.stderr and "Traceback" not in r.stderr
    r = _invoke("--image", str(raw), "--device", str(tmp_path / "c.img"), "--yes", "--allow-unsigned")
    assert r.returncode == 0 and (tmp_path / "c.img").read_bytes() == data2
