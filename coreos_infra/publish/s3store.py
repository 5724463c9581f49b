"""A store in an S3 bucket (AWS or any S3-compatible server) through boto3.

Credentials come from boto3's normal chain (environment, profiles, instance roles); the endpoint from
``endpoint_url`` or ``AWS_ENDPOINT_URL``. Requests use SigV4, path-style addressing, standard retries
with backoff, and checksums only where the protocol requires them (the SHA-256 of every object is
carried in ``x-amz-meta-sha256``, taken from the build's meta.json, so nothing is hashed twice).

Large files go up as multipart uploads whose part size scales with the file (:func:`part_size`), with
parts sent in parallel. An upload that fails is aborted; one that cannot be aborted (the server went
away) is found and aborted by :meth:`S3Store.abort_incomplete` on the next run.

Errors become one-line :class:`CoreosInfraError` messages naming the bucket and key, never a credential.
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import http.client
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote

from coreos_infra.errors import CoreosInfraError
from coreos_infra.publish.store import ObjectInfo, check_key

MiB = 1 << 20
MIN_PART = 8 * MiB
MAX_PART = 512 * MiB
TARGET_PARTS = 16  # enough parts to keep CONCURRENCY connections busy
MAX_PARTS = 10_000
CONCURRENCY = 4
MAX_PRESIGN_S = 7 * 24 * 3600  # SigV4 limit

_ERROR_TEXT = {
    "NoSuchBucket": "bucket does not exist",
    "InvalidAccessKeyId": "the access key is not known to the server (check the S3 credentials)",
    "SignatureDoesNotMatch": "the server rejected the request signature (wrong secret key?)",
    "AccessDenied": "access denied (check the S3 credentials and the bucket policy)",
    "InvalidBucketName": "invalid bucket name",
    "BadDigest": "the server computed a different checksum (the upload was corrupted)",
}


def part_size(size: int) -> int:
    """Multipart part size for a file of ``size`` bytes: size/16 rounded up to a MiB, 8..512 MiB."""
    part = -(-size // TARGET_PARTS)
    part = -(-part // MiB) * MiB
    part = max(MIN_PART, min(MAX_PART, part))
    while -(-size // part) > MAX_PARTS:
        part *= 2
    return part


def _direct_response(body: Any) -> Any:
    """The ``http.client`` response under a botocore body, when its bytes can be read into a buffer as
    they are (no content coding); None otherwise.

    botocore's public ``readinto`` goes through urllib3's ``read(amt)``, which allocates and copies every
    chunk: for a big download that doubled the system time (fresh pages for each buffer). The attributes
    are urllib3's, so a version that lacks them falls back to the public path.
    """
    raw = getattr(body, "_raw_stream", None)
    fp = getattr(raw, "_fp", None)
    if not isinstance(fp, http.client.HTTPResponse) or not callable(getattr(raw, "release_conn", None)):
        return None
    if fp.getheader("Content-Encoding", "identity").lower() not in ("", "identity"):
        return None
    return fp


def _copy_body(body: Any, out: BinaryIO, progress: Callable[[int], None] | None, where: str) -> None:
    """Stream a GET's body to ``out`` through one reused buffer.

    ``out.write`` gets a view of that buffer, valid only during the call. A connection read to its end
    goes back to the pool; one left with unread bytes (the writer stopped early) is closed.
    """
    direct = _direct_response(body)
    readinto = direct.readinto if direct is not None else body.readinto
    buf = memoryview(bytearray(MiB))
    try:
        while n := readinto(buf):
            out.write(buf[:n])
            if progress is not None:
                progress(n)
    except (http.client.HTTPException, OSError) as e:
        raise CoreosInfraError(f"S3 GET {where}: the connection broke: {type(e).__name__}: {e}") from None
    finally:
        if direct is not None and direct.isclosed():
            body._raw_stream.release_conn()
        else:
            body.close()


class S3Store:
    """``s3://bucket/prefix``; keys are relative to the prefix."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        public_base_url: str | None = None,
        concurrency: int = CONCURRENCY,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.url = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self.endpoint_url = endpoint_url
        self.public_base_url = public_base_url.rstrip("/") if public_base_url else None
        self.concurrency = concurrency
        self._client: Any = None

    def __repr__(self) -> str:
        return f"S3Store({self.url})"

    # -- plumbing
    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config

            session = boto3.session.Session()
            config = Config(
                signature_version="s3v4",
                s3={"addressing_style": "path"},
                retries={"max_attempts": 3, "mode": "standard"},
                connect_timeout=10,
                read_timeout=120,
                max_pool_connections=max(10, 2 * self.concurrency),
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            )
            self._client = session.client(
                "s3",
                endpoint_url=self.endpoint_url or None,
                region_name=session.region_name or "us-east-1",
                config=config,
            )
        return self._client

    def _full(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _rel(self, full: str) -> str:
        return full[len(self.prefix) + 1 :] if self.prefix else full

    def _where(self, key: str | None) -> str:
        return f"s3://{self.bucket}/{self._full(key)}" if key else self.url

    @contextlib.contextmanager
    def _errors(self, action: str, key: str | None = None) -> Iterator[None]:
        """Turn botocore/s3transfer failures into one clear line (no credentials, no traceback)."""
        from boto3.exceptions import S3UploadFailedError
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            EndpointConnectionError,
            NoCredentialsError,
            PartialCredentialsError,
        )

        where = self._where(key)
        try:
            yield
        except CoreosInfraError:
            raise
        except ClientError as e:
            raise CoreosInfraError(f"S3 {action} {where}: {self._client_error_text(e)}") from None
        except (NoCredentialsError, PartialCredentialsError):
            raise CoreosInfraError(
                f"S3 {action} {where}: no S3 credentials found",
                hint="set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE",
            ) from None
        except EndpointConnectionError:
            raise CoreosInfraError(
                f"S3 {action} {where}: cannot connect to the S3 endpoint {self._endpoint()}"
            ) from None
        except S3UploadFailedError as e:
            cause = e.__context__
            if isinstance(cause, ClientError):
                text = self._client_error_text(cause)
            elif isinstance(cause, EndpointConnectionError):
                text = f"cannot connect to the S3 endpoint {self._endpoint()}"
            else:
                text = str(e).rsplit(": ", 1)[-1]
            raise CoreosInfraError(f"S3 {action} {where}: {text}") from None
        except BotoCoreError as e:
            raise CoreosInfraError(f"S3 {action} {where}: {type(e).__name__}: {e}") from None

    def _client_error_text(self, e: Any) -> str:
        err = e.response.get("Error", {})
        code = str(err.get("Code", ""))
        status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in _ERROR_TEXT:
            text = _ERROR_TEXT[code]
            if code == "NoSuchBucket":
                text = f"bucket {self.bucket!r} does not exist"
            return text
        if code in ("404", "NotFound"):
            return "not found"
        if code in ("403", "Forbidden"):
            return "access denied (HTTP 403: check the S3 credentials)"
        message = str(err.get("Message", "")).strip()
        return f"{code or status}{': ' + message if message else ''}"

    def _endpoint(self) -> str:
        try:
            return str(self.client.meta.endpoint_url)
        except Exception:  # pragma: no cover - client creation itself failed
            return self.endpoint_url or "(default)"

    # -- bucket
    def check_bucket(self) -> None:
        """A clear error when the bucket is missing or not accessible with these credentials."""
        from botocore.exceptions import ClientError

        with self._errors("access to bucket"):
            try:
                self.client.head_bucket(Bucket=self.bucket)
            except ClientError as e:
                code = str(e.response.get("Error", {}).get("Code", ""))
                if code in ("404", "NoSuchBucket", "NotFound"):
                    raise CoreosInfraError(
                        f"S3 bucket {self.bucket!r} does not exist at {self._endpoint()}",
                        hint="create it, or pass --create-bucket to let publish create it",
                    ) from None
                if code in ("403", "Forbidden"):
                    # HEAD has no body: ask again with a GET to learn why.
                    self.client.list_objects_v2(Bucket=self.bucket, MaxKeys=1)
                raise

    def create_bucket(self) -> None:
        with self._errors("create bucket"):
            self.client.create_bucket(Bucket=self.bucket)

    # -- Store
    def head(self, key: str) -> ObjectInfo | None:
        from botocore.exceptions import ClientError

        with self._errors("HEAD", key):
            try:
                r = self.client.head_object(Bucket=self.bucket, Key=self._full(key))
            except ClientError as e:
                if str(e.response.get("Error", {}).get("Code", "")) in ("404", "NoSuchKey", "NotFound"):
                    return None
                raise
        return ObjectInfo(
            key=key,
            size=int(r["ContentLength"]),
            sha256=r.get("Metadata", {}).get("sha256"),
            last_modified=r["LastModified"],
        )

    def metadata(self, key: str) -> dict[str, object]:
        """Content-Type, Cache-Control and sha256 of ``key`` (empty if it does not exist)."""
        from botocore.exceptions import ClientError

        with self._errors("HEAD", key):
            try:
                r = self.client.head_object(Bucket=self.bucket, Key=self._full(key))
            except ClientError as e:
                if str(e.response.get("Error", {}).get("Code", "")) in ("404", "NoSuchKey", "NotFound"):
                    return {}
                raise
        return {
            "content_type": r.get("ContentType"),
            "cache_control": r.get("CacheControl"),
            "sha256": r.get("Metadata", {}).get("sha256"),
        }

    def put_file(
        self,
        key: str,
        path: Path,
        *,
        sha256: str,
        content_type: str,
        cache_control: str,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        from boto3.s3.transfer import TransferConfig

        size = path.stat().st_size
        part = part_size(size)
        config = TransferConfig(
            multipart_threshold=part,
            multipart_chunksize=part,
            max_concurrency=self.concurrency,
            use_threads=True,
        )
        extra = {"Metadata": {"sha256": sha256}, "ContentType": content_type, "CacheControl": cache_control}
        with self._errors("upload", key):
            self.client.upload_file(
                str(path), self.bucket, self._full(key), ExtraArgs=extra, Config=config, Callback=progress
            )
        info = self.head(key)
        if info is None or info.size != size or info.sha256 != sha256:
            raise CoreosInfraError(f"S3 upload {self._where(key)}: the stored object does not match {path}")

    def put_bytes(self, key: str, data: bytes, *, content_type: str, cache_control: str) -> None:
        import base64

        md5 = base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()
        with self._errors("upload", key):
            self.client.put_object(
                Bucket=self.bucket,
                Key=self._full(key),
                Body=data,
                ContentMD5=md5,
                ContentType=content_type,
                CacheControl=cache_control,
                Metadata={"sha256": hashlib.sha256(data).hexdigest()},
            )

    def get_bytes(self, key: str) -> bytes:
        from botocore.exceptions import ClientError

        with self._errors("GET", key):
            try:
                r = self.client.get_object(Bucket=self.bucket, Key=self._full(key))
            except ClientError as e:
                if str(e.response.get("Error", {}).get("Code", "")) in ("404", "NoSuchKey", "NotFound"):
                    raise CoreosInfraError(f"{self._where(key)}: no object {key!r} in the store") from None
                raise
            data: bytes = r["Body"].read()
        return data

    def read_to(
        self,
        key: str,
        out: BinaryIO,
        *,
        offset: int = 0,
        end: int | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        from botocore.exceptions import ClientError

        args: dict[str, Any] = {"Bucket": self.bucket, "Key": self._full(key)}
        if end is not None:
            args["Range"] = f"bytes={offset}-{end - 1}"
        elif offset:
            args["Range"] = f"bytes={offset}-"
        with self._errors("GET", key):
            try:
                r = self.client.get_object(**args)
            except ClientError as e:
                if str(e.response.get("Error", {}).get("Code", "")) in ("404", "NoSuchKey", "NotFound"):
                    raise CoreosInfraError(f"{self._where(key)}: no object {key!r} in the store") from None
                raise
            _copy_body(r["Body"], out, progress, self._where(key))

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Objects under ``prefix``; ``sha256`` is None (a listing carries no metadata: HEAD for it)."""
        full = f"{self.prefix}/{prefix}" if self.prefix else prefix
        with self._errors("list", None):
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full)
            for page in pages:
                for obj in page.get("Contents", []):
                    yield ObjectInfo(
                        key=self._rel(obj["Key"]),
                        size=int(obj["Size"]),
                        sha256=None,
                        last_modified=obj["LastModified"],
                    )

    def delete(self, keys: Sequence[str]) -> None:
        keys = builtins.list(keys)
        for i in range(0, len(keys), 1000):
            batch = [{"Key": self._full(k)} for k in keys[i : i + 1000]]
            with self._errors("delete", None):
                r = self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
            errors = r.get("Errors") or []
            if errors:
                first = errors[0]
                raise CoreosInfraError(
                    f"S3 delete s3://{self.bucket}/{first.get('Key')}: {first.get('Code')} "
                    f"({len(errors)} object(s) not deleted)"
                )

    def public_url(self, key: str) -> str:
        if self.public_base_url:
            return f"{self.public_base_url}/{quote(key)}"
        return f"{self._endpoint().rstrip('/')}/{self.bucket}/{quote(self._full(key))}"

    def presign(self, key: str, expires_s: int) -> str:
        if not 1 <= expires_s <= MAX_PRESIGN_S:
            raise CoreosInfraError(f"presigned URLs expire after 1 s to 7 days (got {expires_s} s)")
        with self._errors("presign", key):
            url: str = self.client.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": self._full(key)}, ExpiresIn=expires_s
            )
        return url

    # -- housekeeping (not part of the Store protocol)
    def incomplete_uploads(self, prefix: str = "") -> builtins.list[tuple[str, str, datetime]]:
        """(key, upload ID, initiated) of multipart uploads under ``prefix`` that were never completed."""
        full = f"{self.prefix}/{prefix}" if self.prefix else prefix
        found: builtins.list[tuple[str, str, datetime]] = []
        with self._errors("list multipart uploads", None):
            pages = self.client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=full
            )
            for page in pages:
                for up in page.get("Uploads", []) or []:
                    found.append((self._rel(up["Key"]), up["UploadId"], up["Initiated"]))
        return found

    def abort_incomplete(self, prefix: str = "") -> int:
        """Abort the multipart uploads under ``prefix`` that an interrupted run left; return how many."""
        count = 0
        for key, upload_id, _ in self.incomplete_uploads(prefix):
            with self._errors("abort multipart upload", key):
                self.client.abort_multipart_upload(
                    Bucket=self.bucket, Key=self._full(key), UploadId=upload_id
                )
            count += 1
        return count
