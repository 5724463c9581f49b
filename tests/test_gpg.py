"""OpenPGP verification with gpgv: upstream coreos-installer vectors, pinned Fedora keys, throwaway keys."""

from __future__ import annotations

import gzip
import lzma
import shutil
from pathlib import Path

import pytest
from shared_fixtures import corpus, needs

from coreos_infra import gpg
from coreos_infra.errors import InputError, VerificationError
from coreos_infra.fetch import check_compressed, check_xz_framing
from coreos_infra.keys import KEYS_DIR, PinnedKey, pinned_keys

VERIFY = corpus("coreos-installer/verify")
needs_vectors = needs("coreos-installer/verify")
TEST_KEY_FPR = "1A304569BFADFB3E3F96F0C3AA2A69A46EC352FC"
TEST_SUBKEY_FPR = "FC51AC9FED914ECAD67EDB2A5FBDA8071BF24B78"
FEDORA = {
    "C6E7F081CF80E13146676E88829B606631645531": "43",
    "36F612DCF27F7D1A48A835E4DBFCF71C6D9F90A6": "44",
    "4F50A6114CD5C6976A7F1179655A4B02F577861E": "45",
    "D924B10D3E810DABDD8B56B596E7E91491211FCE": "46",
}


@pytest.fixture(scope="module")
def test_keyring(tmp_path_factory: pytest.TempPathFactory) -> gpg.Keyring:
    return gpg.build_keyring(
        tmp_path_factory.mktemp("kr") / "test.gpg", pinned=[], extra=[VERIFY / "test-key.pub.asc"]
    )


@pytest.fixture(scope="module")
def fedora_keyring(tmp_path_factory: pytest.TempPathFactory) -> gpg.Keyring:
    return gpg.build_keyring(tmp_path_factory.mktemp("kr") / "fedora.gpg")


@needs_vectors
@pytest.mark.parametrize("name", ["1M.gz", "1M.xz", "1M.zst"])
def test_upstream_vectors_verify(name: str, test_keyring: gpg.Keyring) -> None:
    check = gpg.verify_detached(VERIFY / name, (VERIFY / f"{name}.sig").read_bytes(), test_keyring)
    assert check.primary_fingerprint == TEST_KEY_FPR
    assert check.signing_fingerprint == TEST_SUBKEY_FPR


@needs_vectors
def test_upstream_uncompressed_vector(tmp_path: Path, test_keyring: gpg.Keyring) -> None:
    zeros = tmp_path / "1M"
    zeros.write_bytes(bytes(1 << 20))
    assert gpg.verify_detached(
        zeros, (VERIFY / "1M.sig").read_bytes(), test_keyring
    ).primary_fingerprint == (TEST_KEY_FPR)
    zeros.write_bytes(bytes(1 << 20) + b"\0")  # one trailing byte more: every byte counts
    with pytest.raises(VerificationError, match="BAD signature"):
        gpg.verify_detached(zeros, (VERIFY / "1M.sig").read_bytes(), test_keyring)


@needs_vectors
def test_upstream_signature_of_other_file_is_bad(test_keyring: gpg.Keyring) -> None:
    with pytest.raises(VerificationError, match=r"1M\.gz: BAD signature"):
        gpg.verify_detached(VERIFY / "1M.gz", (VERIFY / "1M.xz.sig").read_bytes(), test_keyring)


@needs_vectors
def test_upstream_vector_untrusted_with_fedora_keys(fedora_keyring: gpg.Keyring) -> None:
    with pytest.raises(
        VerificationError, match="signed by key 5FBDA8071BF24B78, which is not a trusted key"
    ):
        gpg.verify_detached(VERIFY / "1M.xz", (VERIFY / "1M.xz.sig").read_bytes(), fedora_keyring)


@needs_vectors
def test_upstream_compressed_vectors_are_complete(tmp_path: Path) -> None:
    for name in ("1M.gz", "1M.xz", "1M.zst"):
        check_compressed(VERIFY / name, name=name)
    check_xz_framing(VERIFY / "1M.xz")  # CRC64 check type, one stream
    for name in ("1M.gz", "1M.xz", "1M.zst"):
        data = (VERIFY / name).read_bytes()
        cut = tmp_path / f"cut-{name}"
        cut.write_bytes(data[:-7])
        with pytest.raises(VerificationError):
            check_compressed(cut, name=name)
        extra = tmp_path / f"extra-{name}"
        extra.write_bytes(data + b"trailing")
        with pytest.raises(VerificationError, match="trailing"):
            check_compressed(extra, name=name)


def test_compressed_concatenations_are_accepted(tmp_path: Path) -> None:
    xz2 = tmp_path / "two.xz"
    xz2.write_bytes(lzma.compress(b"a" * 1000) + b"\0" * 8 + lzma.compress(b"b" * 10))  # padding allowed
    check_compressed(xz2, name="two.xz")
    gz2 = tmp_path / "two.gz"
    gz2.write_bytes(gzip.compress(b"x") + gzip.compress(b"y"))
    check_compressed(gz2, name="two.gz")
    bad = tmp_path / "pad.xz"
    bad.write_bytes(lzma.compress(b"a") + b"\0" * 3)  # padding must be a multiple of 4
    with pytest.raises(VerificationError):
        check_compressed(bad, name="pad.xz")


def test_bundled_fedora_keys_are_pinned(fedora_keyring: gpg.Keyring) -> None:
    pins = pinned_keys()
    assert {p.fingerprint for p in pins} == set(FEDORA)
    for pin in pins:
        assert pin.path.is_file()
        assert gpg.key_fingerprints(pin.path) == [pin.fingerprint]
        assert f"fedora-{FEDORA[pin.fingerprint]}-primary" in pin.path.name
    assert fedora_keyring.fingerprints == frozenset(FEDORA)
    assert fedora_keyring.path.stat().st_size > 1000


def test_swapped_pinned_key_is_refused(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    shutil.copytree(KEYS_DIR, keys, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    # Put the Fedora 44 key where the Fedora 43 key should be.
    (keys / "fedora-43-primary.asc").write_bytes((keys / "fedora-44-primary.asc").read_bytes())
    with pytest.raises(VerificationError, match="expected exactly C6E7F081CF80E13146676E88829B606631645531"):
        gpg.build_keyring(tmp_path / "k.gpg", pinned=pinned_keys(keys))
    assert not (tmp_path / "k.gpg").exists()


def test_damaged_pinned_key_is_refused(tmp_path: Path) -> None:
    damaged = tmp_path / "damaged.asc"
    text = (KEYS_DIR / "fedora-45-primary.asc").read_text().splitlines()
    text[5] = text[5][:10] + ("A" if text[5][10] != "A" else "B") + text[5][11:]
    damaged.write_text("\n".join(text) + "\n")
    with pytest.raises(VerificationError):
        gpg.build_keyring(
            tmp_path / "k.gpg", pinned=[PinnedKey("4F50A6114CD5C6976A7F1179655A4B02F577861E", damaged)]
        )


def test_fingerprints_file_errors_name_the_line(tmp_path: Path) -> None:
    (tmp_path / "FINGERPRINTS").write_text("# comment\n\nNOTAFINGERPRINT fedora.asc\n")
    with pytest.raises(InputError, match=r"FINGERPRINTS:3: expected"):
        pinned_keys(tmp_path)


@needs_vectors
def test_keyring_dir_and_errors(tmp_path: Path) -> None:
    keys = tmp_path / "keys.d"
    keys.mkdir()
    with pytest.raises(InputError, match="no key files"):
        gpg.build_keyring(tmp_path / "k.gpg", pinned=[], extra=[keys])
    with pytest.raises(InputError, match="does not exist"):
        gpg.build_keyring(tmp_path / "k.gpg", pinned=[], extra=[tmp_path / "missing.asc"])
    for garbage in (b"garbage\n", bytes(range(256)) * 3):
        (tmp_path / "bad.asc").write_bytes(garbage)
        with pytest.raises(InputError) as e:
            gpg.build_keyring(tmp_path / "k.gpg", extra=[tmp_path / "bad.asc"])
        assert str(e.value).startswith(f"{tmp_path / 'bad.asc'}: not an OpenPGP public key file")
        assert "fedora" not in str(e.value) and "command failed" not in str(e.value)
    shutil.copy(VERIFY / "test-key.pub.asc", keys / "snakeoil.asc")
    (keys / "README").write_text("not a key, ignored\n")
    kr = gpg.build_keyring(tmp_path / "k.gpg", extra=[keys])
    assert kr.fingerprints == frozenset(FEDORA) | {TEST_KEY_FPR}


def test_signed_message_is_not_a_detached_signature(tmp_path: Path) -> None:
    with gpg.throwaway_key(tmp_path) as key:
        payload = tmp_path / "payload"
        payload.write_bytes(b"what the attacker wants verified\n")
        signed = gpg._gpg(key.home, "--pinentry-mode", "loopback", "--passphrase", "", "--sign", "--output",
                          "-", payload, agent=True)  # fmt: skip
        pub = tmp_path / "k.asc"
        pub.write_bytes(key.public_key())
        kr = gpg.build_keyring(tmp_path / "k.gpg", pinned=[], extra=[pub])
        other = tmp_path / "download"
        other.write_bytes(b"something else entirely")
        with pytest.raises(VerificationError, match="unexpected OpenPGP packet type|only signatures"):
            gpg.verify_detached(other, signed, kr)
        with pytest.raises(VerificationError, match="empty"):
            gpg.verify_detached(other, b"", kr)


def test_throwaway_key_signs_and_cleans_up(tmp_path: Path) -> None:
    with gpg.throwaway_key(tmp_path) as key:
        home = key.home
        assert len(key.fingerprint) == 40
        data = tmp_path / "artifact.raw.xz"
        data.write_bytes(lzma.compress(b"disk image"))
        sig = key.sign(data)
        assert sig == tmp_path / "artifact.raw.xz.sig"
        assert gpg.check_signature_packets(sig.read_bytes()) == 1
        armored = key.public_key()
        assert armored.startswith(b"-----BEGIN PGP PUBLIC KEY BLOCK-----")
        pub = tmp_path / "pub.asc"
        pub.write_bytes(armored)
        assert gpg.key_fingerprints(pub) == [key.fingerprint]
        kr = gpg.build_keyring(tmp_path / "k.gpg", pinned=[], extra=[pub])
        assert gpg.verify_detached(data, sig.read_bytes(), kr).primary_fingerprint == key.fingerprint
        # An armored detached signature is accepted too.
        asc = gpg._gpg(key.home, "--pinentry-mode", "loopback", "--passphrase", "", "--armor",
                       "--detach-sign", "--output", "-", data, agent=True)  # fmt: skip
        assert gpg.verify_detached(data, asc, kr).primary_fingerprint == key.fingerprint
    assert not home.exists()
    assert not list(tmp_path.glob("gnupg-*"))


def test_key_in_a_home_too_deep_for_the_agents_socket(tmp_path: Path) -> None:
    """gpg-agent keeps its sockets in the home; in a deep one (a deep checkout, pytest-xdist's temporary
    directories) it fails with "General error", well before a Unix socket address is full: a short link
    is used."""
    deep = tmp_path / ("d" * max(1, 90 - len(str(tmp_path))))
    deep.mkdir()
    with gpg.throwaway_key(deep) as key:
        assert len(str(key.home)) > 100
        data = deep / "data"
        data.write_bytes(b"payload")
        sig = key.sign(data)
        pub = deep / "pub.asc"
        pub.write_bytes(key.public_key())
        kr = gpg.build_keyring(deep / "k.gpg", pinned=[], extra=[pub])
        assert gpg.verify_detached(data, sig.read_bytes(), kr).primary_fingerprint == key.fingerprint
    assert not list(deep.glob("gnupg-*"))


def test_persistent_key_home(tmp_path: Path) -> None:
    home = tmp_path / "mirror-key"
    fpr = gpg.generate_key(home, uid="fixture mirror <fixtures@coreos-infra.invalid>")
    try:
        data = tmp_path / "f"
        data.write_bytes(b"x")
        sig = gpg.sign_detached(home, fpr, data, dest=tmp_path / "f.signature")
        pub = tmp_path / "p.gpg"
        pub.write_bytes(gpg.export_public_key(home, fpr, armor=False))
        kr = gpg.build_keyring(tmp_path / "k.gpg", pinned=[], extra=[pub])
        assert gpg.verify_detached(data, sig.read_bytes(), kr).primary_fingerprint == fpr
    finally:
        gpg.stop_agent(home)


def test_keyring_takes_three_gpg_calls_and_needs_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What each key file holds is read without GnuPG; GnuPG imports, lists and exports (3 calls, not one
    per file), and a keyring kept in memory still serves gpgv (it is written where gpgv runs)."""
    calls: list[tuple[object, ...]] = []
    real = gpg._gpg

    def counting(home: Path, *args: object, **kw: object) -> bytes:
        calls.append(args)
        return real(home, *args, **kw)  # type: ignore[arg-type]

    with gpg.throwaway_key(tmp_path) as key:
        data = tmp_path / "data"
        data.write_bytes(b"payload")
        sig = key.sign(data).read_bytes()
        pub = tmp_path / "pub.asc"
        pub.write_bytes(key.public_key())
        monkeypatch.setattr(gpg, "_gpg", counting)
        kr = gpg.build_keyring(extra=[pub])  # the four pinned Fedora keys and ours
    assert len(calls) == 3, calls
    assert kr.path is None and kr.fingerprints == frozenset(FEDORA) | {key.fingerprint}
    assert gpg.verify_detached(data, sig, kr).primary_fingerprint == key.fingerprint


def test_pinned_key_file_with_a_second_key_block_is_refused(tmp_path: Path) -> None:
    """A pinned file whose first armor block is the right key but which carries another key after it
    must not get that other key trusted (GnuPG would import both)."""
    with gpg.throwaway_key(tmp_path) as key:
        other = key.public_key()
    pin = pinned_keys()[0]
    doubled = tmp_path / "doubled.asc"
    doubled.write_bytes(pin.path.read_bytes() + other)
    with pytest.raises(VerificationError, match="expected exactly"):
        gpg.build_keyring(pinned=[PinnedKey(pin.fingerprint, doubled)])
