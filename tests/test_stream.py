"""Stream metadata, release index and release.json: official URL layout, parsing, choosing, writing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from coreos_infra.stream import (
    DEFAULT_BASE_URL,
    ArtifactFile,
    StreamError,
    artifact_filename,
    artifact_url,
    load_release,
    load_release_index,
    load_stream,
    normalize_base_url,
    parse_release,
    parse_release_index,
    parse_stream,
    release_index_url,
    release_metadata_url,
    stream_document,
    stream_url,
    write_mirror,
)

V = "33.20201201.3.0"
PROD = f"{DEFAULT_BASE_URL}/prod/streams/stable/builds/{V}/x86_64"


def art(name: str, *, unc: bool = False) -> dict[str, str]:
    entry = {"location": f"{PROD}/{name}", "signature": f"{PROD}/{name}.sig", "sha256": "ab" * 32}
    if unc:
        entry["uncompressed-sha256"] = "cd" * 32
    return entry


# Shaped like the stream-metadata-go fixture of the 2020 stable stream (values shortened).
OFFICIAL = {
    "stream": "stable",
    "metadata": {"last-modified": "2020-12-17T14:18:43Z", "generator": "fedora-coreos-stream-generator v0"},
    "architectures": {
        "x86_64": {
            "artifacts": {
                "metal": {
                    "release": V,
                    "formats": {
                        "raw.xz": {"disk": art(f"fedora-coreos-{V}-metal.x86_64.raw.xz", unc=True)},
                        "4k.raw.xz": {"disk": art(f"fedora-coreos-{V}-metal4k.x86_64.raw.xz")},
                        "iso": {"disk": art(f"fedora-coreos-{V}-live.x86_64.iso")},
                        "pxe": {
                            "kernel": art(f"fedora-coreos-{V}-live-kernel-x86_64"),
                            "initramfs": art(f"fedora-coreos-{V}-live-initramfs.x86_64.img"),
                            "rootfs": art(f"fedora-coreos-{V}-live-rootfs.x86_64.img"),
                        },
                    },
                },
                "qemu": {
                    "release": V,
                    "formats": {"qcow2.xz": {"disk": art(f"fedora-coreos-{V}-qemu.x86_64.qcow2.xz")}},
                },
            },
            "images": {"aws": {"regions": {"us-east-1": {"release": V, "image": "ami-0"}}}},
        }
    },
}


def test_official_url_layout() -> None:
    assert DEFAULT_BASE_URL == "https://builds.coreos.fedoraproject.org"
    assert (
        stream_url(DEFAULT_BASE_URL, "stable")
        == "https://builds.coreos.fedoraproject.org/streams/stable.json"
    )
    assert release_index_url(DEFAULT_BASE_URL + "/", "testing") == (
        "https://builds.coreos.fedoraproject.org/prod/streams/testing/releases.json"
    )
    assert release_metadata_url(DEFAULT_BASE_URL, "stable", V) == (
        f"https://builds.coreos.fedoraproject.org/prod/streams/stable/builds/{V}/release.json"
    )
    assert artifact_url(DEFAULT_BASE_URL, "stable", V, "x86_64", "a b") == f"{PROD}/a%20b"


@pytest.mark.parametrize(
    ("platform", "fmt", "role", "name"),
    [
        ("metal", "raw.xz", "disk", "fedora-coreos-41.1-metal.x86_64.raw.xz"),
        ("metal", "4k.raw.xz", "disk", "fedora-coreos-41.1-metal4k.x86_64.raw.xz"),
        ("metal", "iso", "disk", "fedora-coreos-41.1-live-iso.x86_64.iso"),
        ("metal", "pxe", "kernel", "fedora-coreos-41.1-live-kernel.x86_64"),
        ("metal", "pxe", "initramfs", "fedora-coreos-41.1-live-initramfs.x86_64.img"),
        ("metal", "pxe", "rootfs", "fedora-coreos-41.1-live-rootfs.x86_64.img"),
        ("qemu", "qcow2.xz", "disk", "fedora-coreos-41.1-qemu.x86_64.qcow2.xz"),
    ],
)
def test_official_file_names(platform: str, fmt: str, role: str, name: str) -> None:
    assert artifact_filename("41.1", "x86_64", platform, fmt, role) == name


def test_base_url_forms(tmp_path: Path) -> None:
    assert normalize_base_url("http://mirror.lan:8080/fcos/") == "http://mirror.lan:8080/fcos"
    assert normalize_base_url("file:///srv/mirror/") == "file:///srv/mirror"
    assert normalize_base_url(str(tmp_path)) == tmp_path.as_uri()
    for bad in ("ftp://x/", "file://host/x", "https://"):
        with pytest.raises(StreamError):
            normalize_base_url(bad)
    for bad_stream in ("../etc", "a/b", "", "st able"):
        with pytest.raises(StreamError, match="invalid stream name"):
            stream_url(DEFAULT_BASE_URL, bad_stream)


def test_parse_official_stream() -> None:
    s = parse_stream(json.dumps(OFFICIAL).encode(), stream_url(DEFAULT_BASE_URL, "stable"))
    assert s.name == "stable" and s.last_modified == "2020-12-17T14:18:43Z"
    assert s.arches() == ["x86_64"]
    assert s.platforms("x86_64") == ["metal", "qemu"]
    assert s.formats("x86_64", "metal") == ["4k.raw.xz", "iso", "pxe", "raw.xz"]
    assert s.release("x86_64", "metal") == V
    disk = s.artifact("x86_64", "metal", "raw.xz")["disk"]
    assert disk.location == f"{PROD}/fedora-coreos-{V}-metal.x86_64.raw.xz"
    assert disk.signature == disk.location + ".sig"
    assert disk.sha256 == "ab" * 32 and disk.uncompressed_sha256 == "cd" * 32 and disk.size is None
    assert disk.name == f"fedora-coreos-{V}-metal.x86_64.raw.xz"
    pxe = s.artifact("x86_64", "metal", "pxe")
    assert sorted(pxe) == ["initramfs", "kernel", "rootfs"]
    assert s.artifact("x86_64", "metal", "iso")["disk"].uncompressed_sha256 is None


def test_official_locations_move_to_the_mirror() -> None:
    base = "http://10.0.0.5/fcos"
    s = parse_stream(json.dumps(OFFICIAL).encode(), stream_url(base, "stable"), base_url=base)
    disk = s.artifact("x86_64", "qemu", "qcow2.xz")["disk"]
    assert (
        disk.location
        == f"{base}/prod/streams/stable/builds/{V}/x86_64/fedora-coreos-{V}-qemu.x86_64.qcow2.xz"
    )
    assert disk.signature == disk.location + ".sig"
    # Locations elsewhere stay as they are; relative ones resolve against the document.
    doc = json.loads(json.dumps(OFFICIAL))
    iso = doc["architectures"]["x86_64"]["artifacts"]["metal"]["formats"]["iso"]["disk"]
    iso["location"] = "https://other.example/x.iso"
    pxe = doc["architectures"]["x86_64"]["artifacts"]["metal"]["formats"]["pxe"]["kernel"]
    pxe["location"] = "../prod/k"
    pxe["signature"] = "../prod/k.sig"
    s = parse_stream(json.dumps(doc).encode(), stream_url(base, "stable"), base_url=base)
    assert s.artifact("x86_64", "metal", "iso")["disk"].location == "https://other.example/x.iso"
    assert s.artifact("x86_64", "metal", "pxe")["kernel"].location == f"{base}/prod/k"


def test_clear_errors_for_unknown_choices() -> None:
    src = "https://builds.coreos.fedoraproject.org/streams/stable.json"
    s = parse_stream(json.dumps(OFFICIAL).encode(), src)
    with pytest.raises(
        StreamError, match=r"stable\.json: architectures: no architecture 'ppc64le' \(available: x86_64\)"
    ):
        s.artifact("ppc64le", "metal", "iso")
    with pytest.raises(
        StreamError, match=r"artifacts: no platform 'azure' for x86_64 \(available: metal, qemu\)"
    ):
        s.artifact("x86_64", "azure", "vhd.xz")
    with pytest.raises(
        StreamError,
        match=r"metal\.formats: no format 'qcow2\.xz' \(available: 4k\.raw\.xz, iso, pxe, raw\.xz\)",
    ):
        s.artifact("x86_64", "metal", "qcow2.xz")


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.pop("architectures"), r"no 'architectures'"),
        (lambda d: d.update(architectures=[]), r"architectures: expected dict, got list"),
        (
            lambda d: d["architectures"]["x86_64"]["artifacts"]["metal"]["formats"]["iso"]["disk"].pop(
                "location"
            ),
            r"architectures\.x86_64\.artifacts\.metal\.formats\.iso\.disk: no 'location'",
        ),
        (
            lambda d: d["architectures"]["x86_64"]["artifacts"]["metal"]["formats"]["iso"]["disk"].update(
                sha256="xyz"
            ),
            r"formats\.iso\.disk\.sha256: sha256 must be 64 hex digits",
        ),
        (
            lambda d: d["architectures"]["x86_64"]["artifacts"]["metal"]["formats"].update(iso={}),
            r"formats\.iso: format lists no artifacts",
        ),
    ],
)
def test_malformed_stream(mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    doc = json.loads(json.dumps(OFFICIAL))
    mutate(doc)
    with pytest.raises(StreamError, match=message):
        parse_stream(json.dumps(doc).encode(), "stable.json").artifact("x86_64", "metal", "iso")


def test_invalid_json_names_the_line() -> None:
    with pytest.raises(StreamError, match=r"^s\.json:3: not valid JSON"):
        parse_stream(b'{\n"stream": "stable",\n,}', "s.json")
    with pytest.raises(StreamError, match="expected a JSON object"):
        parse_stream(b"[]", "s.json")


def test_release_index_and_release() -> None:
    index = {
        "note": "For use only by Fedora CoreOS internal tooling.",
        "releases": [
            {"commits": [{"architecture": "x86_64", "checksum": "c1"}], "version": "32.1",
             "metadata": f"{DEFAULT_BASE_URL}/prod/streams/stable/builds/32.1/release.json"},
            {"commits": [{"architecture": "x86_64", "checksum": "c2"},
                         {"architecture": "aarch64", "checksum": "c3"}],
             "version": V, "metadata": f"{DEFAULT_BASE_URL}/prod/streams/stable/builds/{V}/release.json"},
        ],
        "metadata": {"last-modified": "2020-12-17T14:18:43Z"},
        "stream": "stable",
    }  # fmt: skip
    base = "file:///srv/m"
    ri = parse_release_index(json.dumps(index).encode(), release_index_url(base, "stable"), base_url=base)
    assert [r.version for r in ri.releases] == ["32.1", V]
    assert ri.latest.version == V and ri.latest.architectures == ("x86_64", "aarch64")
    assert ri.find("32.1").metadata == "file:///srv/m/prod/streams/stable/builds/32.1/release.json"
    with pytest.raises(StreamError, match=r"release '31\.0' is not in the release index.*most recent: " + V):
        ri.find("31.0")
    release = {
        "release": V,
        "stream": "stable",
        "metadata": {"last-modified": "2020-12-17T14:18:43Z"},
        "architectures": {
            "x86_64": {
                "commit": "c2",
                "media": {
                    "metal": {
                        "artifacts": OFFICIAL["architectures"]["x86_64"]["artifacts"]["metal"]["formats"]
                    }
                },  # type: ignore[index]
            }
        },
    }
    r = parse_release(json.dumps(release).encode(), release_metadata_url(base, "stable", V), base_url=base)
    assert r.version == V
    assert r.artifact("x86_64", "metal", "pxe")["rootfs"].location.startswith(
        f"{base}/prod/streams/stable/builds/{V}/"
    )
    with pytest.raises(StreamError, match=r"architectures\.x86_64\.media: no platform 'qemu'"):
        r.artifact("x86_64", "qemu", "qcow2.xz")


def _files(tmp: Path, release: str, arches: tuple[str, ...] = ("x86_64",)) -> list[ArtifactFile]:
    out = []
    for arch in arches:
        for fmt, role in (("iso", "disk"), ("pxe", "kernel"), ("pxe", "initramfs"), ("pxe", "rootfs")):
            name = artifact_filename(release, arch, "metal", fmt, role)
            p = tmp / release / name
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(f"{release} {arch} {role}".encode())
            out.append(ArtifactFile(arch, "metal", fmt, role, p))
    return out


def test_writer_round_trip(tmp_path: Path) -> None:
    root = tmp_path / "mirror"
    signed: list[Path] = []

    def signer(path: Path) -> Path:
        sig = path.with_name(path.name + ".sig")
        sig.write_bytes(b"sig")
        signed.append(path)
        return sig

    write_mirror(root, "stable", "41.2", _files(tmp_path, "41.2"), signer=signer)
    write_mirror(root, "stable", "41.10", _files(tmp_path, "41.10", ("x86_64", "aarch64")), signer=signer)
    write_mirror(root, "stable", "41.3", _files(tmp_path, "41.3"), signer=signer, promote=False)
    assert len(signed) == 16
    s = load_stream(root.as_uri(), "stable")
    assert s.release("x86_64", "metal") == "41.10", "promote=False does not move the stream back"
    assert s.arches() == ["aarch64", "x86_64"]
    iso = s.artifact("x86_64", "metal", "iso")["disk"]
    assert (
        iso.location
        == f"{root.as_uri()}/prod/streams/stable/builds/41.10/x86_64/fedora-coreos-41.10-live-iso.x86_64.iso"
    )
    assert Path(iso.location.removeprefix("file://")).read_bytes() == b"41.10 x86_64 disk"
    assert iso.signature == iso.location + ".sig"
    index = load_release_index(root.as_uri(), "stable")
    assert [r.version for r in index.releases] == ["41.2", "41.3", "41.10"], "oldest first, numerically"
    old = load_release(root.as_uri(), "stable", "41.2").artifact("x86_64", "metal", "pxe")
    assert Path(old["kernel"].location.removeprefix("file://")).read_bytes() == b"41.2 x86_64 kernel"
    raw = json.loads((root / "streams" / "stable.json").read_text())
    assert raw["architectures"]["x86_64"]["artifacts"]["metal"]["formats"]["iso"]["disk"][
        "location"
    ].startswith(DEFAULT_BASE_URL + "/prod/streams/stable/builds/41.10/"), (
        "written like the official document"
    )


def test_stream_document_options(tmp_path: Path) -> None:
    files = _files(tmp_path, "41.2")
    doc = stream_document("next", "41.2", files, base_url="http://m", signed=False, with_sizes=True,
                          last_modified="2026-01-01T00:00:00Z")  # fmt: skip
    entry = doc["architectures"]["x86_64"]["artifacts"]["metal"]["formats"]["pxe"]["kernel"]
    assert "signature" not in entry
    assert entry["size"] == len(b"41.2 x86_64 kernel")
    assert (
        entry["location"]
        == "http://m/prod/streams/next/builds/41.2/x86_64/fedora-coreos-41.2-live-kernel.x86_64"
    )
    parsed = parse_stream(json.dumps(doc).encode(), "http://m/streams/next.json", base_url="http://m")
    ref = parsed.artifact("x86_64", "metal", "pxe")["kernel"]
    assert ref.size == entry["size"] and ref.signature is None
