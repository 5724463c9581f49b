"""Signing what is published: detached OpenPGP signatures with the site key (real gpg).

The site key is a secret key in a GnuPG home (``publish.signing_key`` in the site file, or
``--gnupg-home``/``--key-id``). Without one, the demo uses a throwaway key that it generates on first use
under ``artifacts/keys/<site>/`` and says so. Signatures are cached by (key fingerprint, sha256 of the
signed bytes) under ``artifacts/keys/<site>/sig-cache/`` so re-publishing an unchanged build runs no gpg.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from coreos_infra import gpg
from coreos_infra.errors import CoreosInfraError
from coreos_infra.fsutil import write_atomic
from coreos_infra.publish.settings import SigningSettings, demo_key_dir
from coreos_infra.run import find_binary, run

LOG = logging.getLogger("coreos_infra.publish")
_FPR = re.compile(r"^fpr:(?:[^:]*:){8}([0-9A-F]{40,64}):", re.MULTILINE)


@dataclass
class Signer:
    home: Path
    fingerprint: str
    cache_dir: Path
    used_agent: bool = False  # whether gpg signed anything (and so started an agent) in this run

    def _cached(self, sha256: str) -> Path:
        return self.cache_dir / self.fingerprint / f"{sha256}.sig"

    def sign_file(self, path: Path, sha256: str) -> bytes:
        """A binary detached signature of ``path`` (whose SHA-256 is ``sha256``), from the cache if there."""
        cached = self._cached(sha256)
        if cached.is_file():
            return cached.read_bytes()
        cached.parent.mkdir(parents=True, exist_ok=True)
        self.used_agent = True
        gpg.sign_detached(self.home, self.fingerprint, path, dest=cached)
        return cached.read_bytes()

    def sign_bytes(self, data: bytes, name: str) -> bytes:
        sha = hashlib.sha256(data).hexdigest()
        cached = self._cached(sha)
        if cached.is_file():
            return cached.read_bytes()
        tmp_dir = self.cache_dir / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        tmp = tmp_dir / f"{sha}-{os.getpid()}-{name}"
        write_atomic(tmp, data)
        try:
            return self.sign_file(tmp, sha)
        finally:
            tmp.unlink(missing_ok=True)

    def public_key(self) -> bytes:
        """The armored public key (cached next to the signatures: a re-publish runs no gpg)."""
        cached = self.cache_dir / self.fingerprint / "public.asc"
        if cached.is_file():
            return cached.read_bytes()
        data = gpg.export_public_key(self.home, self.fingerprint, armor=True)
        cached.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(cached, data)
        return data

    def close(self) -> None:
        if self.used_agent:
            gpg.stop_agent(self.home)


def _secret_fingerprint(home: Path, key_id: str | None) -> str | None:
    gpg_bin = find_binary("gpg", reason="sign published images")
    with gpg.agent_home(home) as where:
        argv: list[str | os.PathLike[str]] = [
            gpg_bin, "--batch", "--no-tty", "--homedir", where, "--with-colons", "--list-secret-keys"
        ]  # fmt: skip
        if key_id:
            argv.append(key_id)
        result = run(argv, capture=True, check=False, timeout=60)
    fprs = _FPR.findall((result.stdout or b"").decode(errors="replace"))
    return fprs[0] if fprs and result.returncode == 0 else None


def site_signer(root: Path, site: str, signing: SigningSettings) -> Signer:
    """The site's signer: the configured key, else the demo's throwaway key (generated on first use).

    Signatures are cached under ``artifacts/keys/<site>/sig-cache/<fingerprint>/``.
    """
    base = demo_key_dir(root, site)
    cache = base / "sig-cache"
    if signing.configured:
        home = signing.gnupg_home or Path(os.environ.get("GNUPGHOME", Path.home() / ".gnupg"))
        if not home.is_dir():
            raise CoreosInfraError(f"signing key: GnuPG home {home} does not exist")
        fpr = _secret_fingerprint(home, signing.key_id)
        if fpr is None:
            raise CoreosInfraError(
                f"signing key: no secret key {signing.key_id or ''} in {home}".replace("  ", " "),
                hint="set publish.signing_key in the site file, or publish with --unsigned",
            )
        return Signer(home=home, fingerprint=fpr, cache_dir=cache)
    home = base / "gnupg"
    base.mkdir(parents=True, exist_ok=True)
    os.chmod(base, 0o700)
    with open(base / ".lock", "a") as lock:  # two publishers at once must not make two keys
        fcntl.flock(lock, fcntl.LOCK_EX)
        fpr = _secret_fingerprint(home, None) if home.is_dir() else None
        if fpr is None:
            home.mkdir(parents=True, exist_ok=True)
            fpr = gpg.generate_key(
                home, uid=f"coreos-infra demo signing key for site {site} <demo@{site}.invalid>"
            )
            LOG.warning(
                "generated a THROWAWAY demo signing key for site %s (%s) in %s: fine for the demo, "
                "configure publish.signing_key in the site file for real use",
                site,
                fpr,
                home,
            )
    return Signer(home=home, fingerprint=fpr, cache_dir=cache)
