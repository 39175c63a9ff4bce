"""S3-compatible object storage: the only module that imports boto3.

Where the store is comes from the environment only (`AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL`
for MinIO/moto/any S3-compatible server, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
`AWS_DEFAULT_REGION`, optionally `AWS_MAX_ATTEMPTS`); params.yaml never names an endpoint.
Throttling, 5xx and dropped connections are retried by botocore ("standard" mode). Every failure
becomes a one-line `StorageError` naming the bucket and endpoint and the fix; credentials are
never part of a message (messages pass through `xferlib.secrets.redact`).
"""

from __future__ import annotations

import functools
import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from xferlib import env
from xferlib.secrets import redact

MULTIPART_THRESHOLD = 8 * 1024 * 1024  # S3's usual part size; below it one PUT is cheaper
_DEFAULT_ATTEMPTS = 5


class StorageError(RuntimeError):
    """An object-store operation failed; the message names the bucket, endpoint and the fix."""

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))


class ObjectNotFound(StorageError, FileNotFoundError):
    """The bucket exists but the key does not."""


def is_s3_uri(uri: str | os.PathLike[str]) -> bool:
    """True for `s3://...` strings (local paths and other schemes are False)."""
    return isinstance(uri, str) and uri.startswith("s3://")


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """Split `s3://bucket/key/parts` into `("bucket", "key/parts")`; the key may be empty."""
    if not is_s3_uri(uri):
        raise StorageError(f"not an S3 URI: {uri!r}; use s3://BUCKET/KEY")
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket:
        raise StorageError(f"S3 URI {uri!r} has no bucket; use s3://BUCKET/KEY")
    return bucket, key


def endpoint_url() -> str | None:
    """The S3 endpoint from the environment (None = AWS itself)."""
    return env.s3_endpoint()


def read_bytes(uri: str) -> bytes:
    """The whole object at `uri`."""
    bucket, key = parse_s3_uri(uri)
    with _errors("read", bucket, key):
        return _client().get_object(Bucket=bucket, Key=key)["Body"].read()


def write_bytes(uri: str, data: bytes) -> None:
    """Store `data` at `uri`; readers see the old object or the new one, never a part.

    A single PUT (or a completed multipart upload, used above MULTIPART_THRESHOLD) is atomic in S3.
    """
    bucket, key = parse_s3_uri(uri)
    with _errors("write", bucket, key):
        if len(data) < MULTIPART_THRESHOLD:
            _client().put_object(Bucket=bucket, Key=key, Body=data)
        else:
            _client().upload_fileobj(io.BytesIO(data), bucket, key, Config=_transfer_config())


def read_with_etag(uri: str) -> tuple[bytes, str]:
    """The object at `uri` and its ETag (the token `write_if` compares against)."""
    bucket, key = parse_s3_uri(uri)
    with _errors("read", bucket, key):
        got = _client().get_object(Bucket=bucket, Key=key)
        return got["Body"].read(), str(got["ETag"])


def write_if(uri: str, data: bytes, etag: str | None) -> bool:
    """Conditional PUT: replace the object only while its ETag is still `etag`, or with `etag`
    None create it only if absent (S3's If-Match / If-None-Match). False when another writer got
    there first (412 Precondition Failed, 409 ConditionalRequestConflict); the caller re-reads."""
    from botocore.exceptions import ClientError

    bucket, key = parse_s3_uri(uri)
    cond = {"IfNoneMatch": "*"} if etag is None else {"IfMatch": etag}
    with _errors("write", bucket, key):
        try:
            _client().put_object(Bucket=bucket, Key=key, Body=data, **cond)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _LOST_RACE:
                return False
            raise
    return True


_LOST_RACE = {"PreconditionFailed", "ConditionalRequestConflict"}


def upload_file(path: str | os.PathLike[str], uri: str) -> None:
    """Upload a local file; multipart (parallel parts) above MULTIPART_THRESHOLD."""
    bucket, key = parse_s3_uri(uri)
    if not Path(path).is_file():
        raise StorageError(f"cannot upload {path}: no such file")
    with _errors("upload", bucket, key):
        _client().upload_file(str(path), bucket, key, Config=_transfer_config())


def download_file(uri: str, path: str | os.PathLike[str]) -> None:
    """Download to `path` (parents created); s3transfer writes a temp file and renames it."""
    bucket, key = parse_s3_uri(uri)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    try:
        with _errors("download", bucket, key):
            _client().download_file(bucket, key, str(path), Config=_transfer_config())
    except ObjectNotFound:
        _check_bucket(bucket)  # s3transfer's HEAD says a bare 404 for a missing bucket too
        raise


def list_uris(prefix: str) -> list[str]:
    """Every object URI under `prefix` (a plain key prefix, not a glob), sorted."""
    bucket, key_prefix = parse_s3_uri(prefix)
    out: list[str] = []
    with _errors("list", bucket, key_prefix):
        pages = (
            _client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key_prefix)
        )
        for page in pages:
            out += [f"s3://{bucket}/{obj['Key']}" for obj in page.get("Contents", [])]
    return sorted(out)


def exists(uri: str) -> bool:
    """Whether the object exists; a missing *bucket* is an error, not False."""
    bucket, key = parse_s3_uri(uri)
    try:
        with _errors("check", bucket, key):
            _client().head_object(Bucket=bucket, Key=key)
        return True
    except ObjectNotFound:
        _check_bucket(bucket)  # HEAD answers a bare 404 for a missing bucket too
        return False


def create_bucket(bucket: str) -> None:
    """Create `bucket` if it does not exist (for demos and tests; production uses terraform)."""
    try:
        _check_bucket(bucket)
        return
    except StorageError as exc:
        if "does not exist" not in str(exc):
            raise
    region = _region()
    extra: dict[str, Any] = {}
    if region != "us-east-1":  # S3 rejects an explicit us-east-1 location constraint
        extra["CreateBucketConfiguration"] = {"LocationConstraint": region}
    with _errors("create", bucket, ""):
        _client().create_bucket(Bucket=bucket, **extra)


def _check_bucket(bucket: str) -> None:
    with _errors("check", bucket, ""):
        _client().head_bucket(Bucket=bucket)


def delete(uri: str) -> None:
    """Delete one object (deleting a missing key is not an error in S3)."""
    bucket, key = parse_s3_uri(uri)
    with _errors("delete", bucket, key):
        _client().delete_object(Bucket=bucket, Key=key)


def _client() -> Any:
    """A boto3 S3 client for the current environment (cached per endpoint + credentials)."""
    key_id, secret, token = env.aws_credentials()
    return _cached_client(endpoint_url(), _region(), key_id, secret, token, _max_attempts())


@functools.lru_cache(maxsize=8)
def _cached_client(
    endpoint: str | None,
    region: str,
    key_id: str | None,
    secret: str | None,
    token: str | None,
    attempts: int,
) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"mode": "standard", "max_attempts": attempts},
        connect_timeout=5,
        read_timeout=60,
        # Path-style addressing: MinIO/moto behind a plain host name have no bucket subdomains.
        s3={"addressing_style": "path" if endpoint else "auto"},
    )
    session = boto3.session.Session(
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        aws_session_token=token,
        region_name=region,
    )
    return session.client("s3", endpoint_url=endpoint, config=config)


def _region() -> str:
    return env.aws_region()


def _max_attempts() -> int:
    raw = env.aws_max_attempts() or ""
    return int(raw) if raw.isdigit() and int(raw) > 0 else _DEFAULT_ATTEMPTS


def _transfer_config() -> Any:
    from boto3.s3.transfer import TransferConfig

    # Two parallel parts: these machines have two cores, and S3 throughput per part is the limit.
    return TransferConfig(
        multipart_threshold=MULTIPART_THRESHOLD,
        multipart_chunksize=MULTIPART_THRESHOLD,
        max_concurrency=2,
    )


@contextmanager
def _errors(op: str, bucket: str, key: str) -> Iterator[None]:
    """Translate botocore/boto3 exceptions into one-line StorageErrors."""
    from boto3.exceptions import S3UploadFailedError
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    try:
        yield
    except ClientError as exc:
        raise _client_error(op, bucket, key, exc) from None
    except S3UploadFailedError as exc:
        raise _upload_error(op, bucket, key, exc) from None
    except NoCredentialsError:
        raise StorageError(
            f"no S3 credentials for bucket '{bucket}' at endpoint {_where()}; "
            "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        ) from None
    except BotoCoreError as exc:
        raise _connection_error(op, bucket, exc) from None


def _where() -> str:
    return endpoint_url() or "AWS S3 (no AWS_ENDPOINT_URL set)"


def _client_error(op: str, bucket: str, key: str, exc: Any) -> StorageError:
    err = exc.response.get("Error", {})
    code = str(err.get("Code", ""))
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    where = _where()
    if code == "NoSuchBucket" or (code in {"404", "NotFound"} and not key):
        return StorageError(
            f"bucket '{bucket}' does not exist at endpoint {where}; create it or fix the URI"
        )
    if code in {"NoSuchKey", "404", "NotFound"}:
        return ObjectNotFound(f"s3://{bucket}/{key} not found at endpoint {where}; check the key")
    if code in _AUTH_CODES or status == 403:
        return StorageError(
            f"access to bucket '{bucket}' at endpoint {where} denied ({code or status}); "
            "check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and the bucket policy"
        )
    detail = str(err.get("Message") or code)
    return StorageError(f"S3 {op} s3://{bucket}/{key} failed at endpoint {where}: {code} {detail}")


_AUTH_CODES = {
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidClientTokenId",
    "ExpiredToken",
    "403",
    "Forbidden",
}


def _upload_error(op: str, bucket: str, key: str, exc: Exception) -> StorageError:
    """s3transfer wraps ClientErrors in S3UploadFailedError: recover the code from its text."""
    text = str(exc)
    for code in ("NoSuchBucket", *_AUTH_CODES):
        if f"({code})" in text:
            fake = type("E", (), {"response": {"Error": {"Code": code}}})()
            return _client_error(op, bucket, key, fake)
    return StorageError(f"S3 {op} s3://{bucket}/{key} failed at endpoint {_where()}: {text}")


def _connection_error(op: str, bucket: str, exc: Exception) -> StorageError:
    name = type(exc).__name__
    return StorageError(
        f"cannot reach S3 endpoint {_where()} for bucket '{bucket}' after {_max_attempts()} "
        f"attempts ({name}); start the server or fix AWS_ENDPOINT_URL"
    )


def clear_client_cache() -> None:
    """Forget cached clients (after rotating credentials in-process)."""
    _cached_client.cache_clear()
