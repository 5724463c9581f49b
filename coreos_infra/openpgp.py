"""OpenPGP v4 detached signatures checked over a digest the caller computes while the bytes stream.

``gpgv`` hashes the data itself at about 200 MB/s here (a 128 MiB base image costs 0.6-0.8 s of its own,
more than the download). An OpenPGP v4 signature is made over ``H(data || hashed part || trailer)``,
so the same hash can be computed with :mod:`hashlib` (SHA-NI, ~1.4 GB/s) as the bytes arrive and only
the final step, the public-key check, needs the key. :class:`DigestVerifier` does that with the
``cryptography`` primitives for the algorithms keys and signatures use in practice: RSA (PKCS#1 v1.5),
EdDSA over Ed25519 and ECDSA over NIST P-256/384/521, with SHA-256/384/512/224.

Which keys may sign is not decided here: :func:`coreos_infra.gpg.build_keyring` asks GnuPG itself which
(sub)keys of the trusted keyring are valid signing keys (self-signatures and subkey bindings checked,
not expired, not revoked) and records them with their primary fingerprint; this module only parses the
public-key material of those keys. Anything else (v3 or v5/v6 packets, other algorithms, a critical
subpacket it does not know, a signer not in that list) is :class:`Unsupported`: the caller then lets
``gpgv`` judge the whole file, as before. A signature that parses but does not verify is a
:class:`~coreos_infra.errors.VerificationError`, never a fallback.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from coreos_infra.errors import VerificationError

SIG_BINARY_DOCUMENT = 0x00
HASHES = {8: "sha256", 9: "sha384", 10: "sha512", 11: "sha224"}
RSA_ALGOS = (1, 3)  # RSA (encrypt or sign), RSA sign-only
ECDSA, EDDSA = 19, 22
ED25519_OID = bytes.fromhex("2b06010401da470f01")  # 1.3.6.1.4.1.11591.15.1
CURVES = {  # OID -> cryptography curve name
    bytes.fromhex("2a8648ce3d030107"): "SECP256R1",
    bytes.fromhex("2b81040022"): "SECP384R1",
    bytes.fromhex("2b81040023"): "SECP521R1",
}
# Subpackets whose meaning this module applies or that do not change what a signature says.
KNOWN_SUBPACKETS = {2, 3, 4, 5, 9, 11, 16, 20, 21, 22, 23, 25, 26, 27, 28, 30, 31, 33}


class Unsupported(Exception):
    """Not something this module checks; the caller falls back to ``gpgv``."""


def packets(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(tag, body) of each OpenPGP packet in ``data`` (old and new format; no partial lengths)."""
    pos = 0
    while pos < len(data):
        b0 = data[pos]
        if not b0 & 0x80:
            raise Unsupported(f"not an OpenPGP packet at byte {pos}")
        if b0 & 0x40:
            tag, o1 = b0 & 0x3F, data[pos + 1] if pos + 1 < len(data) else 0
            if o1 < 192:
                length, hdr = o1, 2
            elif o1 < 224:
                length, hdr = ((o1 - 192) << 8) + data[pos + 2] + 192, 3
            elif o1 == 255:
                length, hdr = int.from_bytes(data[pos + 2 : pos + 6], "big"), 6
            else:
                raise Unsupported("partial-length packet")
        else:
            tag, ltype = (b0 >> 2) & 0x0F, b0 & 0x03
            if ltype == 3:
                raise Unsupported("indeterminate-length packet")
            n = 1 << ltype
            length, hdr = int.from_bytes(data[pos + 1 : pos + 1 + n], "big"), 1 + n
        body = data[pos + hdr : pos + hdr + length]
        if len(body) != length:
            raise Unsupported("truncated packet")
        yield tag, body
        pos += hdr + length


def _mpis(data: bytes, count: int) -> list[int]:
    out, pos = [], 0
    for _ in range(count):
        if pos + 2 > len(data):
            raise Unsupported("truncated MPI")
        nbytes = (int.from_bytes(data[pos : pos + 2], "big") + 7) // 8
        out.append(int.from_bytes(data[pos + 2 : pos + 2 + nbytes], "big"))
        pos += 2 + nbytes
    return out


@dataclass(frozen=True)
class Signature:
    sig_type: int
    pk_algo: int
    hash_name: str
    hashed: bytes  # version through the hashed subpackets: what follows the data in the hash
    created: int
    expires: int | None  # seconds after ``created``
    issuer_fpr: str | None
    issuer_keyid: str | None
    left16: bytes
    values: list[int]  # the signature's MPIs (RSA: s; ECDSA/EdDSA: r, s)


def _subpackets(area: bytes) -> Iterator[tuple[int, bool, bytes]]:
    pos = 0
    while pos < len(area):
        o1 = area[pos]
        if o1 < 192:
            length, hdr = o1, 1
        elif o1 < 255:
            length, hdr = ((o1 - 192) << 8) + area[pos + 1] + 192, 2
        else:
            length, hdr = int.from_bytes(area[pos + 1 : pos + 5], "big"), 5
        body = area[pos + hdr : pos + hdr + length]
        if not body or len(body) != length:
            raise Unsupported("malformed subpacket")
        yield body[0] & 0x7F, bool(body[0] & 0x80), body[1:]
        pos += hdr + length


def parse_signature(body: bytes) -> Signature:
    if len(body) < 6 or body[0] != 4:
        raise Unsupported(f"signature packet version {body[0] if body else '?'}")
    sig_type, pk_algo, hash_algo = body[1], body[2], body[3]
    if hash_algo not in HASHES:
        raise Unsupported(f"hash algorithm {hash_algo}")
    hlen = int.from_bytes(body[4:6], "big")
    hashed_area = body[6 : 6 + hlen]
    pos = 6 + hlen
    ulen = int.from_bytes(body[pos : pos + 2], "big")
    unhashed_area = body[pos + 2 : pos + 2 + ulen]
    pos += 2 + ulen
    left16, rest = body[pos : pos + 2], body[pos + 2 :]
    created, expires, fpr, keyid = None, None, None, None
    for kind, critical, value in _subpackets(hashed_area):
        if critical and kind not in KNOWN_SUBPACKETS:
            raise Unsupported(f"critical subpacket {kind}")
        if kind == 2:
            created = int.from_bytes(value, "big")
        elif kind == 3:
            expires = int.from_bytes(value, "big") or None
        elif kind == 33 and value[:1] == b"\x04":
            fpr = value[1:].hex().upper()
        elif kind == 16:
            keyid = value.hex().upper()
    for kind, _critical, value in _subpackets(unhashed_area):
        if kind == 16 and keyid is None:
            keyid = value.hex().upper()
    if created is None:
        raise Unsupported("signature without a creation time")
    count = 1 if pk_algo in RSA_ALGOS else 2
    return Signature(sig_type, pk_algo, HASHES[hash_algo], body[: 6 + hlen], created, expires, fpr, keyid,
                     left16, _mpis(rest, count))  # fmt: skip


@dataclass(frozen=True)
class PublicKey:
    fingerprint: str
    created: int
    algo: int
    material: bytes  # the algorithm-specific part of the key packet

    @property
    def keyid(self) -> str:
        return self.fingerprint[-16:]


def v4_fingerprint(key_packet: bytes) -> str:
    """The fingerprint of a v4 public-key (or subkey) packet body, upper-case hex."""
    return hashlib.sha1(b"\x99" + len(key_packet).to_bytes(2, "big") + key_packet).hexdigest().upper()


def parse_keys(keyring: bytes) -> dict[str, PublicKey]:
    """The v4 primary keys and subkeys in a binary keyring, by fingerprint."""
    keys = {}
    for tag, body in packets(keyring):
        if tag in (6, 14) and body[:1] == b"\x04":
            fpr = v4_fingerprint(body)
            keys[fpr] = PublicKey(fpr, int.from_bytes(body[1:5], "big"), body[5], body[6:])
    return keys


def _verify(key: PublicKey, sig: Signature, digest: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils

    algorithm: hashes.HashAlgorithm = getattr(hashes, sig.hash_name.upper())()
    try:
        if key.algo in RSA_ALGOS and sig.pk_algo in RSA_ALGOS:
            n, e = _mpis(key.material, 2)
            size = (n.bit_length() + 7) // 8
            rsa.RSAPublicNumbers(e, n).public_key().verify(
                sig.values[0].to_bytes(size, "big"), digest, padding.PKCS1v15(), utils.Prehashed(algorithm)
            )
            return True
        oid = key.material[1 : 1 + key.material[0]]
        (point,) = _mpis(key.material[1 + len(oid) :], 1)
        if key.algo == EDDSA == sig.pk_algo and oid == ED25519_OID:
            raw = point.to_bytes(33, "big")
            if raw[0] != 0x40:
                raise Unsupported("EdDSA key not in native point format")
            r, s = (v.to_bytes(32, "big") for v in sig.values)
            ed25519.Ed25519PublicKey.from_public_bytes(raw[1:]).verify(r + s, digest)
            return True
        if key.algo == ECDSA == sig.pk_algo and oid in CURVES:
            curve = getattr(ec, CURVES[oid])()
            nbytes = 1 + 2 * ((curve.key_size + 7) // 8)
            pub = ec.EllipticCurvePublicKey.from_encoded_point(curve, point.to_bytes(nbytes, "big"))
            der = utils.encode_dss_signature(sig.values[0], sig.values[1])
            pub.verify(der, digest, ec.ECDSA(utils.Prehashed(algorithm)))
            return True
    except InvalidSignature:
        return False
    except ValueError as e:  # malformed key or signature values
        raise Unsupported(str(e)) from None
    raise Unsupported(f"public-key algorithm {key.algo}/{sig.pk_algo}")


class DigestVerifier:
    """Checks a detached signature over bytes fed in order with :meth:`update` (see the module docstring).

    ``signers`` maps each valid signing (sub)key fingerprint of the trusted keyring to its primary's;
    ``keyring`` is that keyring's binary content. Raises :class:`Unsupported` at construction when any
    signature is outside what this module checks.
    """

    def __init__(self, signature: bytes, keyring: bytes, signers: dict[str, str], *, what: str) -> None:
        self.name = what
        self.sigs = [parse_signature(body) for tag, body in packets(signature) if tag == 2]
        if not self.sigs:
            raise Unsupported("no signature packet")
        keys = parse_keys(keyring)
        self.keys: list[tuple[PublicKey, str]] = []
        for sig in self.sigs:
            key = self._signer(sig, keys, signers)
            if key is None:
                raise Unsupported(f"signer {sig.issuer_fpr or sig.issuer_keyid} is not a known signing key")
            self.keys.append((key, signers[key.fingerprint]))
        self._hashers = {name: hashlib.new(name) for name in {s.hash_name for s in self.sigs}}

    @staticmethod
    def _signer(sig: Signature, keys: dict[str, PublicKey], signers: dict[str, str]) -> PublicKey | None:
        if sig.issuer_fpr is not None:
            key = keys.get(sig.issuer_fpr)
            return key if key is not None and key.fingerprint in signers else None
        found = [k for f, k in keys.items() if f in signers and k.keyid == sig.issuer_keyid]
        return found[0] if len(found) == 1 else None

    def update(self, data: bytes) -> None:
        for h in self._hashers.values():
            h.update(data)

    def shares_sha256(self) -> bool:
        """Whether every signature hashes with SHA-256: then the caller's SHA-256 of the same bytes
        can be handed over (:meth:`adopt_sha256`) instead of hashing them twice."""
        return set(self._hashers) == {"sha256"}

    def adopt_sha256(self, hasher: Any) -> None:
        """Take a SHA-256 state over exactly the bytes fed so far (instead of :meth:`update`)."""
        self._hashers = {"sha256": hasher}

    def restart(self) -> None:
        self._hashers = {name: hashlib.new(name) for name in self._hashers}

    def finish(self) -> tuple[str, str]:
        """(primary, signing) fingerprints of the last good signature; raises unless all are good."""
        now = time.time()
        result = ("", "")
        for sig, (key, primary) in zip(self.sigs, self.keys, strict=True):
            if sig.sig_type != SIG_BINARY_DOCUMENT:
                raise VerificationError(
                    f"{self.name}: signature of class {sig.sig_type:02x}, expected a binary document (00)"
                )
            if sig.expires is not None and sig.created + sig.expires < now:
                raise VerificationError(f"{self.name}: the signature expired")
            if sig.created < key.created:
                raise VerificationError(f"{self.name}: the signature is older than the key that made it")
            h = self._hashers[sig.hash_name].copy()
            h.update(sig.hashed)
            h.update(b"\x04\xff" + len(sig.hashed).to_bytes(4, "big"))
            digest = h.digest()
            if digest[:2] != sig.left16 or not _verify(key, sig, digest):
                raise VerificationError(f"{self.name}: BAD signature: the file does not match its signature")
            result = (primary, key.fingerprint)
        return result

    def close(self) -> None:
        pass
