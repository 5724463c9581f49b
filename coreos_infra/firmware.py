"""Raspberry Pi 4 UEFI firmware (pftf/RPi4, EDK2): download, pin, verify, unpack into the ESP.

The factory owns the Pi firmware's versioning: FCOS updates (bootupd) never refresh files in the ESP
root (prior-art.md section 1.5), so the version is pinned in the recipe and part of the build ID.

- :func:`fetch_firmware` downloads the release zip once. Its SHA-256 is recorded in a lock file
  (``recipes/firmware.lock``) the first time and checked on every later use; the zip is cached
  content-addressed (``<cache>/firmware/sha256/<hex>.zip``) and re-hashed before every use.
- :func:`read_firmware_zip` refuses entries that would escape the target (zip-slip: absolute names,
  ``..``, backslashes, drive letters), symlinks and special files, duplicates, corrupt archives.
- :func:`render_config_txt` writes ``config.txt`` with the upstream defaults plus recipe overrides.
- :func:`set_ram_limit` flips the ``RamLimitTo3GB`` UEFI variable in the variable store inside
  ``RPI_EFI.fd`` with the ``virt-firmware`` library (what pftf/RPi4 #278 recommends).
- :func:`install_firmware` puts it all into the EFI system partition with mtools.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import stat
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from coreos_infra.disk.fat import FatImage
from coreos_infra.errors import CoreosInfraError, VerificationError
from coreos_infra.fsutil import atomic_output, sha256_file, write_atomic
from coreos_infra.log import progress

LOG = logging.getLogger("coreos_infra.firmware")

DEFAULT_VERSION = "v1.50"
URL_PATTERN = "https://github.com/pftf/RPi4/releases/download/{version}/RPi4_UEFI_Firmware_{version}.zip"
RAM_LIMIT_VAR = "RamLimitTo3GB"
RAM_LIMIT_GUID = "cd7cc258-31db-22e6-9f22-63b0b8eed6b5"
# NV | BS | RT, as the RPi ConfigDxe form declares its variables; used only if the store lacks it.
RAM_LIMIT_ATTRS = 0x7
MAX_UNCOMPRESSED = 64 << 20  # the real zip unpacks to ~4 MiB; anything near this is not firmware
REQUIRED_FILES = ("RPI_EFI.fd", "start4.elf", "fixup4.dat")

# config.txt of pftf/RPi4 at v1.50 (prior-art.md section 1.5), in order.
UPSTREAM_CONFIG_TXT: tuple[tuple[str, str], ...] = (
    ("arm_64bit", "1"),
    ("arm_boost", "1"),
    ("enable_uart", "1"),
    ("uart_2ndstage", "1"),
    ("enable_gic", "1"),
    ("armstub", "RPI_EFI.fd"),
    ("disable_commandline_tags", "1"),
    ("disable_overscan", "1"),
    ("device_tree_address", "0x3e0000"),
    ("device_tree_end", "0x400000"),
    ("dtoverlay", "miniuart-bt"),
    ("dtoverlay", "upstream-pi4"),
)


class FirmwareError(CoreosInfraError):
    """A firmware archive that cannot be used."""


@dataclass(frozen=True)
class FirmwareSpec:
    version: str = DEFAULT_VERSION
    url: str = ""  # default: the official GitHub release URL for ``version``
    sha256: str | None = None  # pinned in the recipe (optional: the lock file pins it otherwise)

    @property
    def resolved_url(self) -> str:
        return self.url or URL_PATTERN.format(version=self.version)


# --- lock file ------------------------------------------------------------------------------------


def read_lock(path: Path) -> dict[str, dict[str, str]]:
    """``{url: {"version": ..., "sha256": ...}}`` from the lock file (empty if it does not exist)."""
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise FirmwareError(f"{path}: not a valid firmware lock file: {e}") from None
    entries = data.get("firmware") if isinstance(data, dict) else None
    if not isinstance(entries, dict):
        raise FirmwareError(f"{path}: expected an object with a 'firmware' map")
    for url, entry in entries.items():
        if not isinstance(entry, dict) or not _is_sha256(entry.get("sha256")):
            raise FirmwareError(f"{path}: firmware.{url}: needs a 64-hex-digit 'sha256'")
    return entries


def _write_lock(path: Path, entries: Mapping[str, Mapping[str, str]]) -> None:
    body = {
        "comment": "SHA-256 of each firmware archive, recorded at first download and checked on every use. "
        "Commit this file; delete an entry only to re-pin on purpose.",
        "firmware": {k: dict(v) for k, v in sorted(entries.items())},
    }
    write_atomic(path, (json.dumps(body, indent=2, sort_keys=True) + "\n").encode())


def _is_sha256(value: object) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


# --- download and cache ---------------------------------------------------------------------------


def _download(url: str, dest: Path, *, timeout: float) -> str:
    """Stream ``url`` into ``dest`` atomically; return its sha256."""
    req = urllib.request.Request(url, headers={"User-Agent": "coreos-infra firmware fetch"})
    h = hashlib.sha256()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp, atomic_output(dest) as out:
            total = resp.headers.get("Content-Length")
            with progress(int(total) if total and total.isdigit() else None, f"download {url}") as bar:
                while chunk := resp.read(1 << 20):
                    out.write(chunk)
                    h.update(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as e:
        raise FirmwareError(f"downloading {url} failed: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        reason = getattr(e, "reason", e)
        raise FirmwareError(f"downloading {url} failed: {reason}") from None
    return h.hexdigest()


def fetch_firmware(
    spec: FirmwareSpec, cache_dir: Path, lock_path: Path, *, timeout: float = 60.0
) -> tuple[Path, str]:
    """Return (verified cached zip, its sha256), downloading it if needed.

    The expected hash comes from the recipe (``spec.sha256``) and/or the lock file; they must agree.
    With neither, the download is trusted on first use and its hash is written to the lock file.
    """
    url = spec.resolved_url
    lock = read_lock(lock_path)
    locked = lock.get(url, {}).get("sha256")
    if spec.sha256 is not None and not _is_sha256(spec.sha256):
        raise FirmwareError(f"firmware sha256 {spec.sha256!r} is not 64 lowercase hex digits")
    if spec.sha256 and locked and spec.sha256 != locked:
        raise VerificationError(
            f"{url}: the recipe pins sha256 {spec.sha256} but {lock_path} has {locked}",
            hint="fix the recipe or remove the stale lock entry on purpose",
        )
    expected = spec.sha256 or locked
    pinned_by = None
    if spec.sha256:
        pinned_by = "the recipe's firmware.sha256"
    elif locked:
        pinned_by = f'the entry "{url}" of {lock_path}'
    store = cache_dir / "firmware" / "sha256"
    if expected:
        cached = store / f"{expected}.zip"
        if cached.exists():
            actual = sha256_file(cached)
            if actual == expected:
                _validate(cached, url, pinned_by, lock_path)
                _record(lock_path, lock, url, spec.version, expected)
                return cached, expected
            LOG.warning("cached firmware %s is corrupt (sha256 %s); downloading again", cached, actual)
            cached.unlink()
    store.mkdir(parents=True, exist_ok=True)
    partial = store / f".download-{os.getpid()}.zip"
    try:
        digest = _download(url, partial, timeout=timeout)
        if expected and digest != expected:
            raise VerificationError(
                f"{url}: sha256 {digest} does not match the pinned {expected}",
                hint="the release asset changed or the download was tampered with; nothing was used",
            )
        # validated before it is cached or pinned: a bad download must not become the pinned version
        _validate(partial, url, pinned_by, lock_path)
        final = store / f"{digest}.zip"
        os.replace(partial, final)
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    if not expected:
        LOG.warning("firmware %s pinned on first use: sha256 %s recorded in %s", url, digest, lock_path)
    _record(lock_path, lock, url, spec.version, digest)
    return final, digest


def _validate(path: Path, url: str, pinned_by: str | None, lock_path: Path) -> None:
    """Refuse a zip that is not a usable firmware archive, saying what to do about a pinned one."""
    try:
        read_firmware_zip(path, name=url)
    except FirmwareError as e:
        if pinned_by is None:
            hint = f"nothing was cached or pinned in {lock_path}; check the firmware URL"
        elif pinned_by.startswith("the entry"):
            hint = (
                f"it is pinned by {pinned_by}: remove that entry (and check the URL) to pin a new "
                "download on the next build"
            )
        else:
            hint = f"it is pinned by {pinned_by}: fix the pin (and check the URL)"
        raise FirmwareError(e.message, hint=hint) from None


def _record(lock_path: Path, lock: dict[str, dict[str, str]], url: str, version: str, digest: str) -> None:
    entry = {"version": version, "sha256": digest}
    if lock.get(url) != entry:
        lock[url] = entry
        _write_lock(lock_path, lock)


# --- archive validation ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FirmwareFile:
    path: str  # relative POSIX path inside the ESP
    data: bytes


def _check_name(name: str, where: str) -> str:
    if "\\" in name or "\0" in name:
        raise FirmwareError(f"{where}: entry {name!r} contains a backslash or NUL (refusing)")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise FirmwareError(f"{where}: entry {name!r} has an absolute path (zip-slip, refusing)")
    parts = PurePosixPath(name).parts
    if any(p == ".." for p in parts):
        raise FirmwareError(f"{where}: entry {name!r} escapes the target directory (zip-slip, refusing)")
    clean = [p for p in parts if p not in (".", "")]
    if not clean:
        raise FirmwareError(f"{where}: entry {name!r} has an empty name")
    return "/".join(clean)


def read_firmware_zip(path: Path, *, name: str | None = None) -> list[FirmwareFile]:
    """Validate and read every regular file of a firmware zip (nothing is written anywhere).

    ``name`` is what errors call the archive (default: its path)."""
    where = name or str(path)
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise FirmwareError(f"{where}: not a valid zip archive: {e}") from None
    files: list[FirmwareFile] = []
    seen: set[str] = set()
    total = 0
    with zf:
        for info in zf.infolist():
            name = _check_name(info.filename, where)
            mode = info.external_attr >> 16
            # Only the file-type bits say what an entry is; some zip writers store just permissions.
            if info.create_system == 3 and stat.S_IFMT(mode):
                if stat.S_ISLNK(mode):
                    raise FirmwareError(f"{where}: entry {info.filename!r} is a symbolic link (refusing)")
                if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                    raise FirmwareError(f"{where}: entry {info.filename!r} is a special file (refusing)")
            if info.flag_bits & 0x1:
                raise FirmwareError(f"{where}: entry {info.filename!r} is encrypted")
            if info.is_dir():
                continue
            key = name.lower()  # FAT is case-insensitive
            if key in seen:
                raise FirmwareError(f"{where}: entry {name!r} appears twice")
            seen.add(key)
            total += info.file_size
            if total > MAX_UNCOMPRESSED:
                raise FirmwareError(
                    f"{where}: unpacks to more than {MAX_UNCOMPRESSED >> 20} MiB; not firmware"
                )
            try:
                data = _read_capped(zf, info)
            except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as e:
                raise FirmwareError(f"{where}: entry {info.filename!r} is corrupt: {e}") from None
            except Exception as e:  # zlib.error and friends from a damaged deflate stream
                raise FirmwareError(f"{where}: entry {info.filename!r} is corrupt: {e}") from None
            files.append(FirmwareFile(name, data))
    names = {f.path for f in files}
    missing = [n for n in REQUIRED_FILES if n not in names]
    if missing:
        raise FirmwareError(
            f"{where}: not a Raspberry Pi 4 UEFI firmware archive (missing {', '.join(missing)})"
        )
    return files


def _read_capped(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """Read an entry, never more than its declared size (a lying header cannot balloon memory)."""
    with zf.open(info) as fh:
        data = fh.read(info.file_size + 1)
    if len(data) != info.file_size:
        raise FirmwareError(
            f"entry {info.filename!r} is {len(data)}+ bytes, its header says {info.file_size}"
        )
    return data


# --- config.txt -----------------------------------------------------------------------------------


def render_config_txt(overrides: Mapping[str, Any] | str | None) -> str:
    """config.txt: the upstream defaults with ``overrides`` applied (or ``overrides`` verbatim if a string).

    A mapping value replaces every line of that key; ``None`` removes the key; a list repeats it
    (``dtoverlay: [miniuart-bt, upstream-pi4, disable-wifi]``); new keys are appended.
    """
    if isinstance(overrides, str):
        return overrides if overrides.endswith("\n") else overrides + "\n"
    lines: list[tuple[str, str]] = list(UPSTREAM_CONFIG_TXT)
    for key, value in (overrides or {}).items():
        first = next((i for i, (k, _) in enumerate(lines) if k == key), len(lines))
        lines = [(k, v) for k, v in lines if k != key]
        if value is None:
            continue
        values = value if isinstance(value, list) else [value]
        new = [(key, _config_value(v)) for v in values]
        lines[first:first] = new
    return "".join(f"{k}={v}\n" for k, v in lines)


def _config_value(v: Any) -> str:
    if isinstance(v, bool):
        return "1" if v else "0"
    return str(v)


def config_txt_value(text: str, key: str) -> list[str]:
    return [
        line.split("=", 1)[1].strip() for line in text.splitlines() if line.split("=", 1)[0].strip() == key
    ]


# --- RamLimitTo3GB --------------------------------------------------------------------------------


def _open_varstore(fd_path: Path) -> Any:
    from virt.firmware.varstore.edk2 import Edk2VarStore

    if not Edk2VarStore.probe(str(fd_path)):
        raise FirmwareError(f"{fd_path.name}: no EDK2 UEFI variable store found in the firmware image")
    try:
        return Edk2VarStore(str(fd_path))
    except SystemExit:  # virt-firmware reports format errors by exiting
        raise FirmwareError(
            f"{fd_path.name}: the UEFI variable store is not in a format virt-firmware knows"
        ) from None


def get_ram_limit(fd_data: bytes) -> int | None:
    """The RamLimitTo3GB value stored in an RPI_EFI.fd image (None if the variable is not set)."""
    with tempfile.TemporaryDirectory(prefix="coreos-infra-fw-") as tmp:
        p = Path(tmp) / "RPI_EFI.fd"
        p.write_bytes(fd_data)
        store = _open_varstore(p)
        var = store.get_varlist().get(RAM_LIMIT_VAR)
        if var is None or str(var.guid) != RAM_LIMIT_GUID:
            return None
        return int.from_bytes(var.data[:4], "little")


def set_ram_limit(fd_data: bytes, enabled: bool) -> bytes:
    """Return ``fd_data`` (an RPI_EFI.fd image) with RamLimitTo3GB set to 1 (enabled) or 0."""
    from virt.firmware.efi import efivar, guids

    with tempfile.TemporaryDirectory(prefix="coreos-infra-fw-") as tmp:
        p = Path(tmp) / "RPI_EFI.fd"
        p.write_bytes(fd_data)
        store = _open_varstore(p)
        varlist = store.get_varlist()
        value = (1 if enabled else 0).to_bytes(4, "little")
        var = varlist.get(RAM_LIMIT_VAR)
        if var is not None and str(var.guid) == RAM_LIMIT_GUID:
            var.data = value
        else:
            varlist[RAM_LIMIT_VAR] = efivar.EfiVar(
                RAM_LIMIT_VAR, guid=guids.parse_str(RAM_LIMIT_GUID), attr=RAM_LIMIT_ATTRS, data=value
            )
        try:
            # virt-firmware's bytes_varstore() pads byte by byte (seconds per call); same layout here
            packed = store.bytes_varlist(varlist)
        except SystemExit:
            raise FirmwareError("RPI_EFI.fd: the UEFI variable store is full") from None
        data = store.filedata
        blob = (
            data[: store.start]
            + packed
            + b"\xff" * (store.end - store.start - len(packed))
            + data[store.end :]
        )
    if len(blob) != len(fd_data):
        raise FirmwareError("RPI_EFI.fd: rewriting the variable store changed the image size")
    if get_ram_limit(blob) != int.from_bytes(value, "little"):
        raise FirmwareError("RPI_EFI.fd: RamLimitTo3GB did not read back as written")
    return blob


# --- install --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FirmwareInstall:
    version: str
    zip_sha256: str
    files: tuple[str, ...]
    config_txt: str
    ram_limit_3gb: int | None  # the value in RPI_EFI.fd after install (None: not set, firmware default 1)


def install_firmware(
    zip_path: Path,
    zip_sha256: str,
    version: str,
    esp: FatImage,
    *,
    config_txt: Mapping[str, Any] | str | None = None,
    ram_limit_3gb: bool | None = None,
) -> FirmwareInstall:
    """Unpack the firmware into the ESP root, write config.txt, optionally set RamLimitTo3GB."""
    files = read_firmware_zip(zip_path)
    existing = {p.lower() for p in esp.list_files()}
    for f in files:
        if f.path.lower().startswith("efi/") and f.path.lower() in {e.lstrip("/") for e in existing}:
            raise FirmwareError(
                f"{zip_path}: entry {f.path!r} would overwrite the OS boot loader in the ESP"
            )
    rendered = render_config_txt(config_txt)
    if config_txt is not None and not isinstance(config_txt, str):
        stubs = config_txt_value(rendered, "armstub")
        if stubs != ["RPI_EFI.fd"]:
            raise FirmwareError(
                f"config_txt.armstub must stay RPI_EFI.fd (got {stubs}); the Pi would not load UEFI"
            )
    out: dict[str, bytes] = {f.path: f.data for f in files}
    if config_txt is not None or "config.txt" not in out:
        out["config.txt"] = rendered.encode()
    if ram_limit_3gb is not None:
        out["RPI_EFI.fd"] = set_ram_limit(out["RPI_EFI.fd"], ram_limit_3gb)
    ram_value = get_ram_limit(out["RPI_EFI.fd"]) if ram_limit_3gb is not None else None
    with tempfile.TemporaryDirectory(prefix="coreos-infra-fw-") as tmp:
        root = Path(tmp)
        for rel, data in out.items():
            dest = root / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)
        written = esp.copy_tree(root, "/")
    return FirmwareInstall(version, zip_sha256, tuple(sorted(w.lstrip("/") for w in written)),
                           out["config.txt"].decode(errors="replace"), ram_value)  # fmt: skip
