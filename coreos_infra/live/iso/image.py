"""A CoreOS live ISO opened for reading and patching its embed areas.

:class:`LiveIso` finds the Ignition area, the karg areas and the OS features once, queues changes as
(offset, bytes) writes and then :meth:`LiveIso.save` applies them in one of three output modes that give
identical bytes:

- in place (``output=None``): only the embed areas are written, so a 4 GiB ISO costs what a 1 MiB one does;
- ``output=PATH``: the ISO is copied with :func:`coreos_infra.fsutil.copy_file_fast` (copy_file_range,
  holes preserved) into a temporary file next to PATH, patched, and renamed into place without ever
  replacing an existing file;
- ``output="-"``: streamed to stdout (sendfile where possible) with the areas substituted on the fly.

Memory use is bounded by the embed areas (≤ 256 KiB each) and the xz encoder, never by the ISO size.
The xz encoding of the Ignition area (:mod:`coreos_infra.live.xzencoder`, tens of milliseconds) can be
deferred to :meth:`LiveIso.save` (``set_initrd(..., background=True)``), where with ``-o`` it runs while
another thread copies the ISO in the kernel (copy_file_range releases the GIL).
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

from coreos_infra.errors import CoreosInfraError
from coreos_infra.fsutil import CHUNK, StartedCopy, atomic_output, copy_file_fast
from coreos_infra.live.customize import Features
from coreos_infra.live.iso import embed, kargs
from coreos_infra.live.iso.iso9660 import IsoFs

FEATURES_JSON = "COREOS/FEATURES.JSO"
NETWORK_PREFIX = "etc/coreos-firstboot-network/"
IGNITION_MEMBER = "config.ign"


class OutputError(CoreosInfraError):
    """The output cannot be written (exists, is a terminal...)."""


class LiveIso:
    """A live ISO and its pending modifications. Use as a context manager or call :meth:`close`."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        try:
            self._f: BinaryIO = open(self.path, "rb")  # noqa: SIM115 - closed by close()
        except OSError as e:
            raise CoreosInfraError(f"opening {self.path}: {e.strerror}") from None
        try:
            self.fs = IsoFs(self._f)
            self.ignition_area = embed.find_ignition_area(self.fs)
            self.kargs_layout = kargs.find_kargs(self.fs, self._f)
        except BaseException:
            self._f.close()
            raise
        self._writes: dict[int, bytes | Callable[[], bytes]] = {}
        self._initrd: dict[str, bytes] | None = None
        self._kargs: str | None = None

    def __enter__(self) -> LiveIso:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._f.close()

    @functools.cached_property
    def features(self) -> Features:
        """OS feature flags from ``coreos/features.json`` (all false when the ISO has none)."""
        rec = self.fs.find(FEATURES_JSON)
        return Features.parse(self.fs.read(rec), "coreos/features.json") if rec else Features()

    @property
    def size(self) -> int:
        return os.fstat(self._f.fileno()).st_size

    def read(self, offset: int, length: int) -> bytes:
        self._f.seek(offset)
        return self._f.read(length)

    # ------------------------------------------------------------ Ignition area

    def initrd(self) -> dict[str, bytes]:
        """Members of the embedded initrd (after pending changes)."""
        if self._initrd is None:
            area = self.ignition_area
            self._initrd = embed.decode_area(self.read(area.offset, area.length))
        return dict(self._initrd)

    def set_initrd(self, files: Mapping[str, bytes], *, background: bool = False) -> None:
        """Replace the embedded initrd members (empty => the area becomes all zeros).

        The area is encoded now, or with ``background=True`` during :meth:`save` (overlapping the copy;
        a "too large" error then surfaces from :meth:`save`, before anything is written or renamed).
        """
        area = self.ignition_area
        files = dict(files)
        if background:
            self._writes[area.offset] = functools.partial(embed.encode_area, files, area.length)
        else:
            self._writes[area.offset] = embed.encode_area(files, area.length)
        self._initrd = files

    def ignition(self) -> bytes | None:
        return self.initrd().get(IGNITION_MEMBER)

    def network_files(self) -> dict[str, bytes]:
        return {k: v for k, v in self.initrd().items() if k.startswith(NETWORK_PREFIX)}

    # ------------------------------------------------------------ kargs

    def require_kargs(self) -> kargs.KargsLayout:
        if self.kargs_layout is None:
            raise kargs.KargsError(kargs.NO_KARG_AREAS)
        return self.kargs_layout

    def kargs(self) -> str:
        """Current kernel arguments (after pending changes)."""
        if self._kargs is None:
            self._kargs = self.require_kargs().read_current(self._f)
        return self._kargs

    def default_kargs(self) -> str:
        return self.require_kargs().default

    def set_kargs(self, value: str) -> None:
        layout = self.require_kargs()
        self._writes.update(layout.writes(value))
        self._kargs = value.strip()

    # ------------------------------------------------------------ state

    def is_customized(self) -> bool:
        """Whether ``iso customize`` must refuse without ``-f``."""
        if self.ignition() is not None or self.network_files():
            return True
        return self.kargs_layout is not None and self.kargs() != self.kargs_layout.default

    def reset(self) -> None:
        """Empty the Ignition area; default kargs where there are karg areas."""
        self.set_initrd({})
        if self.kargs_layout is not None:
            self.set_kargs(self.kargs_layout.default)

    @property
    def pending_writes(self) -> dict[int, bytes]:
        """Offset -> bytes of every queued write (runs deferred encodings)."""
        for offset, value in list(self._writes.items()):
            if callable(value):
                self._writes[offset] = value()
        return {k: v for k, v in sorted(self._writes.items()) if isinstance(v, bytes)}

    # ------------------------------------------------------------ output

    def save(
        self,
        output: str | Path | None = None,
        *,
        stdout: BinaryIO | None = None,
        overwrite: bool = False,
        mode: int = 0o644,
        durable: bool = False,
        started: StartedCopy | None = None,
    ) -> None:
        """Write the result in place (None), to a new file (path) or to stdout (``"-"``).

        A new file never replaces an existing one unless ``overwrite`` (builds); it gets ``mode`` and is
        fsynced before the rename only if ``durable`` (``-o`` behaves like ``cp`` and coreos-installer).
        ``started`` is a copy of this ISO to ``output`` begun earlier (:class:`StartedCopy`): only the
        patching is left to do.
        """
        if started is not None:
            writes = self.pending_writes  # encodes while the kernel may still be copying
            dst = started.finish()
            for offset, data in writes.items():
                dst.seek(offset)
                dst.write(data)
            started.commit()
        elif output is None:
            self._save_in_place()
        elif str(output) == "-":
            self._save_stream(stdout if stdout is not None else sys.stdout.buffer)
        else:
            self._save_copy(Path(output), overwrite=overwrite, mode=mode, durable=durable)

    def _save_in_place(self) -> None:
        writes = self.pending_writes
        if not writes:
            return
        try:
            with open(self.path, "r+b") as f:
                for offset, data in writes.items():
                    f.seek(offset)
                    f.write(data)
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            raise CoreosInfraError(f"writing {self.path}: {e.strerror}") from None

    def _save_copy(self, out: Path, *, overwrite: bool, mode: int, durable: bool) -> None:
        exists = OutputError(f"persisting output file to {out}\n\nCaused by:\n    File exists (os error 17)")
        if not overwrite and (out.exists() or out.is_symlink()):
            raise exists
        try:
            with atomic_output(out, overwrite=overwrite, mode=mode, durable=durable, parents=False) as dst:
                self._f.seek(0)
                with ThreadPoolExecutor(max_workers=1, thread_name_prefix="iso-copy") as pool:
                    copying = pool.submit(copy_file_fast, self._f, dst)
                    try:
                        writes = self.pending_writes  # encodes while the kernel copies
                    finally:
                        copying.result()
                for offset, data in writes.items():
                    dst.seek(offset)
                    dst.write(data)
        except FileExistsError:
            raise exists from None
        except CoreosInfraError as e:
            if "refusing to overwrite" in str(e):
                raise exists from None
            raise

    def _save_stream(self, out: BinaryIO) -> None:
        if out.isatty():
            raise OutputError("Refusing to write binary data to terminal")
        writes = self.pending_writes
        out.flush()
        pos = 0
        for offset, data in [*writes.items(), (self.size, b"")]:
            self._copy_range(out, pos, offset - pos)
            out.write(data)
            out.flush()
            pos = offset + len(data)

    def _copy_range(self, out: BinaryIO, offset: int, count: int) -> None:
        src = self._f.fileno()
        try:
            dst = out.fileno()
        except (OSError, AttributeError, ValueError):
            dst = -1
        while count > 0 and dst >= 0:
            try:
                n = os.sendfile(dst, src, offset, min(count, 1 << 30))
            except OSError:
                break
            if n == 0:
                break
            offset += n
            count -= n
        self._f.seek(offset)
        while count > 0:
            chunk = self._f.read(min(count, CHUNK))
            if not chunk:
                raise CoreosInfraError(f"{self.path}: file shrank while reading")
            out.write(chunk)
            count -= len(chunk)


@contextlib.contextmanager
def open_iso(path: Path | str) -> Iterator[LiveIso]:
    iso = LiveIso(path)
    try:
        yield iso
    finally:
        iso.close()
