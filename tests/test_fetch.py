"""Fetching artifacts from a signed mirror over a real loopback HTTP server (and file://)."""

from __future__ import annotations

import hashlib
import json
import lzma
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fetch_testlib import (
    OLD_RELEASE,
    RELEASE,
    STREAM,
    MirrorFixture,
    MirrorServer,
    assert_cache_clean,
    build_mirror,
    cache_state,
    copy_mirror,
    pseudo_random,
    serve,
)

from coreos_infra import gpg
from coreos_infra.errors import CoreosInfraError, VerificationError
from coreos_infra.fetch import (
    FetchError,
    FetchOptions,
    Selection,
    download,
    fetch_artifacts,
    mirror_artifacts,
)
from coreos_infra.fsutil import CHUNK
from coreos_infra.stream import StreamError

OPTS = FetchOptions(timeout=5, retries=3, backoff=0.01, max_backoff=0.05)


@pytest.fixture(scope="session")
def signing_key(tmp_path_factory: pytest.TempPathFactory) -> Iterator[gpg.SigningKey]:
    with gpg.throwaway_key(tmp_path_factory.mktemp("key")) as key:
        yield key


@pytest.fixture(scope="session")
def base_mirror(tmp_path_factory: pytest.TempPathFactory, signing_key: gpg.SigningKey) -> MirrorFixture:
    work = tmp_path_factory.mktemp("mirror-src")
    return build_mirror(work / "mirror", signing_key, work / "files")


@pytest.fixture
def mirror(base_mirror: MirrorFixture, tmp_path: Path) -> MirrorFixture:
    return copy_mirror(base_mirror, tmp_path / "mirror")


@pytest.fixture
def server(mirror: MirrorFixture) -> Iterator[MirrorServer]:
    with serve(mirror.root) as s:
        yield s


def fetch(base_url: str, cache: Path, trust: Path | None, fmt: str = "raw.xz", **kw: object):  # type: ignore[no-untyped-def]
    args = dict(
        base_url=base_url, stream=STREAM, arch="x86_64", platform="metal", fmt=fmt,
        cache_dir=cache, keyring=trust, options=OPTS,
    )  # fmt: skip
    args.update(kw)
    return fetch_artifacts(**args)  # type: ignore[arg-type]


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def resign(mirror: MirrorFixture, path: Path, *, key: gpg.SigningKey | None = None) -> None:
    (key or mirror.key).sign(path)


def set_stream_sha(mirror: MirrorFixture, path: Path) -> None:
    """Make the stream JSON and release.json agree with the file as it now is (a publisher-side change)."""
    new = digest(path.read_bytes())
    for doc_path in [mirror.root / "streams" / f"{STREAM}.json", *mirror.root.rglob("release.json")]:
        text = doc_path.read_text()
        doc = json.loads(text)

        def walk(node: object) -> None:
            if isinstance(node, dict):
                if isinstance(node.get("location"), str) and node["location"].endswith("/" + path.name):
                    node["sha256"] = new
                    node.pop("uncompressed-sha256", None)
                for v in node.values():
                    walk(v)

        walk(doc)
        doc_path.write_text(json.dumps(doc))


# --- happy paths -------------------------------------------------------------------------------------


def test_happy_path_http(mirror: MirrorFixture, server: MirrorServer, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    result = fetch(server.url, cache, mirror.public_key)
    expected = mirror.contents[("x86_64", "metal", "raw.xz", "disk")]
    assert result.release == RELEASE
    assert set(result.files) == {"disk"}
    path = result.files["disk"]
    assert path.read_bytes() == expected
    assert path == cache / "sha256" / digest(expected)
    assert not path.stat().st_mode & 0o222, "cached blobs are read-only"
    record = json.loads((cache / "sha256" / f"{digest(expected)}.json").read_text())
    assert record["signed_by"] == mirror.key.fingerprint
    assert record["size"] == len(expected)
    assert (cache / "sha256" / f"{digest(expected)}.sig").read_bytes() == mirror.path_of(
        "x86_64", "metal", "raw.xz"
    ).with_suffix(".xz.sig").read_bytes()
    paths = [r.path for r in server.requests]
    assert f"/streams/{STREAM}.json" in paths
    assert mirror.url_path("x86_64", "metal", "raw.xz") in paths
    assert mirror.url_path("x86_64", "metal", "raw.xz") + ".sig" in paths
    assert result.artifacts["disk"].location == server.url + mirror.url_path("x86_64", "metal", "raw.xz")
    assert cache_state(cache)["tmp"] == []


def test_happy_path_file_url_and_pxe_roles(mirror: MirrorFixture, tmp_path: Path) -> None:
    result = fetch(mirror.root.as_uri(), tmp_path / "cache", mirror.public_key, fmt="pxe")
    assert set(result.files) == {"kernel", "initramfs", "rootfs"}
    for role, path in result.files.items():
        assert path.read_bytes() == mirror.contents[("x86_64", "metal", "pxe", role)]
    # A plain directory path works as a base URL too.
    again = fetch(str(mirror.root), tmp_path / "cache2", mirror.public_key, fmt="iso")
    assert again.files["disk"].read_bytes() == mirror.contents[("x86_64", "metal", "iso", "disk")]


def test_other_arch_and_platform(mirror: MirrorFixture, server: MirrorServer, tmp_path: Path) -> None:
    a = fetch(server.url, tmp_path / "c", mirror.public_key, arch="aarch64")
    assert a.files["disk"].read_bytes() == mirror.contents[("aarch64", "metal", "raw.xz", "disk")]
    q = fetch(server.url, tmp_path / "c", mirror.public_key, platform="qemu", fmt="qcow2.xz")
    assert q.files["disk"].read_bytes() == mirror.contents[("x86_64", "qemu", "qcow2.xz", "disk")]


def test_release_pinning(mirror: MirrorFixture, server: MirrorServer, tmp_path: Path) -> None:
    old = fetch(server.url, tmp_path / "cache", mirror.public_key, release=OLD_RELEASE)
    assert old.release == OLD_RELEASE
    assert (
        old.files["disk"].read_bytes()
        == mirror.path_of("x86_64", "metal", "raw.xz", release=OLD_RELEASE).read_bytes()
    )
    assert old.files["disk"].read_bytes() != mirror.contents[("x86_64", "metal", "raw.xz", "disk")]
    assert server.requests_for(f"/prod/streams/{STREAM}/releases.json")
    assert server.requests_for(f"/builds/{OLD_RELEASE}/release.json")
    with pytest.raises(StreamError, match=r"release '40\.1' is not in the release index.*" + RELEASE):
        fetch(server.url, tmp_path / "cache", mirror.public_key, release="40.1")


# --- resume, retries, timeouts -------------------------------------------------------------------------


def test_resume_after_dropped_connection(
    mirror: MirrorFixture, server: MirrorServer, tmp_path: Path
) -> None:
    path = mirror.url_path("x86_64", "metal", "raw.xz")
    server.behaviour.drop_after[path] = 100 * 1024
    result = fetch(server.url, tmp_path / "cache", mirror.public_key)
    gets = server.requests_for(path)
    assert len(gets) == 2
    assert "Range" not in gets[0].headers
    assert gets[1].headers["Range"] == f"bytes={100 * 1024}-"
    assert gets[1].headers["If-Range"].startswith('"')
    assert result.files["disk"].read_bytes() == mirror.contents[("x86_64", "metal", "raw.xz", "disk")]


def test_resume_when_server_ignores_range(
    mirror: MirrorFixture, server: MirrorServer, tmp_path: Path
) -> None:
    path = mirror.url_path("x86_64", "metal", "iso")
    server.behaviour.drop_after[path] = 50 * 1024
    server.behaviour.ignore_range = True
    result = fetch(server.url, tmp_path / "cache", mirror.public_key, fmt="iso")
    assert len(server.requests_for(path)) == 2
    assert result.files["disk"].read_bytes() == mirror.contents[("x86_64", "metal", "iso", "disk")]


class _KeepingObserver:
    """Keeps every object it is given, as gpgv's feeder queue does, and counts restarts."""

    def __init__(self) -> None:
        self.kept: list[bytes] = []
        self.restarts = 0

    def update(self, data: bytes) -> None:
        self.kept.append(data)

    def restart(self) -> None:
        self.kept.clear()
        self.restarts += 1


def test_observers_get_every_byte_once_in_order(server: MirrorServer, tmp_path: Path) -> None:
    """The download reads into two reused buffers: an observer that keeps what it gets must still see
    the file's bytes (copies, not views of those buffers), and start over with the download."""
    data = pseudo_random(3 * CHUNK + 12345, 7)
    (server.root / "big.bin").write_bytes(data)
    server.behaviour.drop_after["/big.bin"] = 2 * CHUNK + 100
    server.behaviour.ignore_range = True  # the retry gets the whole file: the observers start over
    observer = _KeepingObserver()
    got = download(f"{server.url}/big.bin", tmp_path / "big.bin", observers=[observer],
                   options=OPTS, durable=False)  # fmt: skip
    assert got == hashlib.sha256(data).hexdigest()
    assert observer.restarts == 1 and b"".join(observer.kept) == data
    assert (tmp_path / "big.bin").read_bytes() == data


class _LateObserver:
    """Knows only once the response has arrived whether it shares the download's SHA-256."""

    def __init__(self, dest: Path) -> None:
        self.dest = dest
        self.calls: list[int] = []  # size of the file when on_response ran
        self.ready = False
        self.updates = 0
        self.adopted: str | None = None

    def on_response(self) -> None:
        self.calls.append(self.dest.stat().st_size)
        self.ready = True

    def shares_sha256(self) -> bool:
        return self.ready

    def adopt_sha256(self, hasher: Any) -> None:
        self.adopted = hasher.hexdigest()

    def update(self, data: bytes) -> None:
        self.updates += 1

    def restart(self) -> None:
        pass


def test_on_response_runs_once_before_the_first_byte(server: MirrorServer, tmp_path: Path) -> None:
    """What the body needs but the request does not (the keyring) is finished while the server answers:
    the hook runs once, before any byte is written, even when the download resumes, and whether an
    observer shares the SHA-256 is asked after it."""
    data = pseudo_random(3 * CHUNK + 5, 3)
    (server.root / "big.bin").write_bytes(data)
    server.behaviour.drop_after["/big.bin"] = CHUNK + 10  # then resumed with a Range request
    late = _LateObserver(tmp_path / "big.bin")
    got = download(f"{server.url}/big.bin", late.dest, observers=[late], options=OPTS, durable=False,
                   on_response=late.on_response)  # fmt: skip
    assert got == hashlib.sha256(data).hexdigest()
    assert late.calls == [0]
    assert late.updates == 0 and late.adopted == got
    assert len(server.requests_for("/big.bin")) == 2


def test_restart_when_server_refuses_to_resume(
    mirror: MirrorFixture, server: MirrorServer, tmp_path: Path
) -> None:
    path = mirror.url_path("x86_64", "metal", "iso")
    server.behaviour.drop_after[path] = 50 * 1024
    server.behaviour.fail_ranged[path] = [416]
    result = fetch(server.url, tmp_path / "cache", mirror.public_key, fmt="iso")
    gets = server.requests_for(path)
    assert [g.headers.get("Range") for g in gets] == [None, f"bytes={50 * 1024}-", None]
    assert result.files["disk"].read_bytes() == mirror.contents[("x86_64", "metal", "iso", "disk")]


def test_retries_server_errors_then_succeeds(
    mirror: MirrorFixture, server: MirrorServer, tmp_path: Path
) -> None:
    path = mirror.url_path("x86_64", "metal", "iso")
    server.behaviour.fail[path] = [503, 502]
    result = fetch(server.url, tmp_path / "cache", mirror.public_key, fmt="iso")
    assert len(server.requests_for(path)) == 3
    assert result.files["disk"].exists()


def test_gives_up_after_retries(mirror: MirrorFixture, server: MirrorServer, tmp_path: Path) -> None:
    path = mirror.url_path("x86_64", "metal", "iso")
    server.behaviour.fail[path] = [503] * 10
    with pytest.raises(FetchError, match="download failed after 4 attempts: 503"):
        fetch(server.url, tmp_path / "cache", mirror.public_key, fmt="iso")
    assert len(server.requests_for(path)) == OPTS.retries + 1
    assert_cache_clean(tmp_path / "cache", digest(mirror.contents[("x86_64", "metal", "iso", "disk")]))


def test_stalled_server_times_out_and_resumes(
    mirror: MirrorFixture, server: MirrorServer, tmp_path: Path
) -> None:
    path = mirror.url_path("x86_64", "metal", "iso")
    server.behaviour.stall[path] = 5.0
    opts = FetchOptions(timeout=1.5, retries=2, backoff=0.01)
    result = fetch(server.url, tmp_path / "cache", mirror.public_key, fmt="iso", options=opts)
    assert len(server.requests_for(path)) == 2
    assert result.files["disk"].read_bytes() == mirror.contents[("x86_64", "metal", "iso", "disk")]


# --- verification failures leave nothing behind ---------------------------------------------------------


def test_tampered_artifact(mirror: MirrorFixture, server: MirrorServer, tmp_path: Path) -> None:
    file = mirror.path_of("x86_64", "metal", "iso")
    data = bytearray(file.read_bytes())
    data[1000] ^= 0xFF
    file.write_bytes(bytes(data))
    with pytest.raises(VerificationError, match="SHA-256 mismatch"):
        fetch(server.url, tmp_path / "cache", mirror.public_key, fmt="iso")
    assert_cache_clean(tmp_path / "cache", digest(mirror.contents[("x86_64", "metal", "iso", "disk")]))


def test_tampered_artifact_and_metadata_caught_by_signature(
    mirror: MirrorFixture, server: MirrorServer, tmp_path: Path
) -> None:
    file = mirror.path_of("x86_64", "metal", "iso")
    data = bytearray(file.read_bytes())
    data[5] ^= 0x01
    file.write_bytes(bytes(data))
    set_stream_sha(mirror, file)  # an attacker who controls the mirror rewrites the checksum too
    with pytest.raises(VerificationError, match="BAD signature"):
        fetch(server.url, tmp_path / "cache", mirror.public_key, fmt="iso")
    assert_cache_clean(tmp_path / "cache", digest(bytes(data)))


def test_tampered_signature(mirror: MirrorFixture, server: MirrorServer, tmp_path: Path) -> None:
    sig = mirror.path_of("x86_64", "metal", "raw.xz").with_suffix(".xz.sig")
    data = bytearray(sig.read_bytes())
    data[-10] ^= 0x55
    sig.write_bytes(bytes(data))
    with pytest.raises(VerificationError, match="signature"):
        fetch(server.url, tmp_path / "cache", mirror.public_key)
    assert_cache_clean(tmp_path / "cache", digest(mirror.contents[("x86_64", "metal", "raw.xz", "disk")]))
    # Even in insecure mode a bad signature is fatal.
    with pytest.raises(VerificationError, match="signature"):
        fetch(server.url, tmp_path / "cache", mirror.public_key, insecure=True)
    assert_cache_clean(tmp_path / "cache", digest(mirror.contents[("x86_64", "metal", "raw.xz", "disk")]))


def test_missing_signature(mirror: MirrorFixture, server: MirrorServer, tmp_path: Path) -> None:
    mirror.path_of("x86_64", "metal", "iso").with_suffix(".iso.sig").unlink()
    cache = tmp_path / "cache"
    expected = mirror.contents[("x86_64", "metal", "iso", "disk")]
    with pytest.raises(VerificationError, match="no detached signature.*\n.*--insecure"):
        fetch(server.url, cache, mirror.public_key, fmt="iso")
    assert_cache_clean(cache, digest(expected))
    assert not server.requests_for(mirror.url_path("x86_64", "metal", "iso")), "signature is checked first"
    result = fetch(server.url, cache, mirror.public_key, fmt="iso", insecure=True)
    assert result.files["disk"].read_bytes() == expected
    assert json.loads((cache / "sha256" / f"{digest(expected)}.json").read_text())["signed_by"] is None
    # An artifact cached unsigned is not good enough for a secure fetch later.
    with pytest.raises(VerificationError, match="no detached signature"):
        fetch(server.url, cache, mirror.public_key, fmt="iso")


def test_signature_added_later_upgrades_cached_artifact(
    mirror: MirrorFixture, server: MirrorServer, tmp_path: Path
) -> None:
    file = mirror.path_of("x86_64", "metal", "iso")
    sig = file.with_suffix(".iso.sig")
    saved = sig.read_bytes()
    sig.unlink()
    cache = tmp_path / "cache"
    fetch(server.url, cache, mirror.public_key, fmt="iso", insecure=True)
    sig.write_bytes(saved)
    server.clear()
    result = fetch(server.url, cache, mirror.public_key, fmt="iso")
    assert not server.requests_for(mirror.url_path("x86_64", "metal", "iso")), "not downloaded again"
    assert server.requests_for(mirror.url_path("x86_64", "metal", "iso") + ".sig")
    assert json.loads((cache / "sha256" / f"{result.files['disk'].name}.json").read_text())["signed_by"]


def test_wrong_key(mirror: MirrorFixture, server: MirrorServer, tmp_path: Path) -> None:
    with gpg.throwaway_key(tmp_path) as other:
        other_pub = tmp_path / "other.asc"
        other_pub.write_bytes(other.public_key())
        with pytest.raises(VerificationError, match="not a trusted key"):
            fetch(server.url, tmp_path / "cache", other_pub)
        # Signed by a key we do not trust at all (only the shipped Fedora keys).
        with pytest.raises(VerificationError, match="not a trusted key"):
            fetch(server.url, tmp_path / "cache", None)
        # The mirror re-signed with the other key: trusted once the user adds that key.
        file = mirror.path_of("x86_64", "metal", "raw.xz")
        resign(mirror, file, key=other)
        with pytest.raises(VerificationError, match="not a trusted key"):
            fetch(server.url, tmp_path / "cache", mirror.public_key)
        raw_xz = mirror.contents[("x86_64", "metal", "raw.xz", "disk")]
        assert_cache_clean(tmp_path / "cache", digest(raw_xz))
        keys = tmp_path / "keys.d"
        keys.mkdir()
        (keys / "rotated.asc").write_bytes(other.public_key())
        result = fetch(server.url, tmp_path / "cache", keys, bundled_keys=False)
        assert result.files["disk"].exists()


def test_truncated_xz(mirror: MirrorFixture, server: MirrorServer, tmp_path: Path) -> None:
    file = mirror.path_of("x86_64", "metal", "raw.xz")
    truncated = file.read_bytes()[: file.stat().st_size // 2]
    file.write_bytes(truncated)
    with pytest.raises(VerificationError, match="SHA-256 mismatch"):
        fetch(server.url, tmp_path / "cache", mirror.public_key)
    # A publisher that signed and listed the truncated file: the stream check still refuses it.
    set_stream_sha(mirror, file)
    resign(mirror, file)
    with pytest.raises(VerificationError, match="truncated|not a complete xz stream"):
        fetch(server.url, tmp_path / "cache", mirror.public_key)
    assert_cache_clean(tmp_path / "cache", digest(truncated))


def test_trailing_garbage_after_xz(mirror: MirrorFixture, server: MirrorServer, tmp_path: Path) -> None:
    file = mirror.path_of("x86_64", "metal", "raw.xz")
    data = file.read_bytes() + b"GARBAGE!"
    file.write_bytes(data)
    set_stream_sha(mirror, file)
    resign(mirror, file)
    with pytest.raises(VerificationError, match="trailing data"):
        fetch(server.url, tmp_path / "cache", mirror.public_key)
    assert_cache_clean(tmp_path / "cache", digest(data))


def test_uncompressed_checksum_mismatch(mirror: MirrorFixture, server: MirrorServer, tmp_path: Path) -> None:
    file = mirror.path_of("x86_64", "metal", "raw.xz")
    data = lzma.compress(b"not the image the metadata describes")
    file.write_bytes(data)
    resign(mirror, file)
    doc_path = mirror.root / "streams" / f"{STREAM}.json"
    doc = json.loads(doc_path.read_text())
    entry = doc["architectures"]["x86_64"]["artifacts"]["metal"]["formats"]["raw.xz"]["disk"]
    entry["sha256"] = digest(data)  # keep the old uncompressed-sha256
    doc_path.write_text(json.dumps(doc))
    with pytest.raises(VerificationError, match="uncompressed SHA-256"):
        fetch(server.url, tmp_path / "cache", mirror.public_key)
    assert_cache_clean(tmp_path / "cache", digest(data))


def test_not_found(mirror: MirrorFixture, server: MirrorServer, tmp_path: Path) -> None:
    mirror.path_of("x86_64", "metal", "iso").unlink()
    with pytest.raises(FetchError, match="404"):
        fetch(server.url, tmp_path / "cache", mirror.public_key, fmt="iso")
    assert len(server.requests_for(mirror.url_path("x86_64", "metal", "iso"))) == 1, "404 is not retried"
    assert_cache_clean(tmp_path / "cache", digest(mirror.contents[("x86_64", "metal", "iso", "disk")]))
    with pytest.raises(FetchError, match="404.*/streams/rawhide.json"):
        fetch(server.url, tmp_path / "cache", mirror.public_key, stream="rawhide")
    with pytest.raises(FetchError, match="not found"):
        fetch((tmp_path / "nowhere").as_uri(), tmp_path / "cache", mirror.public_key)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"arch": "s390x"}, r"architectures: no architecture 's390x' \(available: aarch64, x86_64\)"),
        (
            {"platform": "aws"},
            r"architectures\.x86_64\.artifacts: no platform 'aws'.*\(available: metal, qemu\)",
        ),
        ({"fmt": "vhd.xz"}, r"formats: no format 'vhd\.xz' \(available: 4k\.raw\.xz, iso, pxe, raw\.xz\)"),
    ],
)
def test_unknown_arch_platform_format(
    mirror: MirrorFixture, server: MirrorServer, tmp_path: Path, kw: dict[str, str], message: str
) -> None:
    with pytest.raises(StreamError, match=message) as e:
        fetch(server.url, tmp_path / "cache", mirror.public_key, **kw)
    assert f"{server.url}/streams/{STREAM}.json" in str(e.value)
    assert not (tmp_path / "cache" / "sha256").exists()


# --- the cache -----------------------------------------------------------------------------------------


def test_cache_hit_makes_no_request(mirror: MirrorFixture, server: MirrorServer, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = fetch(server.url, cache, mirror.public_key, release=RELEASE)
    server.clear()
    second = fetch(server.url, cache, mirror.public_key, release=RELEASE)
    assert server.requests == [], "a pinned release in the cache needs no network at all"
    assert second.files == first.files
    # Following the stream asks only for the stream metadata.
    third = fetch(server.url, cache, mirror.public_key)
    assert [r.path for r in server.requests] == [f"/streams/{STREAM}.json"]
    assert third.files == first.files


def test_concurrent_fetches_share_the_cache(
    mirror: MirrorFixture, server: MirrorServer, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    path = mirror.url_path("x86_64", "metal", "raw.xz")
    server.behaviour.stall[path] = 0.5  # keep the first download in flight while the others arrive
    results: list[object] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            results.append(fetch(server.url, cache, mirror.public_key))
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert len(results) == 4
    assert len(server.requests_for(path)) == 1, "only one download; the others waited and hit the cache"
    files = {r.files["disk"] for r in results}  # type: ignore[attr-defined]
    assert len(files) == 1
    assert next(iter(files)).read_bytes() == mirror.contents[("x86_64", "metal", "raw.xz", "disk")]


def test_concurrent_processes_share_the_cache(
    mirror: MirrorFixture, server: MirrorServer, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    path = mirror.url_path("x86_64", "metal", "iso")
    server.behaviour.stall[path] = 0.5
    script = (
        "import sys; from pathlib import Path\n"
        "from coreos_infra.fetch import fetch_artifacts, FetchOptions\n"
        "r = fetch_artifacts(base_url=sys.argv[1], stream='stable', arch='x86_64', platform='metal',\n"
        "    fmt='iso', cache_dir=Path(sys.argv[2]), keyring=Path(sys.argv[3]),\n"
        "    options=FetchOptions(backoff=0.01))\n"
        "print(r.files['disk'])\n"
    )
    procs = [
        subprocess.Popen(
            [sys_executable(), "-c", script, server.url, str(cache), str(mirror.public_key)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert len({o[0] for o in outs}) == 1
    assert len(server.requests_for(path)) == 1


def sys_executable() -> str:
    import sys

    return sys.executable


def test_cached_file_rechecked_when_key_no_longer_trusted(
    mirror: MirrorFixture, server: MirrorServer, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    fetch(server.url, cache, mirror.public_key, release=RELEASE)
    with pytest.raises(VerificationError, match="not a trusted key"):
        fetch(server.url, cache, None, release=RELEASE)


# --- disk full -----------------------------------------------------------------------------------------


def test_disk_full_while_writing(mirror: MirrorFixture, server: MirrorServer) -> None:
    # /dev/full fails every write with ENOSPC, like a full filesystem.
    with pytest.raises(FetchError, match="no space left on the device"):
        download(server.url + mirror.url_path("x86_64", "metal", "iso"), Path("/dev/full"), options=OPTS)


def test_disk_full_announced_size(mirror: MirrorFixture, server: MirrorServer, tmp_path: Path) -> None:
    path = mirror.url_path("x86_64", "metal", "iso")
    server.behaviour.fake_length[path] = 1 << 60  # more than any disk
    with pytest.raises(FetchError, match=r"no space left .*\(1152921504606846976 bytes needed"):
        fetch(server.url, tmp_path / "cache", mirror.public_key, fmt="iso")
    assert_cache_clean(tmp_path / "cache", digest(mirror.contents[("x86_64", "metal", "iso", "disk")]))


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_disk_full_cache_on_small_filesystem(
    mirror: MirrorFixture, server: MirrorServer, small_tmpfs: Path
) -> None:
    cache = small_tmpfs / "cache"
    with pytest.raises(FetchError, match="no space left") as e:
        fetch(server.url, cache, mirror.public_key)  # 600 KiB into 256 KiB
    assert isinstance(e.value, CoreosInfraError)
    assert_cache_clean(cache, digest(mirror.contents[("x86_64", "metal", "raw.xz", "disk")]))


# --- mirror ----------------------------------------------------------------------------------------------


def test_mirror_roundtrip(mirror: MirrorFixture, server: MirrorServer, tmp_path: Path) -> None:
    dest = tmp_path / "airgap"
    sels = [Selection("x86_64", "metal", "raw.xz"), Selection("x86_64", "metal", "pxe")]
    stream_json = mirror_artifacts(
        dest,
        sels,
        base_url=server.url,
        stream=STREAM,
        cache_dir=tmp_path / "cache",
        keyring=mirror.public_key,
    )
    assert stream_json == dest / "streams" / f"{STREAM}.json"
    builds = dest / "prod" / "streams" / STREAM / "builds" / RELEASE / "x86_64"
    names = sorted(p.name for p in builds.iterdir())
    assert len(names) == 8  # raw.xz + 3 pxe files, each with .sig
    assert (dest / "prod" / "streams" / STREAM / "releases.json").exists()
    doc = json.loads(stream_json.read_text())
    assert set(doc["architectures"]["x86_64"]["artifacts"]["metal"]["formats"]) == {"raw.xz", "pxe"}
    # Pinned release mirrored too; then fetch from the mirror alone (file://, fresh cache).
    mirror_artifacts(
        dest, [Selection("x86_64", "metal", "iso")], base_url=server.url, stream=STREAM,
        release=OLD_RELEASE, cache_dir=tmp_path / "cache", keyring=mirror.public_key,
    )  # fmt: skip
    server.clear()
    got = fetch(dest.as_uri(), tmp_path / "fresh", mirror.public_key, fmt="pxe")
    assert got.files["rootfs"].read_bytes() == mirror.contents[("x86_64", "metal", "pxe", "rootfs")]
    old = fetch(dest.as_uri(), tmp_path / "fresh", mirror.public_key, fmt="iso", release=OLD_RELEASE)
    assert old.release == OLD_RELEASE
    assert server.requests == []
    with serve(dest) as second:
        again = fetch(second.url, tmp_path / "fresh2", mirror.public_key)
        assert again.files["disk"].read_bytes() == mirror.contents[("x86_64", "metal", "raw.xz", "disk")]
