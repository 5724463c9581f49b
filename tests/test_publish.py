"""invoke publish / prune to the local directory store, with real builds and real gpg."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest
from publish_testlib import ensure_builds, fake_build, invoke

from coreos_infra.errors import CoreosInfraError
from coreos_infra.publish import layout
from coreos_infra.publish.localstore import LocalStore
from coreos_infra.publish.prune import prune
from coreos_infra.publish.publish import PublishOptions, publish
from coreos_infra.publish.s3store import part_size
from coreos_infra.publish.store import open_store
from coreos_infra.stream import parse_stream

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_builds(("metal", "pxe"), tmp_path_factory.mktemp("builds"))


@pytest.fixture(scope="module")
def published(builds: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:  # type: ignore[type-arg]
    store = tmp_path_factory.mktemp("store")
    reports = publish(PublishOptions(root=ROOT, store=str(store), build_root=builds))
    return store, reports


def _meta(builds: Path, target: str) -> dict:  # type: ignore[type-arg]
    return json.loads(next((builds / target).glob("*/meta.json")).read_text())


def test_layout_keys_and_refusals() -> None:
    assert layout.latest("lab", "dns1", "rpi4") == "sites/lab/dns1/rpi4/latest.json"
    assert layout.stream("lab", "dns1") == "streams/lab-dns1.json"
    assert layout.sums_signature("lab", "h", "t", "b") == "sites/lab/h/t/b/SHA256SUMS.sig"
    for bad in ("..", "a/b", ".hidden", "", "a b"):
        with pytest.raises(CoreosInfraError):
            layout.public_key(bad)


def test_part_size_scales_with_the_file() -> None:
    assert part_size(20 << 20) == 8 << 20
    assert part_size(1 << 30) == 64 << 20
    assert part_size(100 << 30) == 512 << 20
    assert -(-(10 << 40) // part_size(10 << 40)) <= 10_000


def test_local_store_roundtrip_and_sidecar_out_of_the_tree(tmp_path: Path) -> None:
    store = open_store(str(tmp_path))
    src = tmp_path / "src"
    src.write_bytes(b"x" * 1000)
    store.put_file(
        "a/b.bin", src, sha256="ab" * 32, content_type="application/octet-stream", cache_control="c"
    )
    info = store.head("a/b.bin")
    assert info is not None and info.size == 1000 and info.sha256 == "ab" * 32
    assert [i.key for i in store.list("")] == ["a/b.bin", "src"]
    with pytest.raises(CoreosInfraError, match="no object 'missing'"):
        store.get_bytes("missing")
    with pytest.raises(CoreosInfraError):
        store.head("../etc/passwd")
    with pytest.raises(CoreosInfraError, match="presigned"):
        store.presign("a/b.bin", 60)
    # A file replaced behind the store's back has no known sha256 (so it is uploaded again).
    (tmp_path / "a" / "b.bin").write_bytes(b"y" * 999)
    assert store.head("a/b.bin").sha256 is None  # type: ignore[union-attr]


def test_publish_local_layout_signatures_and_indexes(published: tuple[Path, list], builds: Path) -> None:  # type: ignore[type-arg]
    store_dir, reports = published
    (report,) = reports
    assert report.signed and report.site == "lab"
    index = json.loads((store_dir / "sites/lab/index.json").read_text())
    assert index["format"] == 1 and index["site"] == "lab"
    targets = index["hosts"]["dns1"]["targets"]
    assert set(targets) == {"metal", "pxe"}
    for target in ("metal", "pxe"):
        meta = _meta(builds, target)
        entry = targets[target]["builds"][0]
        assert targets[target]["latest"] == meta["build_id"] == entry["build_id"]
        assert entry["base_release"] == meta["base_release"] and entry["arch"] == "x86_64"
        names = {f["name"]: f for f in entry["files"]}
        for art in meta["artifacts"]:
            if art["name"] == "SHA256SUMS":
                continue
            f = names[art["name"]]
            path = store_dir / f["key"]
            assert path.stat().st_size == art["size"] == f["size"]
            assert hashlib.sha256(path.read_bytes()).hexdigest() == art["sha256"] == f["sha256"]
            assert (store_dir / f["signature"]).is_file()
        latest = json.loads((store_dir / layout.latest("lab", "dns1", target)).read_text())
        assert latest == {"build_id": meta["build_id"], "meta": entry["meta"]}
        sums_dir = (store_dir / entry["sums"]).parent
        r = subprocess.run(["sha256sum", "-c", "--strict", "SHA256SUMS"], cwd=sums_dir, capture_output=True)
        assert r.returncode == 0, r.stderr
    # Real gpgv over the signed SHA256SUMS and one artifact, with the published key.
    keyring = store_dir.parent / "lab.gpg"
    subprocess.run(["gpg", "--dearmor", "-o", keyring, store_dir / "keys/lab.asc"], check=True)
    entry = targets["metal"]["builds"][0]
    for key in (entry["sums"], entry["files"][0]["key"]):
        r = subprocess.run(["gpgv", "--keyring", keyring, store_dir / (key + ".sig"), store_dir / key],
                           capture_output=True)  # fmt: skip
        assert r.returncode == 0, r.stderr
    # The sidecars stay under a dot-directory: the published tree is what a web server serves.
    assert not [p for p in store_dir.rglob("*") if p.is_file() and ".store-meta" not in p.parts
                and p.suffix == ".tmp"]  # fmt: skip
    assert (store_dir / "index.html").read_text().count(entry["build_id"]) >= 1


def test_stream_document_is_fcos_compatible(published: tuple[Path, list], builds: Path) -> None:  # type: ignore[type-arg]
    store_dir, _ = published
    url = (store_dir / "streams/lab-dns1.json").as_uri()
    stream = parse_stream((store_dir / "streams/lab-dns1.json").read_bytes(), url)
    assert set(stream.platforms("x86_64")) == {"metal", "pxe"}
    disk = stream.artifact("x86_64", "metal", "raw.xz")["disk"]
    meta = _meta(builds, "metal")
    assert disk.sha256 == meta["artifacts"][0]["sha256"]
    assert disk.uncompressed_sha256 == meta["image"]["uncompressed_sha256"]
    assert disk.signature == disk.location + ".sig"
    assert disk.location.startswith("file:///") and Path(disk.location[7:]).is_file()
    pxe = stream.artifact("x86_64", "pxe", "pxe")
    assert set(pxe) == {"kernel", "initramfs", "rootfs"}
    doc = json.loads((store_dir / "streams/lab-dns1.json").read_text())
    assert doc["stream"] == "lab-dns1"


def test_coreos_infra_download_fetches_from_the_store(published: tuple[Path, list], tmp_path: Path) -> None:  # type: ignore[type-arg]
    store_dir, _ = published
    import sys

    cli = str(Path(sys.executable).parent / "coreos-infra")
    r = subprocess.run(
        [cli, "download", "--stream-base-url", str(store_dir), "-s", "lab-dns1", "-a", "x86_64",
         "-p", "metal", "-f", "raw.xz", "--keyring", str(store_dir / "keys/lab.asc"),
         "-C", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "out" / "lab-dns1-metal.raw.xz").is_file()


def test_republish_uploads_nothing(published: tuple[Path, list], builds: Path) -> None:  # type: ignore[type-arg]
    store_dir, _ = published
    before = {p: p.stat().st_mtime_ns for p in store_dir.rglob("*") if p.is_file()}
    (report,) = publish(PublishOptions(root=ROOT, store=str(store_dir), build_root=builds))
    assert report.uploaded == [] and report.bytes_uploaded == 0
    assert {p: p.stat().st_mtime_ns for p in store_dir.rglob("*") if p.is_file()} == before


def test_publish_missing_build_is_a_clear_error(tmp_path: Path) -> None:
    r = invoke("publish", "--target", "nosuchtarget", "--store", str(tmp_path / "s"))
    assert r.returncode == 1
    assert "no build found" in r.stderr and "invoke build" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "s").exists()


def test_unsigned_publish_has_no_signatures(builds: Path, tmp_path: Path) -> None:
    (report,) = publish(PublishOptions(root=ROOT, store=str(tmp_path), build_root=builds, target="metal",
                                       unsigned=True))  # fmt: skip
    assert not report.signed
    assert not list(tmp_path.rglob("*.sig")) and not (tmp_path / "keys").exists()
    entry = json.loads((tmp_path / "sites/lab/index.json").read_text())["hosts"]["dns1"]["targets"]["metal"]
    assert "signature" not in entry["builds"][0]["files"][0] and "sums_signature" not in entry["builds"][0]
    assert "signature" not in json.dumps(json.loads((tmp_path / "streams/lab-dns1.json").read_text()))


def test_content_type_and_cache_control(published: tuple[Path, list]) -> None:  # type: ignore[type-arg]
    store_dir, _ = published
    store = LocalStore(store_dir)
    index = json.loads((store_dir / "sites/lab/index.json").read_text())
    b = index["hosts"]["dns1"]["targets"]["metal"]["builds"][0]
    art = store.metadata(b["files"][0]["key"])
    assert art["content_type"] == "application/x-xz" and "immutable" in str(art["cache_control"])
    assert store.metadata(b["files"][0]["signature"])["content_type"] == "application/pgp-signature"
    idx = store.metadata("sites/lab/index.json")
    assert idx["content_type"] == "application/json" and "max-age=60" in str(idx["cache_control"])
    assert store.metadata(layout.latest("lab", "dns1", "metal"))["cache_control"] == "no-cache"
    assert str(store.metadata("index.html")["content_type"]).startswith("text/html")


def test_prune_keeps_what_indexes_and_latest_point_to(builds: Path, tmp_path: Path) -> None:
    store_dir = tmp_path / "store"
    store = LocalStore(store_dir)
    ids = []
    for n, day in enumerate(("2026-01-01", "2026-02-01", "2026-03-01")):
        bid = f"{n + 1:x}" * 64
        ids.append(bid)
        d = fake_build(builds, tmp_path / f"b{n}", "metal", bid, date=f"{day}T00:00:00Z",
                       payload=f"image {n}\n".encode())  # fmt: skip
        publish(PublishOptions(root=ROOT, store=str(store_dir), build_root=d.parent.parent, unsigned=True))
    t = json.loads((store_dir / "sites/lab/index.json").read_text())["hosts"]["dns1"]["targets"]["metal"]
    assert [b["build_id"] for b in t["builds"]] == ids[::-1] and t["latest"] == ids[2]
    # latest.json points at the oldest build (an operator rolled back): it must survive.
    old_meta = layout.meta("lab", "dns1", "metal", ids[0])
    pointer = json.dumps({"build_id": ids[0], "meta": old_meta}).encode()
    store.put_bytes(layout.latest("lab", "dns1", "metal"), pointer, content_type="application/json",
                    cache_control="no-cache")  # fmt: skip
    dry = prune(store, keep=1, dry_run=True)
    assert dry.removed_builds and (store_dir / layout.meta("lab", "dns1", "metal", ids[1])).is_file()
    report = prune(store, keep=1)
    assert f"lab/dns1/metal/{ids[1]}" in report.removed_builds
    assert not (store_dir / layout.build_prefix("lab", "dns1", "metal", ids[1])).exists()
    assert (store_dir / old_meta).is_file()  # protected by latest.json
    kept = json.loads((store_dir / "sites/lab/index.json").read_text())["hosts"]["dns1"]["targets"]["metal"]
    assert [b["build_id"] for b in kept["builds"]] == [ids[2]]
    for b in kept["builds"]:
        assert (
            all((store_dir / f["key"]).is_file() for f in b["files"]) and (store_dir / b["meta"]).is_file()
        )
    assert ids[1] not in (store_dir / "index.html").read_text()
    # --older-than: nothing younger than the cutoff goes, whatever --keep says.
    assert prune(store, keep=1, older_than_days=36500).removed_builds == []


def test_site_settings_from_the_site_file_and_overrides(tmp_path: Path) -> None:
    from coreos_infra.errors import InputError
    from coreos_infra.publish.settings import resolve, site_settings

    sites = tmp_path / "recipes" / "sites"
    sites.mkdir(parents=True)
    (sites / "x.yaml").write_text(
        "name: x\npublish:\n  store: s3://bucket/pre\n  endpoint_url: http://127.0.0.1:1\n"
        "  signing_key: {gnupg_home: gpg, key_id: ABC}\n  keyring: k.asc\n"
    )
    s = site_settings(tmp_path, "x")
    assert s.store == "s3://bucket/pre" and s.endpoint_url == "http://127.0.0.1:1"
    assert s.signing.gnupg_home == tmp_path / "gpg" and s.signing.key_id == "ABC"
    assert s.keyring == tmp_path / "k.asc"
    o = resolve(tmp_path, "x", store=str(tmp_path / "local"), key_id="DEF")
    assert (
        o.store == str(tmp_path / "local") and o.signing.key_id == "DEF" and o.endpoint_url == s.endpoint_url
    )
    assert site_settings(tmp_path, "none").store.endswith("artifacts/store")
    (sites / "y.yaml").write_text("name: y\npublish:\n  store: s3://b\n  aws_secret_access_key: nope\n")
    with pytest.raises(
        InputError, match=r"recipes/sites/y.yaml:4:3: publish.aws_secret_access_key: unknown key"
    ):
        site_settings(tmp_path, "y")


def test_the_lab_site_loads_with_a_publish_key(tmp_path: Path) -> None:
    from coreos_infra.recipes import load_project

    root = tmp_path / "proj"
    import shutil

    shutil.copytree(ROOT / "recipes", root / "recipes")
    shutil.copytree(ROOT / "overlays", root / "overlays")
    lab = root / "recipes" / "sites" / "lab.yaml"
    lab.write_text(lab.read_text() + "\npublish:\n  store: s3://lab-images\n")
    assert "lab" in load_project(root).sites


def test_publish_with_a_configured_site_key(builds: Path, tmp_path: Path) -> None:
    from coreos_infra import gpg

    home = tmp_path / "g"
    fpr = gpg.generate_key(home, uid="lab site key <lab@example.invalid>")
    try:
        opts = PublishOptions(root=ROOT, store=str(tmp_path / "s"), build_root=builds, target="metal",
                              gnupg_home=str(home), key_id=fpr)  # fmt: skip
        (report,) = publish(opts)
    finally:
        gpg.stop_agent(home)
    assert report.signed
    keyring = tmp_path / "k.gpg"
    keyring.write_bytes(gpg.export_public_key(home, fpr, armor=False))
    assert (tmp_path / "s/keys/lab.asc").read_bytes() == gpg.export_public_key(home, fpr)
    entry = json.loads((tmp_path / "s/sites/lab/index.json").read_text())["hosts"]["dns1"]["targets"][
        "metal"
    ]
    sums = tmp_path / "s" / entry["builds"][0]["sums"]
    r = subprocess.run(["gpgv", "--keyring", keyring, f"{sums}.sig", sums], capture_output=True)
    assert r.returncode == 0, r.stderr
    with pytest.raises(CoreosInfraError, match="no secret key"):
        publish(PublishOptions(root=ROOT, store=str(tmp_path / "s2"), build_root=builds, target="metal",
                               gnupg_home=str(home), key_id="0" * 40))  # fmt: skip
    assert not (tmp_path / "s2").exists()
