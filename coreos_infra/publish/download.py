"""``invoke download``: fetch a published build from a store, verified before any file gets its name.

Resolution: ``sites/<site>/index.json`` → host → target → the build (``latest`` through
``latest.json``, or a build ID). Everything in an index is untrusted: every file name must be a plain
file name (:func:`coreos_infra.safenames.safe_file_name`) and every key exactly the one the layout gives
for that (site, host, target, build, name); anything else is refused before a request is made.

Verification, against a trusted keyring that comes from the caller (``--keyring`` or the site settings),
never only from the store itself:

1. ``SHA256SUMS`` and its detached signature (gpgv; the keyring is built and the signature checked while
   the files download, and no file is renamed before that passed); every file's SHA-256 in the index
   must equal the one in ``SHA256SUMS``;
2. each file is downloaded to ``.<name>.<sha256 prefix>.part`` in the destination and hashed as it
   arrives; its SHA-256 must be the signed one. That is the whole proof: a per-file ``.sig`` is an
   OpenPGP signature by the same key over a digest (SHA-256 with gpg's defaults) of the same bytes, so
   it adds no assurance, only a second, slower hash (gpgv hashes at a fraction of OpenSSL's speed).
   ``verify_each`` (``--verify-each``) checks it all the same: the bytes are fed to ``gpgv`` with the
   file's ``.sig`` through a pipe while they arrive (:class:`coreos_infra.gpg.StreamVerifier`, no second
   pass); the ``.sig`` is then kept too;
3. only when size, SHA-256 (and signature) all verified is the file renamed to its name (mode 0600 when
   the build carries secrets). A file that fails is deleted, partial data included: nothing unverified
   is kept. An interrupted download keeps its ``.part`` file; the next run continues from its size
   (the prefix already there is hashed and fed to gpgv first). Dropped connections are retried in the
   same run, resuming where they stopped. Where the kernel has a boot ID nothing here is fsynced (see
   :mod:`coreos_infra.publish.rangefetch`: a partial file from an earlier boot is started over, a
   complete one is re-hashed before it is kept, and ``flash`` checks an image's signature).

The destination also gets ``meta.json`` (checked against SHA256SUMS) and ``SHA256SUMS`` (+ ``.sig``), so
``gpgv SHA256SUMS.sig SHA256SUMS && sha256sum -c SHA256SUMS`` works there by hand too.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import stat
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coreos_infra import gpg
from coreos_infra.background import Background
from coreos_infra.errors import CoreosInfraError, VerificationError
from coreos_infra.fsutil import CHUNK, boot_id, write_atomic
from coreos_infra.publish import index as idx
from coreos_infra.publish import layout
from coreos_infra.publish.rangefetch import DownloadError, FileEntry, fetch_file
from coreos_infra.publish.store import Store
from coreos_infra.safenames import safe_file_name

LOG = logging.getLogger("coreos_infra.publish")

MAX_SMALL = 16 << 20  # signatures, SHA256SUMS, meta.json, pointers
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_SUMS_LINE = re.compile(r"^([0-9a-fA-F]{64}) [ *](.+)$")


@dataclass(frozen=True)
class Build:
    """A resolved build: its index entry and checked file list."""

    site: str
    host: str
    target: str
    build_id: str
    entry: dict[str, Any]
    files: tuple[FileEntry, ...]
    sums: str | None
    sums_signature: str | None
    meta: str | None

    @property
    def format(self) -> str:
        return str(self.entry.get("format") or "")

    @property
    def contains_secrets(self) -> bool:
        return bool(self.entry.get("contains_secrets"))

    def disk_image(self) -> FileEntry:
        """The file to flash: the stream ``disk`` artifact, else the one named ``*.<format>``."""
        found = [f for f in self.files if f.kind == "disk"] or [
            f for f in self.files if self.format and f.name.endswith("." + self.format)
        ]
        if len(found) != 1 or self.format in ("pxe", "qcow2.xz"):
            raise DownloadError(
                f"build {self.build_id} of {self.site}/{self.host}/{self.target} (format "
                f"{self.format or '?'}) has no disk image to flash",
                hint="flash rpi4/metal (raw.xz) or usb/live (iso) builds; pxe builds are netbooted",
            )
        return found[0]


@dataclass
class Downloaded:
    build: Build
    dest: Path
    files: dict[str, Path] = field(default_factory=dict)  # name -> verified file
    signed: bool = False
    reused: list[str] = field(default_factory=list)  # names already there and verified again
    resumed: dict[str, int] = field(default_factory=dict)  # name -> byte the download resumed at

    def uncompressed_sha256(self, name: str) -> str | None:
        """The SHA-256 of the decompressed image ``name`` from the verified meta.json, if it records one."""
        meta = self.dest / "meta.json"
        if name not in self.files or not meta.is_file():
            return None
        try:
            image = json.loads(meta.read_bytes()).get("image") or {}
        except (ValueError, AttributeError):
            return None
        value = image.get("uncompressed_sha256") if isinstance(image, dict) else None
        return value.lower() if isinstance(value, str) and _HEX64.match(value.lower()) else None


# --- resolution --------------------------------------------------------------------------------------


def _small(store: Store, key: str) -> bytes:
    data = store.get_bytes(key)
    if len(data) > MAX_SMALL:
        raise DownloadError(f"{store.url}/{key}: larger than {MAX_SMALL} bytes; refusing it")
    return data


def _expect_key(value: Any, expected: str, what: str) -> str:
    if value != expected:
        raise VerificationError(
            f"refusing {what} key {value!r}: expected {expected!r} (an index must not point elsewhere)"
        )
    return expected


def _file_entry(site: str, host: str, target: str, build_id: str, f: Any, where: str) -> FileEntry:
    if not isinstance(f, dict):
        raise DownloadError(f"{where}: a file entry is not an object")
    name = safe_file_name(str(f.get("name", "")), what=f"file name in {where}")
    try:
        expected = layout.artifact(site, host, target, build_id, name)
    except CoreosInfraError as e:
        raise VerificationError(f"{where}: refusing file name {name!r}: {e.message}") from None
    key = _expect_key(f.get("key"), expected, f"file {name}")
    sig = f.get("signature")
    if sig is not None:
        sig = _expect_key(sig, layout.signature(key), f"signature of {name}")
    size = f.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise DownloadError(f"{where}: file {name}: invalid size {size!r}")
    sha = str(f.get("sha256", "")).lower()
    if not _HEX64.match(sha):
        raise DownloadError(f"{where}: file {name}: invalid sha256 {f.get('sha256')!r}")
    unc = f.get("uncompressed_sha256")
    unc = str(unc).lower() if isinstance(unc, str) and _HEX64.match(unc.lower()) else None
    kind = f.get("kind") if isinstance(f.get("kind"), str) else None
    return FileEntry(name, key, size, sha, sig, kind, unc)


def resolve_build(store: Store, site: str, host: str, target: str, build: str = "latest") -> Build:
    """Find the build in the site index (``latest`` through ``latest.json``) and check its file list."""
    for value, what in ((site, "site"), (host, "host"), (target, "target")):
        layout.check_name(value, what)
    index = idx.read_site_index(store, site)
    where = f"{store.url}/{layout.site_index(site)}"
    if index is None:
        raise DownloadError(
            f"{store.url}: site {site!r} has not been published (no {layout.site_index(site)})"
        )
    hosts = index.get("hosts", {})
    if host not in hosts:
        raise DownloadError(f"{where}: no host {host!r} (published: {', '.join(sorted(hosts)) or 'none'})")
    targets = hosts[host].get("targets", {}) if isinstance(hosts[host], dict) else {}
    if target not in targets:
        raise DownloadError(
            f"{where}: nothing published for host {host} target {target!r} "
            f"(published: {', '.join(sorted(targets)) or 'none'})"
        )
    t = targets[target]
    builds = [b for b in t.get("builds", []) if isinstance(b, dict)]
    if build == "latest":
        pointer_key = layout.latest(site, host, target)
        if store.head(pointer_key) is not None:
            try:
                pointer = json.loads(_small(store, pointer_key))
            except ValueError as e:
                raise DownloadError(f"{store.url}/{pointer_key}: not valid JSON ({e})") from None
            wanted = pointer.get("build_id") if isinstance(pointer, dict) else None
            source = pointer_key
        else:
            wanted, source = t.get("latest"), layout.site_index(site)
        if not isinstance(wanted, str):
            raise DownloadError(f"{store.url}/{source}: no latest build ID")
    else:
        wanted = build
    layout.check_name(wanted, "build ID")
    entry = next((b for b in builds if b.get("build_id") == wanted), None)
    if entry is None:
        known = ", ".join(str(b.get("build_id")) for b in builds[:5]) or "none"
        raise DownloadError(f"{where}: no build {wanted!r} for {host}/{target} (newest: {known})")
    files = tuple(_file_entry(site, host, target, wanted, f, where) for f in entry.get("files", []))
    if not files:
        raise DownloadError(f"{where}: build {wanted} lists no files")
    if len({f.name for f in files}) != len(files):
        raise DownloadError(f"{where}: build {wanted} lists a file name twice")
    sums = entry.get("sums")
    if sums is not None:
        sums = _expect_key(sums, layout.sums(site, host, target, wanted), "SHA256SUMS")
    sums_sig = entry.get("sums_signature")
    if sums_sig is not None:
        sums_sig = _expect_key(sums_sig, layout.sums_signature(site, host, target, wanted), "SHA256SUMS.sig")
    meta = entry.get("meta")
    if meta is not None:
        meta = _expect_key(meta, layout.meta(site, host, target, wanted), "meta.json")
    return Build(site, host, target, wanted, entry, files, sums, sums_sig, meta)


def parse_sums(data: bytes, source: str) -> dict[str, str]:
    """``sha256sum`` lines → {name: sha256}."""
    out: dict[str, str] = {}
    for n, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        m = _SUMS_LINE.match(line)
        if not m:
            raise VerificationError(f"{source}:{n}: not a sha256sum line")
        name = m.group(2)
        if name in out:
            raise VerificationError(f"{source}:{n}: {name} listed twice")
        out[name] = m.group(1).lower()
    return out


def _reuse(path: Path, f: FileEntry, signature: bytes | None, keyring: gpg.Keyring | None) -> bool:
    """An already downloaded file of the right size and SHA-256 (and signature) is kept as it is."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(st.st_mode) or st.st_size != f.size:
        return False
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    if h.hexdigest() != f.sha256:
        return False
    if signature is not None and keyring is not None:
        try:
            gpg.verify_detached(path, signature, keyring, what=f.name)
        except VerificationError as e:
            LOG.warning("%s: %s; downloading it again", path, e.message)
            return False
    return True


def _with_keyring(keyring: Path | None, fn: Callable[[gpg.Keyring | None], None]) -> None:
    with trusted_keyring(keyring) as trusted:
        fn(trusted)


@contextlib.contextmanager
def trusted_keyring(keyring: Path | None) -> Iterator[gpg.Keyring | None]:
    """A gpgv keyring with only the keys in ``keyring`` (a key file or a directory of them)."""
    if keyring is None:
        yield None
        return
    yield gpg.build_keyring(pinned=[], extra=[Path(keyring)])


@dataclass(frozen=True)
class _Sums:
    """The build's SHA256SUMS (and signature) as fetched, and the checksums it lists."""

    data: bytes | None
    signature: bytes | None
    checked: dict[str, str]

    def verify(self, trusted: gpg.Keyring | None, what: str) -> None:
        if self.data is not None and self.signature is not None and trusted is not None:
            with tempfile.TemporaryDirectory(prefix="coreos-infra-sums-") as tmp:
                p = Path(tmp) / "SHA256SUMS"
                p.write_bytes(self.data)
                gpg.verify_detached(p, self.signature, trusted, what=what)


def _require_trust(b: Build, keyring: Path | None, allow_unsigned: bool) -> None:
    """Refuse an unsigned build or a missing keyring unless ``allow_unsigned``."""
    who = f"{b.site}/{b.host}/{b.target}"
    if b.sums_signature is None and not allow_unsigned:
        raise VerificationError(
            f"build {b.build_id} of {who} is not signed (no SHA256SUMS.sig)",
            hint="pass --allow-unsigned to accept it (only its SHA-256 from the index is checked then)",
        )
    if keyring is None and not allow_unsigned:
        raise VerificationError(
            "no trusted keyring to verify the download with",
            hint=f"pass --keyring with the site's public key (obtained out of band, e.g. {b.site}.asc from "
            "the publisher; never only the copy in the same store) or set publish.keyring in the site file",
        )
    if keyring is None:
        LOG.warning("no trusted keyring: NOT verifying signatures (--allow-unsigned)")


def _wanted(b: Build, names: Sequence[str] | None) -> list[FileEntry]:
    wanted = list(b.files) if names is None else [f for f in b.files if f.name in names]
    if names is not None and len(wanted) != len(set(names)):
        missing = sorted(set(names) - {f.name for f in b.files})
        raise DownloadError(f"build {b.build_id} has no file(s) {', '.join(missing)}")
    return wanted


def _sums(store: Store, b: Build, wanted: list[FileEntry], signed: bool) -> _Sums:
    """SHA256SUMS of the build; every wanted file's SHA-256 in the index must be the one it lists."""
    data = _small(store, b.sums) if b.sums else None
    sig = _small(store, b.sums_signature) if b.sums_signature else None
    checked = parse_sums(data, f"{store.url}/{b.sums}") if data is not None else {}
    for f in wanted:
        if (signed or data is not None) and checked.get(f.name) != f.sha256:
            listed = checked.get(f.name) or "nothing"
            raise VerificationError(f"{f.key}: the index says SHA-256 {f.sha256}, SHA256SUMS says {listed}")
    return _Sums(data, sig, checked)


def _get_file(store: Store, f: FileEntry, dest: Path, sig: bytes | None, trusted: gpg.Keyring | None, *,
              mode: int, show_progress: bool, gate: Callable[[], None],
              result: Downloaded) -> None:  # fmt: skip
    """One file into ``result``: kept if already there and verified, else downloaded (once more from
    byte 0 when a partial file from an earlier run turns out to be what was wrong). ``gate()`` waits for
    the SHA256SUMS check and raises its error: nothing is kept before it passed."""
    final = dest / f.name
    if _reuse(final, f, sig, trusted):
        gate()
        os.chmod(final, mode)
        result.reused.append(f.name)
        result.files[f.name] = final
        return

    def resumed(at: int) -> None:
        result.resumed[f.name] = at

    def fetch() -> Path:
        return fetch_file(store, f, dest, signature=sig, keyring=trusted, mode=mode,
                          show_progress=show_progress, before_rename=gate,
                          on_resume=resumed)  # fmt: skip

    try:
        result.files[f.name] = fetch()
    except VerificationError as e:
        if f.name not in result.resumed:
            raise
        gate()  # a SHA256SUMS that does not verify is the error to report
        LOG.warning("%s: %s; downloading it again from the start", f.name, e.message)
        del result.resumed[f.name]
        result.files[f.name] = fetch()


def _write_extras(store: Store, b: Build, dest: Path, sums: _Sums, mode: int, durable: bool) -> None:
    """meta.json (covered by SHA256SUMS: it has the uncompressed SHA-256 of images), SHA256SUMS(.sig)."""
    if b.meta and sums.data is not None:
        meta = _small(store, b.meta)
        if hashlib.sha256(meta).hexdigest() != sums.checked.get("meta.json"):
            raise VerificationError(f"{b.meta}: does not match SHA256SUMS")
        write_atomic(dest / "meta.json", meta, mode=mode, durable=durable)
    if sums.data is not None:
        write_atomic(dest / "SHA256SUMS", sums.data, durable=durable)
        if sums.signature is not None:
            write_atomic(dest / "SHA256SUMS.sig", sums.signature, durable=durable)


def download_build(
    store: Store,
    site: str,
    host: str,
    target: str,
    *,
    dest: Path,
    build: str = "latest",
    keyring: Path | None = None,
    allow_unsigned: bool = False,
    names: Sequence[str] | None = None,
    per_build_dir: bool = False,
    verify_each: bool = False,
    show_progress: bool = True,
    resolved: Build | None = None,
) -> Downloaded:
    """Download (with resume) and verify a published build into ``dest``; see the module docstring.

    ``keyring`` holds the trusted site key(s); it is required unless ``allow_unsigned``, and even then a
    signature that is present is checked when a keyring is given. ``names`` limits the files fetched.
    ``per_build_dir`` puts the files in ``dest/<site>/<host>/<target>/<build ID>/``. ``resolved`` is a
    build :func:`resolve_build` already found (no second look-up). ``verify_each`` also checks every
    file's own detached signature (streamed while downloading).
    """
    b = resolved or resolve_build(store, site, host, target, build)
    _require_trust(b, keyring, allow_unsigned)
    wanted = _wanted(b, names)
    dest = Path(dest) / b.site / b.host / b.target / b.build_id if per_build_dir else Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    mode = 0o600 if b.contains_secrets else 0o644
    durable = not boot_id()  # as for the files themselves (see coreos_infra.publish.rangefetch)
    result = Downloaded(b, dest, signed=b.sums_signature is not None and keyring is not None)
    sums = _sums(store, b, wanted, result.signed)
    with contextlib.ExitStack() as stack:
        if verify_each:  # the keyring is needed while downloading: build it and check SHA256SUMS first
            trusted = stack.enter_context(trusted_keyring(keyring))
            sums.verify(trusted, f"{b.sums}")
            gate = stack.enter_context(Background(lambda: None))
        else:  # the keyring and the SHA256SUMS signature are checked while the files download
            trusted = None
            gate = stack.enter_context(
                Background(lambda: _with_keyring(keyring, lambda kr: sums.verify(kr, f"{b.sums}")))
            )
        signatures: dict[str, bytes | None] = {}
        for f in wanted:
            if f.signature is None and result.signed:
                raise VerificationError(f"{f.key}: the build is signed but this file has no signature")
            signatures[f.name] = _small(store, f.signature) if f.signature and trusted is not None else None
        for f in wanted:
            sig = signatures[f.name]
            _get_file(store, f, dest, sig, trusted, mode=mode, show_progress=show_progress, gate=gate,
                      result=result)  # fmt: skip
            if sig is not None:
                write_atomic(dest / layout.signature(f.name), sig, durable=durable)
        gate()
        _write_extras(store, b, dest, sums, mode, durable)
    return result


@contextlib.contextmanager
def keyring_for(root: Path, site: str, keyring: Path | None) -> Iterator[Path | None]:
    """The trusted keys for downloads of ``site``: ``keyring``, else ``publish.keyring`` of the site file,
    else, on the machine that published with the demo's throwaway key, that local key (with a warning).

    Never the key in the store: a store that can replace images can replace its key too.
    """
    if keyring is not None:
        yield Path(keyring)
        return
    from coreos_infra.publish.settings import SigningSettings, demo_key_dir, site_settings

    configured = site_settings(root, site).keyring
    if configured is not None:
        yield configured
        return
    home = demo_key_dir(root, site) / "gnupg"
    if not home.is_dir():
        yield None
        return
    from coreos_infra.publish.sign import site_signer

    signer = site_signer(root, site, SigningSettings())
    try:
        with tempfile.TemporaryDirectory(prefix="coreos-infra-demo-key-") as tmp:
            path = Path(tmp) / f"{site}.asc"
            path.write_bytes(signer.public_key())
            LOG.warning(
                "trusting the demo's THROWAWAY signing key of site %s (%s, from %s): set publish.keyring "
                "in the site file or pass --keyring for real sites",
                site,
                signer.fingerprint,
                home,
            )
            yield path
    finally:
        signer.close()
