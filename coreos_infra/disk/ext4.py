"""Edit an ext4 filesystem inside a disk image without mounting it and without root.

Everything goes through ``debugfs`` on ``image?offset=N`` (e2fsprogs' unix io manager option), which
opens only the filesystem's own byte range of the image. debugfs does not fail on a failing request,
so every request runs as its own ``-R`` invocation and anything it prints on stderr (apart from its
version banner) is turned into an error naming the request.
"""

from __future__ import annotations

import os
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from coreos_infra.errors import CoreosInfraError
from coreos_infra.run import find_binary, run

EXT4_MAGIC = 0xEF53


class Ext4Error(CoreosInfraError):
    """debugfs refused a request."""


@dataclass(frozen=True)
class DirEntry:
    name: str
    inode: int
    mode: int
    uid: int
    gid: int
    size: int

    @property
    def is_dir(self) -> bool:
        return (self.mode & 0o170000) == 0o040000

    @property
    def is_file(self) -> bool:
        return (self.mode & 0o170000) == 0o100000


def read_superblock_label(image: Path, offset: int) -> tuple[str, str] | None:
    """(volume label, UUID) of an ext2/3/4 filesystem at ``offset``, or None if there is none."""
    with open(image, "rb") as f:
        f.seek(offset + 1024)
        sb = f.read(1024)
    if len(sb) < 1024 or struct.unpack_from("<H", sb, 0x38)[0] != EXT4_MAGIC:
        return None
    label = sb[0x78:0x88].split(b"\0", 1)[0].decode(errors="replace")
    fs_uuid = sb[0x68:0x78].hex()
    return label, f"{fs_uuid[:8]}-{fs_uuid[8:12]}-{fs_uuid[12:16]}-{fs_uuid[16:20]}-{fs_uuid[20:]}"


def _check_path(path: str) -> str:
    p = PurePosixPath(path)
    if not p.is_absolute() or ".." in p.parts or any(c in path for c in "\n\r\"'\\ "):
        raise Ext4Error(f"refusing ext4 path {path!r} (must be absolute, without '..', quotes or spaces)")
    return str(p)


class Ext4Image:
    """An ext4 filesystem at byte ``offset`` of ``image``."""

    def __init__(self, image: Path, offset: int, *, source_date_epoch: int | None = None) -> None:
        self.image = Path(image)
        self.offset = offset
        self.target = f"{self.image}?offset={offset}"
        self.debugfs = find_binary("debugfs", reason="edit ext4 filesystems in disk images",
                                   extra_paths=("/sbin", "/usr/sbin"))  # fmt: skip
        # libext2fs takes "now" from E2FSPROGS_FAKE_TIME: reproducible inode and superblock times
        self.env = {"E2FSPROGS_FAKE_TIME": str(source_date_epoch)} if source_date_epoch is not None else {}

    def request(self, req: str, *, write: bool = False) -> bytes:
        """Run one debugfs request; return its stdout, raise Ext4Error if it printed an error."""
        argv = [self.debugfs, *(["-w"] if write else []), "-R", req, self.target]
        res = run(argv, capture=True, env=self.env)
        errors = [
            line
            for line in res.stderr.decode(errors="replace").splitlines()
            if line.strip() and not line.startswith("debugfs ")
        ]
        if errors:
            raise Ext4Error(
                f"{self.image} (ext4 at offset {self.offset}): debugfs '{req}': " + "; ".join(errors)
            )
        return res.stdout

    def stat(self, path: str) -> DirEntry | None:
        """The directory entry of ``path``, or None if it does not exist."""
        path = _check_path(path)
        parent, name = str(PurePosixPath(path).parent), PurePosixPath(path).name
        if path == "/":
            return DirEntry("/", 2, 0o040755, 0, 0, 0)
        try:
            entries = self.listdir(parent)
        except Ext4Error:
            return None
        return next((e for e in entries if e.name == name), None)

    def exists(self, path: str) -> bool:
        return self.stat(path) is not None

    def listdir(self, path: str) -> list[DirEntry]:
        """Entries of directory ``path`` (without ``.`` and ``..``)."""
        out = self.request(f"ls -p {_check_path(path)}").decode(errors="surrogateescape")
        entries = []
        for line in out.splitlines():
            # /inode/mode/uid/gid/name/size/
            fields = line.split("/")
            if len(fields) < 7 or not fields[1].isdigit():
                continue
            name = "/".join(fields[5:-2])
            if name in (".", "..") or fields[1] == "0":
                continue
            size = int(fields[-2]) if fields[-2].isdigit() else 0
            entries.append(
                DirEntry(name, int(fields[1]), int(fields[2], 8), int(fields[3]), int(fields[4]), size)
            )
        return entries

    def read(self, path: str) -> bytes:
        path = _check_path(path)
        entry = self.stat(path)
        if entry is None or not entry.is_file:
            raise Ext4Error(f"{self.image} (ext4 at offset {self.offset}): no regular file {path}")
        with tempfile.TemporaryDirectory(prefix="coreos-infra-ext4-") as tmp:
            local = Path(tmp) / "out"
            self.request(f"dump {path} {local}")
            return local.read_bytes()

    def mkdir(self, path: str, *, mode: int = 0o755, uid: int = 0, gid: int = 0) -> None:
        """Create directory ``path`` (and missing parents) if needed; set mode and owner."""
        path = _check_path(path)
        p = PurePosixPath(path)
        for i in range(2, len(p.parts) + 1):
            sub = str(PurePosixPath(*p.parts[:i]))
            entry = self.stat(sub)
            if entry is None:
                self.request(f"mkdir {sub}", write=True)
            elif not entry.is_dir:
                raise Ext4Error(
                    f"{self.image} (ext4 at offset {self.offset}): {sub} exists and is not a directory"
                )
        self.set_attrs(path, mode=0o040000 | mode, uid=uid, gid=gid)

    def set_attrs(self, path: str, *, mode: int, uid: int = 0, gid: int = 0) -> None:
        path = _check_path(path)
        self.request(f"sif {path} mode 0{mode:o}", write=True)
        self.request(f"sif {path} uid {uid}", write=True)
        self.request(f"sif {path} gid {gid}", write=True)

    def write(self, path: str, data: bytes, *, mode: int = 0o644, uid: int = 0, gid: int = 0,
              replace: bool = True) -> None:  # fmt: skip
        """Create or replace regular file ``path`` with ``data`` (the parent directory must exist)."""
        path = _check_path(path)
        entry = self.stat(path)
        if entry is not None:
            if not replace:
                raise Ext4Error(f"{self.image} (ext4 at offset {self.offset}): {path} already exists")
            if not entry.is_file:
                raise Ext4Error(
                    f"{self.image} (ext4 at offset {self.offset}): {path} exists and is not a file"
                )
            self.request(f"rm {path}", write=True)
        fd, local = tempfile.mkstemp(prefix="coreos-infra-ext4-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            self.request(f"write {local} {path}", write=True)
        finally:
            os.unlink(local)
        self.set_attrs(path, mode=0o100000 | mode, uid=uid, gid=gid)

    def remove(self, path: str) -> bool:
        """Remove regular file ``path``; return whether it existed."""
        path = _check_path(path)
        if self.stat(path) is None:
            return False
        self.request(f"rm {path}", write=True)
        return True
