"""Edit a FAT filesystem (the EFI system partition) inside a disk image with mtools, without root.

mtools addresses a filesystem at a byte offset of an image as ``image@@offset``.
``MTOOLS_SKIP_CHECK`` keeps it from refusing images whose geometry fields it dislikes, and
``SOURCE_DATE_EPOCH`` (honoured by mtools >= 4.0.25) makes the timestamps it writes reproducible.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path, PurePosixPath

from coreos_infra.errors import CoreosInfraError, ToolError
from coreos_infra.run import find_binary, run


class FatError(CoreosInfraError):
    """mtools refused a request."""


def _fat_path(path: str) -> str:
    p = PurePosixPath(path)
    if not p.is_absolute() or ".." in p.parts:
        raise FatError(f"refusing FAT path {path!r} (must be absolute, without '..')")
    return "::" + str(p)


class FatImage:
    """A FAT filesystem at byte ``offset`` of ``image``."""

    def __init__(self, image: Path, offset: int, *, source_date_epoch: int | None = None) -> None:
        self.image = Path(image)
        self.offset = offset
        self.target = f"{self.image}@@{offset}"
        self.env = {"MTOOLS_SKIP_CHECK": "1", "MTOOLS_NO_VFAT": "0"}
        if source_date_epoch is not None:
            self.env["SOURCE_DATE_EPOCH"] = str(source_date_epoch)
        find_binary("mtools", reason="edit the EFI system partition (FAT) in disk images")

    def _run(self, tool: str, *args: str) -> bytes:
        try:
            return run([tool, "-i", self.target, *args], capture=True, env=self.env).stdout
        except ToolError as e:
            raise FatError(f"{self.image} (FAT at offset {self.offset}): {e.message}") from None

    def label(self) -> str:
        out = self._run("mlabel", "-s", "::").decode(errors="replace").strip()
        # "Volume label is EFI-SYSTEM" or "Volume has no label"
        return out.rsplit(" is ", 1)[1].strip() if " is " in out else ""

    def list_files(self) -> list[str]:
        """Every file and directory, as absolute paths, recursively."""
        out = self._run("mdir", "-/", "-b", "-a", "::/").decode(errors="surrogateescape")
        paths = []
        for line in out.splitlines():
            line = line.strip()
            if line.startswith("::"):
                line = line[2:]
            if line and line not in ("/", "/.", "/.."):
                paths.append(line.rstrip("/"))
        return sorted(set(paths))

    def exists(self, path: str) -> bool:
        try:
            self._run("mdir", "-b", _fat_path(path))
        except FatError:
            return False
        return True

    def read(self, path: str) -> bytes:
        with tempfile.TemporaryDirectory(prefix="coreos-infra-fat-") as tmp:
            local = Path(tmp) / "out"
            self._run("mcopy", "-n", _fat_path(path), str(local))
            return local.read_bytes()

    def mkdir(self, path: str) -> None:
        """Create ``path`` and its missing parents."""
        p = PurePosixPath(path)
        for i in range(2, len(p.parts) + 1):
            sub = str(PurePosixPath(*p.parts[:i]))
            if not self.exists(sub):
                self._run("mmd", _fat_path(sub))

    def write(self, path: str, data: bytes) -> None:
        """Create or overwrite file ``path`` (parents are created)."""
        parent = str(PurePosixPath(path).parent)
        if parent != "/":
            self.mkdir(parent)
        fd, local = tempfile.mkstemp(prefix="coreos-infra-fat-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            self._run("mcopy", "-o", local, _fat_path(path))
        finally:
            os.unlink(local)

    def copy_tree(self, src: Path, dest: str = "/") -> list[str]:
        """Copy the contents of local directory ``src`` into ``dest``, overwriting; return the FAT paths."""
        written = []
        for root, dirs, files in os.walk(src):
            dirs.sort()
            rel = Path(root).relative_to(src)
            fat_dir = str(PurePosixPath(dest) / PurePosixPath(*rel.parts)) if rel.parts else dest
            if fat_dir != "/":
                self.mkdir(fat_dir)
            if files:
                self._run(
                    "mcopy", "-o", *(str(Path(root) / n) for n in sorted(files)), _fat_path(fat_dir) + "/"
                )
                written += [str(PurePosixPath(fat_dir) / n) for n in sorted(files)]
        return written

    def remove(self, path: str) -> None:
        self._run("mdel", _fat_path(path))
