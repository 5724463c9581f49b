"""invoke publish / share against a real S3 server (SeaweedFS `weed mini`), faults included. No mocks."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import s3server as s3fixtures
from publish_testlib import INVOKE, ROOT, ensure_builds, fake_build, task_env
from s3server import SECRET_KEY, S3Server

from coreos_infra.publish import layout
from coreos_infra.publish.manifest import find_builds
from coreos_infra.publish.publish import PublishOptions, PublishReport, publish, publish_site
from coreos_infra.publish.s3store import S3Store
from coreos_infra.publish.settings import SigningSettings
from coreos_infra.publish.share import parse_duration, share
from coreos_infra.publish.sign import site_signer

s3server = s3fixtures.s3server  # the fixtures, used by name below
s3env = s3fixtures.s3env


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_builds(("metal", "pxe"), tmp_path_factory.mktemp("builds"))


def run_publish(server: S3Server, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [INVOKE, "publish", *args], cwd=ROOT, env=task_env(**server.env(**env)), capture_output=True,
        text=True, timeout=600,
    )  # fmt: skip


def assert_one_line_error(r: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and SECRET_KEY not in r.stderr + r.stdout
    errors = [line for line in r.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, r.stderr
    for needle in needles:
        assert needle in errors[0], r.stderr


def all_keys(server: S3Server, bucket: str) -> list[str]:
    r = server.client().list_objects_v2(Bucket=bucket)
    return [o["Key"] for o in r.get("Contents", [])]


def count_calls(store: S3Store) -> list[str]:
    calls: list[str] = []
    store.client.meta.events.register("before-call.s3.*", lambda model, **_: calls.append(model.name))
    return calls


def test_publish_to_s3_then_republish_costs_only_reads(s3env: S3Server, builds: Path) -> None:
    bucket = s3env.make_bucket()
    (report,) = publish(PublishOptions(root=ROOT, store=f"s3://{bucket}/images", build_root=builds))
    assert report.signed and report.bytes_uploaded > 20 << 20
    client = s3env.client()
    index = json.loads(client.get_object(Bucket=bucket, Key="images/sites/lab/index.json")["Body"].read())
    for target, t in index["hosts"]["dns1"]["targets"].items():
        b = t["builds"][0]
        for f in b["files"]:
            head = client.head_object(Bucket=bucket, Key="images/" + f["key"])
            assert head["ContentLength"] == f["size"] and head["Metadata"]["sha256"] == f["sha256"]
            assert "immutable" in head["CacheControl"], target
        latest_key = "images/" + layout.latest("lab", "dns1", target)
        latest = json.loads(client.get_object(Bucket=bucket, Key=latest_key)["Body"].read())
        assert latest["build_id"] == t["latest"]
    head = client.head_object(Bucket=bucket, Key="images/streams/lab-dns1.json")
    assert head["ContentType"] == "application/json" and "max-age=60" in head["CacheControl"]
    stream = json.loads(client.get_object(Bucket=bucket, Key="images/streams/lab-dns1.json")["Body"].read())
    loc = stream["architectures"]["x86_64"]["artifacts"]["metal"]["formats"]["raw.xz"]["disk"]["location"]
    assert loc.startswith(f"{s3env.endpoint}/{bucket}/images/sites/lab/dns1/metal/")

    # Re-publish the unchanged builds: no PUT, no multipart, only HEAD/GET/List requests.
    store = S3Store(bucket, "images")
    calls = count_calls(store)
    again = PublishReport(site="lab", store=store.url, signed=True)
    signer = site_signer(ROOT, "lab", SigningSettings())
    try:
        publish_site(store, "lab", find_builds(builds, site="lab", host=None, target=None), signer, again)
    finally:
        signer.close()
    assert again.uploaded == [] and again.unchanged
    assert calls and set(calls) <= {"HeadObject", "GetObject", "ListObjectsV2", "ListMultipartUploads"}, (
        calls
    )


def test_publish_via_invoke_and_faults_are_one_line(s3server: S3Server, builds: Path) -> None:
    bucket = s3server.make_bucket()
    ok = run_publish(s3server, "--store", f"s3://{bucket}", "--build-dir", str(builds), "--target", "metal")
    assert ok.returncode == 0, ok.stderr
    assert f"s3://{bucket}" in ok.stdout and SECRET_KEY not in ok.stdout + ok.stderr
    # Wrong secret, unknown access key, missing bucket, nothing listening: one clear line each.
    r = run_publish(s3server, "--store", f"s3://{bucket}", "--build-dir", str(builds),
                    AWS_SECRET_ACCESS_KEY="not-the-secret")  # fmt: skip
    assert_one_line_error(r, "signature")
    r = run_publish(
        s3server, "--store", f"s3://{bucket}", "--build-dir", str(builds), AWS_ACCESS_KEY_ID="nobody"
    )
    assert_one_line_error(r, "access key")
    r = run_publish(s3server, "--store", "s3://no-such-bucket", "--build-dir", str(builds))
    assert_one_line_error(r, "no-such-bucket", "does not exist")
    assert "--create-bucket" in r.stderr
    names = [b["Name"] for b in s3server.client().list_buckets()["Buckets"]]
    assert "no-such-bucket" not in names  # never created silently
    r = run_publish(s3server, "--store", f"s3://{bucket}", "--build-dir", str(builds),
                    "--endpoint-url", "http://127.0.0.1:9")  # fmt: skip
    assert_one_line_error(r, "cannot connect", "127.0.0.1:9")
    # Asked to, publish creates the bucket.
    r = run_publish(s3server, "--store", "s3://made-by-publish", "--build-dir", str(builds),
                    "--target", "metal", "--create-bucket", "--unsigned")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "sites/lab/index.json" in all_keys(s3server, "made-by-publish")


def test_no_secret_in_any_published_object(s3env: S3Server, builds: Path) -> None:
    bucket = s3env.make_bucket()
    publish(PublishOptions(root=ROOT, store=f"s3://{bucket}", build_root=builds, target="pxe"))
    client = s3env.client()
    for key in all_keys(s3env, bucket):
        body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert SECRET_KEY.encode() not in body, key
        if key.endswith(".json"):
            text = body.decode()
            assert "$6$" not in text and "$y$" not in text and "secret_access" not in text.lower(), key


def test_server_killed_mid_multipart_then_rerun_completes(
    s3server: S3Server, builds: Path, tmp_path: Path
) -> None:
    big = tmp_path / "big"
    fake_build(builds, big, "metal", "b" * 64, date="2026-12-01T00:00:00Z", size=384 << 20)
    bucket = s3server.make_bucket()
    client = s3server.client()
    args = ["--store", f"s3://{bucket}", "--build-dir", str(big), "--unsigned"]
    proc = subprocess.Popen([INVOKE, "publish", *args], cwd=ROOT, env=task_env(**s3server.env()),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not client.list_multipart_uploads(Bucket=bucket).get("Uploads"):
            assert proc.poll() is None and time.monotonic() < deadline, "no multipart upload started"
            time.sleep(0.02)
        time.sleep(0.2)
        s3server.kill()
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    r = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    assert_one_line_error(r, "cannot connect")
    s3server.remove_sockets()
    s3server.start()
    keys = all_keys(s3server, bucket)
    assert "sites/lab/index.json" not in keys and not [k for k in keys if k.endswith("latest.json")]
    assert not [k for k in keys if k.startswith("streams/")]
    leftovers = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert leftovers, "the interrupted multipart upload should still be listed before the re-run"
    again = run_publish(s3server, *args)
    assert again.returncode == 0, again.stderr
    assert "aborted" in again.stderr
    assert not client.list_multipart_uploads(Bucket=bucket).get("Uploads")
    index = json.loads(client.get_object(Bucket=bucket, Key="sites/lab/index.json")["Body"].read())
    (entry,) = index["hosts"]["dns1"]["targets"]["metal"]["builds"]
    present = set(all_keys(s3server, bucket))
    for f in entry["files"]:
        assert f["key"] in present
        head = client.head_object(Bucket=bucket, Key=f["key"])
        assert head["ContentLength"] == f["size"] == 384 << 20 and head["Metadata"]["sha256"] == f["sha256"]


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, b""


def test_share_presigned_url_works_and_tampered_one_is_refused(s3env: S3Server, builds: Path) -> None:
    bucket = s3env.make_bucket()
    publish(PublishOptions(root=ROOT, store=f"s3://{bucket}", build_root=builds, target="metal"))
    store = S3Store(bucket)
    urls = dict(share(store, "lab", "dns1", "metal", expires_s=parse_duration("7d")))
    meta = json.loads(next((builds / "metal").glob("*/meta.json")).read_text())
    name = meta["artifacts"][0]["name"]
    import hashlib

    status, body = _get(urls[name])
    assert status == 200 and hashlib.sha256(body).hexdigest() == meta["artifacts"][0]["sha256"]
    assert _get(store.public_url(store.head("sites/lab/index.json").key))[0] == 403  # type: ignore[union-attr]
    tampered = urls[name].replace("X-Amz-Signature=", "X-Amz-Signature=0")[:-1]
    assert _get(tampered)[0] == 403
    assert _get(urls[name].replace("lab-dns1-metal", "lab-dns1-metaL"))[0] == 403
    # Through the task, too (a subprocess with the same environment).
    r = subprocess.run([INVOKE, "share", "--site", "lab", "--host", "dns1", "--target", "metal", "--store",
                        f"s3://{bucket}", "--expires", "1h"], cwd=ROOT, env=task_env(**s3env.env()),
                       capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0, r.stderr
    line = next(line for line in r.stdout.splitlines() if line.startswith(name))
    assert _get(line.split()[1])[0] == 200 and "X-Amz-Expires=3600" in line


def test_parse_duration() -> None:
    assert parse_duration("7d") == 604800 and parse_duration("90") == 90 and parse_duration("2h") == 7200
    with pytest.raises(Exception, match="invalid duration"):
        parse_duration("soon")


def test_prune_on_s3_removes_old_builds_only(s3env: S3Server, builds: Path, tmp_path: Path) -> None:
    from coreos_infra.publish.prune import prune

    bucket = s3env.make_bucket()
    ids = [f"{n + 1:x}" * 64 for n in range(2)]
    for n, bid in enumerate(ids):
        d = fake_build(builds, tmp_path / f"b{n}", "metal", bid, date=f"2026-0{n + 1}-01T00:00:00Z",
                       payload=f"image {n}\n".encode())  # fmt: skip
        publish(PublishOptions(root=ROOT, store=f"s3://{bucket}/p", build_root=d.parent.parent))
    store = S3Store(bucket, "p")
    report = prune(store, keep=1)
    assert report.removed_builds == [f"lab/dns1/metal/{ids[0]}"]
    keys = [i.key for i in store.list("")]
    assert not [k for k in keys if ids[0] in k]
    assert (
        layout.meta("lab", "dns1", "metal", ids[1]) in keys
        and layout.sums_signature("lab", "dns1", "metal", ids[1]) in keys
    )
    index = json.loads(store.get_bytes("sites/lab/index.json"))
    assert [b["build_id"] for b in index["hosts"]["dns1"]["targets"]["metal"]["builds"]] == [ids[1]]
