"""A PXE bundle on disk: a directory a TFTP/HTTP server can serve as is, plus a tarball of it.

Both carry ``SHA256SUMS`` in ``sha256sum -c`` format. The directory is assembled in a temporary sibling
and renamed into place, so a server never serves a half-written bundle; the tarball is written through
:func:`coreos_infra.fsutil.atomic_output`. The tarball is reproducible: sorted members, owner root,
one fixed mtime, no compression (kernel, initramfs and rootfs are compressed already).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from coreos_infra.errors import CoreosInfraError, WriteError
from coreos_infra.fsutil import CHUNK, atomic_output, copy_file_fast, signals_held
from coreos_infra.log import progress

SUMS_NAME = "SHA256SUMS"


@dataclass(frozen=True)
class BundleFile:
    """One file of the bundle: ``name`` is its relative path; content from ``source`` (followed by
    ``append``) or ``data``."""

    name: str
    source: Path | None = None
    data: bytes | None = None
    mode: int = 0o644
    append: bytes = b""

    def __post_init__(self) -> None:
        if (self.source is None) == (self.data is None):
            raise ValueError(f"bundle file {self.name}: give exactly one of source and data")
        parts = self.name.split("/")
        if self.name.startswith("/") or any(p in ("", ".", "..") for p in parts) or self.name == SUMS_NAME:
            raise ValueError(f"bad bundle file name {self.name!r}")


@dataclass(frozen=True)
class Bundle:
    directory: Path
    tarball: Path | None
    sha256: dict[str, str]  # bundle-relative name -> hex digest (SHA256SUMS content)


def _hash_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _populate(tmp: Path, files: Sequence[BundleFile], shown: Path) -> dict[str, str]:
    """Write ``files`` into ``tmp``; errors name the file as it will be called (under ``shown``)."""
    sums: dict[str, str] = {}
    for bf in files:
        if bf.name in sums:
            raise CoreosInfraError(f"bundle file {bf.name} given twice")
        dest = tmp / bf.name
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            if bf.data is not None:
                fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, bf.mode)
                with os.fdopen(fd, "wb") as out:
                    out.write(bf.data)
                sums[bf.name] = hashlib.sha256(bf.data).hexdigest()
            else:
                assert bf.source is not None
                try:
                    src = open(bf.source, "rb")  # noqa: SIM115
                except OSError as e:
                    raise CoreosInfraError(f"{bf.source}: cannot copy into the bundle: {e.strerror}") from e
                with src, open(dest, "xb") as out:
                    copy_file_fast(src, out)
                    out.seek(0, os.SEEK_END)
                    out.write(bf.append)
                sums[bf.name] = _hash_file(dest)
            os.chmod(dest, bf.mode)
        except OSError as e:  # disk full, read-only directory: name the bundle file being written
            raise WriteError(str(shown / bf.name), e) from e
    return sums


def sums_text(sums: dict[str, str]) -> bytes:
    return "".join(f"{digest}  {name}\n" for name, digest in sorted(sums.items())).encode()


def _swap_into_place(tmp: Path, directory: Path) -> None:
    if directory.exists() or directory.is_symlink():
        if not directory.is_dir() or directory.is_symlink():
            raise CoreosInfraError(f"{directory}: exists and is not a bundle directory")
    # a few renames and unlinks: not interrupted halfway (the old bundle or the new one, never neither)
    with signals_held():
        old = None
        if directory.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{directory.name}.old-", dir=directory.parent))
            os.rename(directory, old / directory.name)
        try:
            os.rename(tmp, directory)
        except OSError:
            if old is not None:
                os.rename(old / directory.name, directory)
            raise
        finally:
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)


def write_tarball(
    directory: Path, tarball: Path, *, arcname: str | None = None, mtime: int = 0, private: bool = False
) -> None:
    """A reproducible uncompressed tar of ``directory``, its members under ``<arcname>/``; mode 0600 if
    ``private`` (it holds secrets), else 0644."""
    top = arcname or directory.name
    members = sorted(directory.rglob("*"))
    total = sum(p.stat().st_size for p in members if p.is_file())

    def info(path: Path) -> tarfile.TarInfo:
        rel = path.relative_to(directory).as_posix()
        ti = tarfile.TarInfo(top if rel == "." else f"{top}/{rel}")
        st = path.stat()
        ti.mode = st.st_mode & 0o7777
        ti.uid = ti.gid = 0
        ti.uname = ti.gname = "root"
        ti.mtime = mtime
        if path.is_dir():
            ti.type = tarfile.DIRTYPE
        else:
            ti.size = st.st_size
        return ti

    mode = 0o600 if private else 0o644
    with atomic_output(tarball, mode=mode) as f, progress(total, f"tar {tarball.name}") as bar:
        with tarfile.open(fileobj=f, mode="w", format=tarfile.GNU_FORMAT) as tar:
            tar.addfile(info(directory))
            for p in members:
                ti = info(p)
                if p.is_dir():
                    tar.addfile(ti)
                    continue
                with open(p, "rb") as src:
                    tar.addfile(ti, src)
                bar.update(ti.size)


def is_private(files: Sequence[BundleFile]) -> bool:
    """Whether a file of the bundle is owner-only (it embeds secrets): then so are the directory (0700)
    and the tarball (0600), which hold a copy of it."""
    return any(bf.mode & 0o077 == 0 for bf in files)


def write_bundle(
    files: Sequence[BundleFile], directory: Path, *, tarball: Path | None = None, mtime: int = 0
) -> Bundle:
    """Write ``files`` plus ``SHA256SUMS`` as ``directory`` (replacing an older bundle) and the tarball.

    A bundle with an owner-only file (:func:`is_private`) gets a 0700 directory and a 0600 tarball."""
    directory = Path(directory)
    private = is_private(files)
    tmp: Path | None = None
    try:
        with signals_held():
            try:
                directory.parent.mkdir(parents=True, exist_ok=True)
                tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.tmp-", dir=directory.parent))
            except OSError as e:
                raise WriteError(str(directory), e, stage="open") from None
        os.chmod(tmp, 0o700 if private else 0o755)  # owner-only from the start when it holds secrets
        sums = _populate(tmp, files, directory)
        try:
            (tmp / SUMS_NAME).write_bytes(sums_text(sums))
        except OSError as e:
            raise WriteError(str(directory / SUMS_NAME), e) from e
        for d in sorted(p for p in tmp.rglob("*") if p.is_dir()):
            os.chmod(d, 0o755)
        if tarball is not None:
            write_tarball(tmp, Path(tarball), arcname=directory.name, mtime=mtime, private=private)
        _swap_into_place(tmp, directory)
    except BaseException:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Bundle(directory=directory, tarball=Path(tarball) if tarball else None, sha256=sums)
