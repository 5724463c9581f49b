"""OpenPGP signatures with the real GnuPG tools: trusted keyrings, ``gpgv`` verification, throwaway keys.

Verification uses ``gpgv`` against a binary keyring that holds only the keys we trust: the Fedora keys
shipped in :mod:`coreos_infra.keys` (each checked against its pinned fingerprint) plus any keys the user
adds for rotation. ``gpgv`` reads every byte of the file it checks, and we accept its answer only when
every signature in the ``.sig`` is a good signature over a binary document by a trusted primary key.
Streaming downloads use :func:`stream_verifier`: the same verdict from a :mod:`hashlib` digest
(:mod:`coreos_infra.openpgp`) for the keys GnuPG lists as valid signers of the keyring, ``gpgv`` otherwise.

The throwaway-key helpers (:func:`throwaway_key`, :func:`generate_key`, :func:`sign_detached`) make the
signed test mirrors; each key lives in its own temporary ``GNUPGHOME`` whose agent is stopped afterwards.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import os
import queue
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from coreos_infra import openpgp
from coreos_infra.errors import CoreosInfraError, InputError, Location, VerificationError
from coreos_infra.fsutil import signals_held, write_atomic
from coreos_infra.keys import PinnedKey, pinned_keys
from coreos_infra.log import LOG
from coreos_infra.run import find_binary, run, spawn

KEY_SUFFIXES = (".asc", ".gpg", ".pgp", ".pub", ".key")
THROWAWAY_UID = "coreos-infra throwaway test key <throwaway@coreos-infra.invalid>"

# gpgv status keywords that mean a signature is not acceptable, whatever else was printed.
_UNUSABLE_VALIDITY = ("r", "e", "i", "d", "n")  # revoked, expired, invalid, disabled, never valid
_BAD_STATUS = ("BADSIG", "ERRSIG", "NO_PUBKEY", "EXPSIG", "EXPKEYSIG", "REVKEYSIG", "BADARMOR", "NODATA")


@dataclass(frozen=True)
class Keyring:
    """A binary OpenPGP keyring for ``gpgv`` and the primary fingerprints it holds.

    ``signers`` maps every (sub)key that GnuPG found valid for signing (self-signature or binding
    checked, not expired or revoked) to its primary fingerprint: what :mod:`coreos_infra.openpgp` may
    accept a signature from without ``gpgv``.
    """

    path: Path | None  # where it was written, if anywhere (``gpgv`` calls write ``data`` where they run)
    fingerprints: frozenset[str]
    signers: Mapping[str, str] = field(default_factory=dict)
    data: bytes = b""  # the binary keyring


@dataclass(frozen=True)
class SignatureCheck:
    """What a successful verification found."""

    primary_fingerprint: str  # the trusted primary key
    signing_fingerprint: str  # the (sub)key that made the signature


@contextlib.contextmanager
def gnupg_home(parent: Path | None = None) -> Iterator[Path]:
    """A fresh 0700 GnuPG home directory; any agent started in it is stopped and the directory removed."""
    home: Path | None = None
    try:
        with signals_held():
            home = Path(tempfile.mkdtemp(prefix="gnupg-", dir=parent))
        os.chmod(home, 0o700)
        yield home
    finally:
        if home is not None:
            stop_agent(home)
            shutil.rmtree(home, ignore_errors=True)


def stop_agent(home: Path) -> None:
    """Stop the gpg-agent (and other daemons) of ``home`` if one runs."""
    if (home / "S.gpg-agent").exists() or any(home.glob("S.*")):
        gpgconf = shutil.which("gpgconf")
        if gpgconf:
            run([gpgconf, "--homedir", home, "--kill", "all"], check=False, capture=True, timeout=30)


# The agent's sockets live in its home; it fails to start well before the 107 bytes of a Unix socket
# address (seen with an 87-byte home), so longer homes get a short link.
AGENT_HOME_MAX = 60


@contextlib.contextmanager
def agent_home(home: Path) -> Iterator[Path]:
    """``home``, or for the call a short private symlink to it when ``home`` is too deep for gpg-agent's
    sockets (a deep checkout, pytest's temporary directories), where the agent fails with "General
    error". The agent started through the link is stopped before the link goes."""
    if len(str(home)) <= AGENT_HOME_MAX:
        yield home
        return
    with signals_held():
        short = Path(tempfile.mkdtemp(prefix="cigpg-"))
    link = short / "h"
    try:
        link.symlink_to(Path(home).resolve())
        yield link
    finally:
        stop_agent(link)
        shutil.rmtree(short, ignore_errors=True)


def _gpg(
    home: Path, *args: str | os.PathLike[str], input: bytes | None = None, agent: bool = False
) -> bytes:
    """Run gpg in ``home``; the agent (needed only for secret keys) is started only when ``agent``."""
    gpg = find_binary("gpg", reason="handle OpenPGP keys and signatures")
    with agent_home(home) if agent else contextlib.nullcontext(home) as where:
        result = run(
            [gpg, "--batch", "--no-tty", "--quiet", "--homedir", where,
             *([] if agent else ["--no-autostart"]), *args],
            capture=True,
            input=input,
            timeout=120,
        )  # fmt: skip
    return result.stdout or b""


def _primary_fingerprints(colons: bytes) -> list[str]:
    """Primary key fingerprints from ``--with-colons`` output (the ``fpr`` line right after ``pub``)."""
    fprs = []
    expect = False
    for line in colons.decode(errors="replace").splitlines():
        fields = line.split(":")
        if fields[0] in ("pub", "sec"):
            expect = True
        elif fields[0] == "fpr" and expect:
            fprs.append(fields[9].upper())
            expect = False
        elif fields[0] in ("sub", "ssb"):
            expect = False
    return fprs


def key_fingerprints(path: Path) -> list[str]:
    """Primary fingerprints of the keys in a key file (armored or binary), without trusting anything."""
    with gnupg_home() as home:
        try:
            return _gpg_fingerprints(home, path)
        except CoreosInfraError as e:
            raise InputError(f"not an OpenPGP key file: {e}", Location(file=str(path))) from None


def key_files(location: Path) -> list[Path]:
    """The key files in ``location``: the file itself, or the ``*.asc/*.gpg/*.pgp/*.pub/*.key`` in a dir."""
    if location.is_dir():
        files = sorted(p for p in location.iterdir() if p.is_file() and p.suffix in KEY_SUFFIXES)
        if not files:
            raise InputError(
                f"no key files ({', '.join(KEY_SUFFIXES)}) in this keyring directory",
                Location(file=str(location)),
            )
        return files
    if not location.is_file():
        raise InputError("keyring file or directory does not exist", Location(file=str(location)))
    return [location]


def _listed_fingerprints(path: Path) -> list[str] | None:
    """The v4 primary fingerprints in a key file, read without GnuPG; None when this simple reader cannot
    tell (anything but one armored block or binary packets, a key other than v4): then GnuPG is asked."""
    try:
        data = path.read_bytes()
        if data.count(b"-----BEGIN PGP") > 1:
            return None  # GnuPG imports every block; this reader would see only the first
        if data.lstrip().startswith(b"-----BEGIN PGP"):
            data = _dearmor(data, "PUBLIC KEY BLOCK")
        keys = [body for tag, body in openpgp.packets(data) if tag == 6]
    except (OSError, VerificationError, openpgp.Unsupported, IndexError):
        return None
    if not keys or any(body[:1] != b"\x04" for body in keys):
        return None
    return [openpgp.v4_fingerprint(body) for body in keys]


def _gpg_fingerprints(home: Path, path: Path) -> list[str]:
    """The primary fingerprints GnuPG finds in a key file; CoreosInfraError when it cannot read it."""
    out = _gpg(home, "--with-colons", "--import-options", "show-only", "--import", path)
    return _primary_fingerprints(out)


def _check_pinned(home: Path, pin: PinnedKey) -> None:
    if _listed_fingerprints(pin.path) == [pin.fingerprint]:
        return  # what GnuPG would list; its import below still checks the self-signature
    try:
        found = _gpg_fingerprints(home, pin.path)
    except CoreosInfraError as e:
        raise VerificationError(f"{pin.path}: cannot read pinned key: {e}") from None
    if found != [pin.fingerprint]:
        raise VerificationError(
            f"{pin.path}: pinned key file holds {', '.join(found) or 'no key'}, "
            f"expected exactly {pin.fingerprint}",
            hint="the shipped key file is damaged or was replaced; reinstall coreos-infra",
        )


def _check_extra(home: Path, path: Path) -> None:
    if _listed_fingerprints(path):
        return
    try:
        found = _gpg_fingerprints(home, path)
    except CoreosInfraError:
        found = []
    if not found:
        raise InputError(
            "not an OpenPGP public key file (gpg found no key in it)",
            Location(file=str(path)),
            hint="--keyring takes a key file (.asc, .gpg, .pgp, .pub, .key; e.g. from "
            "`gpg --export --armor KEYID`) or a directory of them",
        )


def build_keyring(
    dest: Path | None = None,
    *,
    pinned: Sequence[PinnedKey] | None = None,
    extra: Sequence[Path] = (),
) -> Keyring:
    """A binary keyring for ``gpgv`` holding the ``pinned`` and ``extra`` keys, also written to ``dest``
    when one is given.

    ``pinned`` defaults to the Fedora keys shipped in :mod:`coreos_infra.keys`; each must hold exactly
    the primary key its fingerprint names, with a valid self-signature. ``extra`` are user key files
    (or directories of them) trusted as they are: this is how a user adds a new Fedora key before the
    project ships it, or the key of a private mirror. Three GnuPG calls (import, list, export): what
    each file holds is read here first, and GnuPG is asked about a file alone only when that reading
    does not settle it, so a bad file is still named by itself.
    """
    pins = pinned_keys() if pinned is None else list(pinned)
    extra_files = [f for location in extra for f in key_files(Path(location))]
    with gnupg_home() as home:
        for pin in pins:
            _check_pinned(home, pin)
        for f in extra_files:  # one at a time, so that a bad file is named alone
            _check_extra(home, f)
        files = [p.path for p in pins] + extra_files
        if files:
            try:
                _gpg(home, "--import-options", "import-minimal", "--import", *files)
            except CoreosInfraError as e:
                raise InputError(
                    f"cannot import keys: {e}", Location(file=", ".join(map(str, files)))
                ) from None
        listing = _gpg(home, "--with-colons", "--fixed-list-mode", "--list-keys")
        fprs = _primary_fingerprints(listing)
        missing = [p.fingerprint for p in pins if p.fingerprint not in fprs]
        if missing:
            raise VerificationError(f"pinned keys without a valid self-signature: {', '.join(missing)}")
        data = _gpg(home, "--export", *fprs) if fprs else b""
    if dest is not None:
        write_atomic(dest, data, durable=False)  # derived each run; a damaged one fails closed in gpgv
    signers = {k: v for k, v in _signing_keys(listing).items() if v in fprs}
    return Keyring(dest, frozenset(fprs), signers, data)


def _signing_keys(colons: bytes) -> dict[str, str]:
    """Signing (sub)key fingerprint -> primary fingerprint, for the keys GnuPG lists as usable to sign.

    A key counts when its validity is not revoked/expired/invalid/disabled, its own capabilities include
    ``s``, and its primary key is not revoked/expired/invalid/disabled either.
    """
    out: dict[str, str] = {}
    primary, primary_ok = "", False
    pending: tuple[bool, bool] | None = None  # (is primary, usable to sign) of the key whose fpr comes next
    for line in colons.decode(errors="replace").splitlines():
        f = line.split(":")
        if f[0] in ("pub", "sub") and len(f) > 11:
            valid = f[1] not in _UNUSABLE_VALIDITY
            if f[0] == "pub":
                primary_ok = valid
            pending = (f[0] == "pub", valid and "s" in f[11])
        elif f[0] == "fpr" and pending is not None and len(f) > 9:
            is_primary, usable = pending
            if is_primary:
                primary = f[9].upper()
            if usable and primary_ok:
                out[f[9].upper()] = primary
            pending = None
    return out


def _dearmor_signature(data: bytes) -> bytes:
    return _dearmor(data, "SIGNATURE")


def _dearmor(data: bytes, block: str) -> bytes:
    """The binary content of the first ``-----BEGIN PGP <block>-----`` armor block in ``data``."""
    text = data.decode("ascii", errors="replace")
    lines = text.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == f"-----BEGIN PGP {block}-----")
    except StopIteration:
        raise VerificationError(f"armored {block.lower()} has no BEGIN PGP {block} line") from None
    i = start + 1
    while i < len(lines) and lines[i].strip():  # armor headers end at the first empty line
        i += 1
    body = []
    for line in lines[i + 1 :]:
        line = line.strip()
        if line.startswith("=") or line.startswith("-----END"):
            break
        body.append(line)
    try:
        return base64.b64decode("".join(body), validate=True)
    except ValueError:
        raise VerificationError(f"armored {block.lower()} is not valid base64") from None


def check_signature_packets(data: bytes) -> int:
    """Check that ``data`` (binary or armored) consists only of OpenPGP signature packets; return the count.

    A detached ``.sig`` must not smuggle a literal-data packet (a signed message that would verify
    without looking at the downloaded file) or anything else.
    """
    if data.lstrip().startswith(b"-----BEGIN PGP"):
        data = _dearmor_signature(data)
    pos = count = 0
    while pos < len(data):
        b0 = data[pos]
        if not b0 & 0x80:
            raise VerificationError(f"signature file: not an OpenPGP packet at byte {pos}")
        tag = b0 & 0x3F if b0 & 0x40 else (b0 >> 2) & 0x0F
        if tag != 2:
            raise VerificationError(
                f"signature file: unexpected OpenPGP packet type {tag} (only signatures)"
            )
        if b0 & 0x40:  # new format
            if pos + 1 >= len(data):
                raise VerificationError("signature file: truncated packet header")
            o1 = data[pos + 1]
            if o1 < 192:
                length, hdr = o1, 2
            elif o1 < 224:
                if pos + 2 >= len(data):
                    raise VerificationError("signature file: truncated packet header")
                length, hdr = ((o1 - 192) << 8) + data[pos + 2] + 192, 3
            elif o1 == 255:
                length, hdr = int.from_bytes(data[pos + 2 : pos + 6], "big"), 6
            else:
                raise VerificationError("signature file: partial-length packets are not allowed here")
        else:
            ltype = b0 & 0x03
            if ltype == 3:
                raise VerificationError("signature file: indeterminate-length packet")
            n = 1 << ltype
            length, hdr = int.from_bytes(data[pos + 1 : pos + 1 + n], "big"), 1 + n
        pos += hdr + length
        if pos > len(data):
            raise VerificationError("signature file: truncated signature packet")
        count += 1
    if count == 0:
        raise VerificationError("signature file is empty")
    return count


def _gpgv_argv(home: Path, keyring: Keyring, sig_path: Path, data: Path | str) -> list[str | Path]:
    """``gpgv`` in ``home`` checking ``sig_path`` over ``data`` with ``keyring`` (written into ``home``)."""
    gpgv = find_binary("gpgv", reason="verify OpenPGP signatures")
    trusted = home / "trusted.gpg"
    trusted.write_bytes(keyring.data)
    return [gpgv, "--homedir", home, "--keyring", trusted.resolve(), "--status-fd", "1", sig_path, data]


def _signature_count(signature: bytes, name: str) -> int:
    try:
        return check_signature_packets(signature)
    except VerificationError as e:
        raise VerificationError(f"{name}: bad signature: {e.message}") from None


def verify_detached(
    data: Path, signature: bytes, keyring: Keyring, *, what: str | None = None
) -> SignatureCheck:
    """Verify ``signature`` (a detached ``.sig``) over every byte of the file ``data`` with ``gpgv``.

    Raises :class:`VerificationError` naming the file unless every signature in it is good, made over a
    binary document by a key whose primary fingerprint is in ``keyring``.
    """
    name = what or str(data)
    count = _signature_count(signature, name)
    with gnupg_home() as home:
        sig_path = home / "detached.sig"
        sig_path.write_bytes(signature)
        result = run(_gpgv_argv(home, keyring, sig_path, data), check=False, capture=True, timeout=3600)
    return _judge(result.stdout or b"", result.stderr or b"", result.returncode, count, keyring, name)


class StreamVerifier:
    """:func:`verify_detached` over bytes as they arrive: ``gpgv`` reads them from a pipe.

    Use as a context manager; feed every byte with :meth:`update` (:meth:`restart` when the data starts
    over), then :meth:`finish` gives the same answer :func:`verify_detached` gives for the whole file.
    A feeder thread writes to ``gpgv`` (up to ``QUEUED`` chunks behind), so the caller's download and
    ``gpgv``'s hashing run side by side; ``gpgv``'s output goes to files, so it never blocks on a pipe.
    """

    QUEUED = 8

    def __init__(self, signature: bytes, keyring: Keyring, *, what: str) -> None:
        self.name = what
        self.keyring = keyring
        self.count = _signature_count(signature, what)
        self._stack = contextlib.ExitStack()
        self._proc: subprocess.Popen[bytes] | None = None
        self._feeder: threading.Thread | None = None
        self._queue: queue.Queue[bytes | None] = queue.Queue(self.QUEUED)
        try:
            self.home = self._stack.enter_context(gnupg_home())
            self.sig_path = self.home / "detached.sig"
            self.sig_path.write_bytes(signature)
            self._start()
        except BaseException:
            self.close()
            raise

    def _start(self) -> None:
        out = self._stack.enter_context(open(self.home / "status", "w+b"))
        err = self._stack.enter_context(open(self.home / "stderr", "w+b"))
        argv = _gpgv_argv(self.home, self.keyring, self.sig_path, "-")
        self._out, self._err = out, err
        proc = self._stack.enter_context(
            spawn(argv, stdin=subprocess.PIPE, stdout=out, stderr=err, env={"LC_ALL": "C.UTF-8"})
        )
        assert proc.stdin is not None
        with contextlib.suppress(OSError, AttributeError):
            fcntl.fcntl(proc.stdin.fileno(), fcntl.F_SETPIPE_SZ, 1 << 20)
        self._proc = proc
        self._queue = queue.Queue(self.QUEUED)
        self._feeder = threading.Thread(target=_feed, args=(proc.stdin, self._queue), daemon=True)
        self._feeder.start()

    def _stop_feeder(self) -> None:
        if self._feeder is not None:
            self._queue.put(None)
            self._feeder.join()
            self._feeder = None

    def update(self, data: bytes) -> None:
        self._queue.put(data)

    def restart(self) -> None:
        """Throw away what was fed so far (the download started over from its first byte)."""
        if self._proc is not None:
            self._proc.kill()
            self._stop_feeder()
            self._proc.wait()
        self._start()

    def finish(self) -> SignatureCheck:
        assert self._proc is not None
        self._stop_feeder()
        returncode = self._proc.wait(timeout=3600)
        self._out.seek(0)
        self._err.seek(0)
        return _judge(self._out.read(), self._err.read(), returncode, self.count, self.keyring, self.name)

    def close(self) -> None:
        if self._feeder is not None and self._proc is not None:
            self._proc.kill()
        self._stop_feeder()
        self._stack.close()

    def __enter__(self) -> StreamVerifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _feed(pipe: IO[bytes], chunks: queue.Queue[bytes | None]) -> None:
    """Write ``chunks`` to ``pipe`` until ``None``, then close it; if the reader is gone, just drain."""
    broken = False
    while (chunk := chunks.get()) is not None:
        if not broken:
            try:
                pipe.write(chunk)
            except (BrokenPipeError, ValueError, OSError):
                broken = True  # gpgv gave up early (e.g. a bad signature packet); its status says why
    with contextlib.suppress(OSError, ValueError):
        pipe.close()


class DigestStreamVerifier:
    """:class:`StreamVerifier`'s interface over :class:`coreos_infra.openpgp.DigestVerifier` (no gpgv)."""

    def __init__(self, inner: openpgp.DigestVerifier) -> None:
        self.inner = inner

    def update(self, data: bytes) -> None:
        self.inner.update(data)

    def shares_sha256(self) -> bool:
        return self.inner.shares_sha256()

    def adopt_sha256(self, hasher: Any) -> None:
        self.inner.adopt_sha256(hasher)

    def restart(self) -> None:
        self.inner.restart()

    def finish(self) -> SignatureCheck:
        primary, signing = self.inner.finish()
        return SignatureCheck(primary, signing)

    def close(self) -> None:
        pass

    def __enter__(self) -> DigestStreamVerifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


Verifier = StreamVerifier | DigestStreamVerifier


def stream_verifier(signature: bytes, keyring: Keyring, *, what: str) -> Verifier:
    """A verifier to feed the bytes of a download as they arrive; ``finish()`` gives the verdict.

    Signatures :mod:`coreos_infra.openpgp` can check (v4, RSA/Ed25519/ECDSA, by a signing key GnuPG
    validated when the keyring was built) are checked over a :mod:`hashlib` digest; anything else by
    ``gpgv`` reading the same bytes from a pipe. Both give the same verdicts (tests/test_openpgp.py).
    """
    _signature_count(signature, what)
    if keyring.signers:
        raw = (
            _dearmor_signature(signature) if signature.lstrip().startswith(b"-----BEGIN PGP") else signature
        )
        try:
            inner = openpgp.DigestVerifier(raw, keyring.data, dict(keyring.signers), what=what)
        except openpgp.Unsupported as e:
            LOG.debug("%s: checking with gpgv (%s)", what, e)
        else:
            return DigestStreamVerifier(inner)
    return StreamVerifier(signature, keyring, what=what)


def _judge(stdout: bytes, stderr_bytes: bytes, returncode: int, count: int, keyring: Keyring,
           name: str) -> SignatureCheck:  # fmt: skip
    """The verdict on one ``gpgv`` run from its status lines (see the module docstring)."""
    status = [
        line[len("[GNUPG:] ") :].split()
        for line in stdout.decode(errors="replace").splitlines()
        if line.startswith("[GNUPG:] ")
    ]
    keywords = [s[0] for s in status if s]
    bad = [s for s in status if s and s[0] in _BAD_STATUS]
    valid = [s for s in status if s and s[0] == "VALIDSIG"]
    if bad or returncode != 0 or not valid:
        if any(s[0] == "NO_PUBKEY" or (s[0] == "ERRSIG" and len(s) > 6 and s[6] == "9") for s in bad):
            keyid = next((s[1] for s in bad if len(s) > 1), "?")
            raise VerificationError(
                f"{name}: signed by key {keyid}, which is not a trusted key",
                hint="if Fedora rotated its signing key, add the new key with --keyring (see README, "
                "'Trusted keys')",
            )
        if any(s[0] == "BADSIG" for s in bad):
            raise VerificationError(f"{name}: BAD signature: the file does not match its signature")
        stderr = stderr_bytes.decode(errors="replace").strip()
        raise VerificationError(f"{name}: signature verification failed: {stderr or ' '.join(keywords)}")
    if len(valid) != keywords.count("NEWSIG") or len(valid) != count:
        raise VerificationError(f"{name}: some signatures in the .sig did not verify")
    primary = signing = ""
    for s in valid:
        signing = s[1].upper()
        primary = (s[10] if len(s) > 10 else s[1]).upper()
        sig_class = s[9] if len(s) > 9 else "00"
        if sig_class != "00":
            raise VerificationError(
                f"{name}: signature of class {sig_class}, expected a binary document (00)"
            )
        if primary not in keyring.fingerprints:
            raise VerificationError(f"{name}: signed by {primary}, which is not a trusted key")
    return SignatureCheck(primary, signing)


# --- throwaway keys for test mirrors -------------------------------------------------------------------


@dataclass(frozen=True)
class SigningKey:
    """A secret key in its own GnuPG home, able to make detached signatures."""

    home: Path
    fingerprint: str

    def sign(self, path: Path, dest: Path | None = None) -> Path:
        return sign_detached(self.home, self.fingerprint, path, dest=dest)

    def public_key(self, *, armor: bool = True) -> bytes:
        return export_public_key(self.home, self.fingerprint, armor=armor)


def generate_key(home: Path, *, uid: str = THROWAWAY_UID) -> str:
    """Generate an unprotected ed25519 signing key in ``home`` (created 0700) and return its fingerprint."""
    home.mkdir(parents=True, exist_ok=True)
    os.chmod(home, 0o700)
    _gpg(
        home, "--pinentry-mode", "loopback", "--passphrase", "",
        "--quick-generate-key", uid, "ed25519", "sign", "never", agent=True,
    )  # fmt: skip
    fprs = _primary_fingerprints(_gpg(home, "--with-colons", "--list-secret-keys", uid, agent=True))
    if not fprs:
        raise CoreosInfraError(f"gpg did not create a key in {home}")
    return fprs[-1]


def export_public_key(home: Path, fingerprint: str, *, armor: bool = True) -> bytes:
    """The public key ``fingerprint`` from ``home``, ASCII-armored unless ``armor=False``."""
    data = _gpg(home, *(["--armor"] if armor else []), "--export", fingerprint)
    if not data:
        raise CoreosInfraError(f"no public key {fingerprint} in {home}")
    return data


def sign_detached(home: Path, fingerprint: str, path: Path, *, dest: Path | None = None) -> Path:
    """Write a binary detached signature of ``path`` (default ``<path>.sig``) atomically; return its path.

    The digest is SHA-256, as in Fedora's signatures: a verifier hashes the file once for its SHA-256 and
    its signature (:class:`coreos_infra.transport` hands the state over)."""
    dest = dest or path.with_name(path.name + ".sig")
    sig = _gpg(
        home, "--pinentry-mode", "loopback", "--passphrase", "", "--local-user", fingerprint,
        "--digest-algo", "SHA256", "--detach-sign", "--output", "-", path, agent=True,
    )  # fmt: skip
    write_atomic(dest, sig)
    return dest


@contextlib.contextmanager
def throwaway_key(parent: Path | None = None, *, uid: str = THROWAWAY_UID) -> Iterator[SigningKey]:
    """A fresh signing key for the duration of the block (its home and agent are removed afterwards)."""
    with gnupg_home(parent) as home:
        yield SigningKey(home, generate_key(home, uid=uid))
