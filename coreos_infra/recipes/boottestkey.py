"""The site's boot-test SSH key: what ``invoke boot-test`` logs in with as ``core``.

The image that is published must be the image that was boot-tested, so the key's public half is built
into every image of the site (an SSH key of ``core``), not added for the test only. Two ways:

- ``boot_test: {ssh_key: <path>}`` in the site (relative to the site file): a private key the site owns
  (0600 or 0400, OpenSSH or PEM format, no passphrase). Its public key is rendered like an admin key,
  so ``invoke render`` shows it. Whoever holds the file can log in to every host of the site: keep it
  as safe as the admins' keys (CI secret, not in git).
- no ``boot_test``: a throw-away key generated once per site and machine under
  ``artifacts/keys/<site>-boot-test`` (0600, git-ignored, never logged); the build pipeline adds its
  public key through ``extra_ssh_keys``. It changes the build ID from one machine to another (the key is
  an input of the build), and every image built on that machine accepts it: publish from the machine
  (or CI runner) that boot-tests, and rotate by deleting the file.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from coreos_infra.errors import CoreosInfraError, InputError, Location
from coreos_infra.run import find_binary, run

KEY_TYPES = ("ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521")


@dataclass(frozen=True)
class BootTestKey:
    private: Path  # the identity file (never read by the project, only handed to ssh)
    public: str  # "ssh-ed25519 AAAA... comment"
    generated: bool = False  # a throw-away key under artifacts/keys/


def public_key_of(private: Path, where: Location) -> str:
    """The public key line of an SSH private key file, checked like ``ssh`` would (mode, format)."""
    try:
        st = private.stat()
    except OSError as e:
        raise InputError(f"boot-test SSH key {private}: {e.strerror}", where) from None
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"boot-test SSH key {private} is not a regular file", where)
    if st.st_mode & 0o077:
        raise InputError(
            f"boot-test SSH key {private} has mode {stat.S_IMODE(st.st_mode):04o}: ssh refuses private keys "
            "others can read",
            where,
            hint=f"chmod 600 {private}",
        )
    keygen = find_binary("ssh-keygen", reason="read the boot-test SSH key (openssh-client)")
    out = run([keygen, "-y", "-P", "", "-f", private], capture=True, check=False)
    line = out.stdout.decode(errors="replace").strip()
    parts = line.split()
    if out.returncode != 0 or len(parts) < 2 or parts[0] not in KEY_TYPES:
        raise InputError(
            f"boot-test SSH key {private} is not an SSH private key without a passphrase",
            where,
            hint="create one with: ssh-keygen -t ed25519 -N '' -f <path>",
        )
    return f"{parts[0]} {parts[1]} coreos-infra-boot-test"


def site_key(private: Path, where: Location) -> BootTestKey:
    """The key a site names in ``boot_test.ssh_key`` (already resolved against the site file)."""
    return BootTestKey(private=private, public=public_key_of(private, where))


def throwaway_key(site: str, keys_dir: Path) -> BootTestKey:
    """The site's generated boot-test key under ``keys_dir`` (made once, atomically, mode 0600)."""
    private = keys_dir / f"{site}-boot-test"
    where = Location(str(private))
    if not private.exists():
        keys_dir.mkdir(parents=True, exist_ok=True)
        keygen = find_binary("ssh-keygen", reason="make the boot-test SSH key (openssh-client)")
        tmp = Path(tempfile.mkdtemp(prefix=f".{private.name}.", dir=keys_dir))
        try:
            key = tmp / "key"
            comment = f"coreos-infra boot-test {site}"
            run([keygen, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", key], capture=True)
            key.chmod(0o600)
            try:
                os.link(key, private)  # never replaces a key another process made meanwhile
            except FileExistsError:
                pass
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    try:
        return BootTestKey(private=private, public=public_key_of(private, where), generated=True)
    except InputError as e:
        raise CoreosInfraError(e.message, hint=f"delete {private} to generate a new one") from None
