"""The digest-based OpenPGP check (coreos_infra.openpgp) gives gpgv's verdicts, key kind by key kind.

Every case signs with real gpg keys (RSA, Ed25519, NIST P-256, a signing subkey, an expired and a revoked
key, a text-mode signature) and compares what :func:`gpg.stream_verifier` says with what ``gpgv`` says
over the same file; the upstream coreos-installer vectors (RSA primary + signing subkey) too.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from shared_fixtures import corpus, needs

from coreos_infra import gpg, openpgp
from coreos_infra.errors import VerificationError

VERIFY = corpus("coreos-installer/verify")


def _gpg(home: Path, *args: str) -> bytes:
    return gpg._gpg(home, "--pinentry-mode", "loopback", "--passphrase", "", *args, agent=True)


def _new_key(home: Path, algo: str, *, usage: str = "sign", expire: str = "never") -> str:
    uid = f"test {algo} {usage} {time.monotonic_ns()} <t@example.invalid>"
    _gpg(home, "--quick-generate-key", uid, algo, usage, expire)
    return gpg._primary_fingerprints(_gpg(home, "--with-colons", "--list-keys", uid))[0]


def _streamed(data: Path, sig: bytes, keyring: gpg.Keyring) -> tuple[type, gpg.SignatureCheck | str]:
    """(verifier class, verdict) of the streaming check, fed in 64 KiB pieces."""
    v = gpg.stream_verifier(sig, keyring, what="data")
    try:
        with open(data, "rb") as f:
            while chunk := f.read(65536):
                v.update(chunk)
        return type(v), v.finish()
    except VerificationError as e:
        return type(v), e.message
    finally:
        v.close()


def _gpgv(data: Path, sig: bytes, keyring: gpg.Keyring) -> gpg.SignatureCheck | str:
    try:
        return gpg.verify_detached(data, sig, keyring, what="data")
    except VerificationError as e:
        return e.message


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    h = tmp_path_factory.mktemp("gnupg")
    os.chmod(h, 0o700)
    yield h
    gpg.stop_agent(h)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("data") / "image.raw"
    p.write_bytes(os.urandom(3 << 20) + b"tail")
    return p


def _keyring(home: Path, tmp: Path, *fprs: str) -> gpg.Keyring:
    pub = tmp / "pub.asc"
    pub.write_bytes(_gpg(home, "--armor", "--export", *fprs))
    return gpg.build_keyring(tmp / "kr.gpg", pinned=[], extra=[pub])


def _sign(home: Path, fpr: str, path: Path, *extra: str) -> bytes:
    return _gpg(home, "--local-user", f"{fpr}!", *extra, "--detach-sign", "--output", "-", str(path))


@pytest.mark.parametrize("algo", ["ed25519", "rsa2048", "nistp256"])
def test_good_and_bad_signatures_agree_with_gpgv(algo: str, home: Path, data: Path, tmp_path: Path) -> None:
    fpr = _new_key(home, algo)
    keyring = _keyring(home, tmp_path, fpr)
    assert keyring.signers == {fpr: fpr}
    sig = _sign(home, fpr, data)
    kind, verdict = _streamed(data, sig, keyring)
    assert kind is gpg.DigestStreamVerifier, "gpgv was used for a supported key"
    assert verdict == _gpgv(data, sig, keyring) == gpg.SignatureCheck(fpr, fpr)
    tampered = tmp_path / "tampered"
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 1
    tampered.write_bytes(bytes(raw))
    kind, verdict = _streamed(tampered, sig, keyring)
    assert "BAD signature" in str(verdict) and "BAD signature" in str(_gpgv(tampered, sig, keyring))


def test_signing_subkey_and_armored_signature(home: Path, data: Path, tmp_path: Path) -> None:
    primary = _new_key(home, "ed25519", usage="cert")
    _gpg(home, "--quick-add-key", primary, "rsa2048", "sign", "never")
    keyring = _keyring(home, tmp_path, primary)
    (sub,) = [k for k, v in keyring.signers.items() if v == primary and k != primary]
    sig = _gpg(home, "--armor", "--local-user", primary, "--detach-sign", "--output", "-", str(data))
    kind, verdict = _streamed(data, sig, keyring)
    assert kind is gpg.DigestStreamVerifier
    assert verdict == _gpgv(data, sig, keyring) == gpg.SignatureCheck(primary, sub)


@pytest.mark.parametrize(
    "case",
    ["expired key", "revoked key", "untrusted key", "text signature"],
)
def test_what_it_cannot_accept_is_refused_like_gpgv(
    case: str, home: Path, data: Path, tmp_path: Path
) -> None:
    fpr = _new_key(home, "ed25519", expire="seconds=3" if case == "expired key" else "never")
    sig = _sign(home, fpr, data, *(["--textmode"] if case == "text signature" else []))
    trusted = [fpr]
    if case == "expired key":
        time.sleep(4)
    elif case == "revoked key":
        rev = (home / "openpgp-revocs.d" / f"{fpr}.rev").read_text().replace(":-----BEGIN", "-----BEGIN")
        (tmp_path / "rev.asc").write_text(rev)
        _gpg(home, "--import", str(tmp_path / "rev.asc"))
    elif case == "untrusted key":
        trusted = [_new_key(home, "ed25519")]
    keyring = _keyring(home, tmp_path, *trusted)
    assert (fpr in keyring.signers) is (case == "text signature")
    kind, verdict = _streamed(data, sig, keyring)
    expected = _gpgv(data, sig, keyring)
    assert isinstance(verdict, str) and isinstance(expected, str), (verdict, expected)
    if case == "text signature":
        assert kind is gpg.DigestStreamVerifier and "class 01" in verdict and "class 01" in expected
    else:  # not a key GnuPG lets sign: the check is gpgv's own
        assert kind is gpg.StreamVerifier and verdict == expected


@needs("coreos-installer/verify")
def test_upstream_vectors_give_gpgvs_answer(tmp_path: Path) -> None:
    keyring = gpg.build_keyring(tmp_path / "kr.gpg", pinned=[], extra=[VERIFY / "test-key.pub.asc"])
    sigs = sorted(VERIFY.glob("*.sig"))
    assert sigs
    for sig_path in sigs:
        data = sig_path.with_suffix("")
        if not data.is_file():
            continue
        sig = sig_path.read_bytes()
        kind, verdict = _streamed(data, sig, keyring)
        assert kind is gpg.DigestStreamVerifier, sig_path.name
        assert verdict == _gpgv(data, sig, keyring), sig_path.name


def _sig_body(version: int, hashed: bytes) -> bytes:
    """A signature packet body: ``hashed`` subpackets, no unhashed ones, left16, one MPI."""
    return (
        bytes([version, 0, 22, 8])
        + len(hashed).to_bytes(2, "big")
        + hashed
        + b"\x00\x00"
        + b"\xab\xcd"
        + b"\x00\x01\x01"
    )


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (_sig_body(3, b""), "version 3"),
        (_sig_body(4, b"\x02\xe3\x00"), "critical subpacket 99"),  # critical, unknown type 99
        (_sig_body(4, b"\x02\x1a\x00"), "without a creation time"),  # only a (non-critical) policy URI
        (bytes([4, 0, 22, 7]) + b"\x00\x00", "hash algorithm 7"),
    ],
)
def test_what_the_digest_check_does_not_know_goes_to_gpgv(body: bytes, why: str) -> None:
    with pytest.raises(openpgp.Unsupported, match=why):
        openpgp.parse_signature(body)


def test_a_sha256_signature_takes_over_the_downloads_sha256_state(tmp_path: Path) -> None:
    """Our signatures use SHA-256 (as Fedora's): the download's SHA-256 state is handed to the verifier
    instead of hashing every byte twice; a state over other bytes fails the signature."""
    import hashlib

    data = os.urandom(1 << 20)
    path = tmp_path / "f"
    path.write_bytes(data)
    with gpg.throwaway_key(tmp_path) as key:
        sig = key.sign(path).read_bytes()
        pub = key.public_key()
    keyring = gpg.build_keyring(tmp_path / "k.gpg", pinned=[], extra=[_write(tmp_path / "pub.asc", pub)])
    v = gpg.stream_verifier(sig, keyring, what="f")
    assert isinstance(v, gpg.DigestStreamVerifier) and v.shares_sha256()
    v.adopt_sha256(hashlib.sha256(data))
    assert v.finish().primary_fingerprint == key.fingerprint
    bad = gpg.stream_verifier(sig, keyring, what="f")
    bad.adopt_sha256(hashlib.sha256(data[:-1] + b"x"))  # type: ignore[union-attr]
    with pytest.raises(VerificationError):
        bad.finish()


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
