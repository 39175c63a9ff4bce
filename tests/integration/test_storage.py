"""xferlib.storage and DVC against a real S3 HTTP API (moto's server on 127.0.0.1).

MinIO cannot be installed here; moto's ThreadedMotoServer speaks the same REST API over HTTP.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from xferlib import storage
from xferlib.env import quiet_environ
from xferlib.storage import ObjectNotFound, StorageError

if TYPE_CHECKING:  # the fixtures come from s3_fixtures via the conftest registration
    from s3_fixtures import S3Server

pytestmark = pytest.mark.integration
DVC = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "dvc"


def test_bytes_round_trip_overwrite_list_and_exists(s3_bucket: str) -> None:
    uri = f"s3://{s3_bucket}/monitoring/dt=2026-11-22/part-0.parquet"
    storage.write_bytes(uri, b"first")
    storage.write_bytes(uri, b"second")
    storage.write_bytes(f"s3://{s3_bucket}/monitoring/dt=2026-11-23/part-0.parquet", b"x")
    storage.write_bytes(f"s3://{s3_bucket}/other/file", b"y")

    assert storage.read_bytes(uri) == b"second"
    assert storage.list_uris(f"s3://{s3_bucket}/monitoring/dt=2026-11-22/") == [uri]
    assert len(storage.list_uris(f"s3://{s3_bucket}/monitoring/")) == 2
    assert storage.exists(uri)
    assert not storage.exists(f"s3://{s3_bucket}/monitoring/nope")


def test_listing_pages_past_a_thousand_keys(s3_bucket: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    uris = [f"s3://{s3_bucket}/many/{i:05d}" for i in range(1001)]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda u: storage.write_bytes(u, b"."), uris))
    assert storage.list_uris(f"s3://{s3_bucket}/many/") == uris


def test_large_file_uploads_in_parts_and_downloads_intact(s3_bucket: str, tmp_path: Path) -> None:
    import boto3

    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(9 * 1024 * 1024))  # > MULTIPART_THRESHOLD (8 MiB)
    uri = f"s3://{s3_bucket}/models/big.bin"
    started = time.monotonic()
    storage.upload_file(src, uri)
    upload_s = time.monotonic() - started
    storage.download_file(uri, tmp_path / "out" / "big.bin")

    got = (tmp_path / "out" / "big.bin").read_bytes()
    assert hashlib.sha256(got).digest() == hashlib.sha256(src.read_bytes()).digest()
    s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    etag = s3.head_object(Bucket=s3_bucket, Key="models/big.bin")["ETag"]
    assert etag.strip('"').endswith("-2"), f"expected a 2-part multipart ETag, got {etag}"
    print(f"9 MiB multipart upload took {upload_s:.2f} s")


def test_large_bytes_are_written_as_multipart_too(s3_bucket: str) -> None:
    data = os.urandom(8 * 1024 * 1024 + 1)
    uri = f"s3://{s3_bucket}/blob"
    storage.write_bytes(uri, data)
    assert storage.read_bytes(uri) == data


def test_missing_bucket_names_bucket_endpoint_and_fix(s3_env: S3Server) -> None:
    expected = (
        f"bucket 'no-such-bucket' does not exist at endpoint {s3_env.endpoint}; "
        "create it or fix the URI"
    )
    for call in (
        lambda: storage.read_bytes("s3://no-such-bucket/k"),
        lambda: storage.write_bytes("s3://no-such-bucket/k", b"1"),
        lambda: storage.list_uris("s3://no-such-bucket/"),
        lambda: storage.exists("s3://no-such-bucket/k"),
    ):
        with pytest.raises(StorageError) as info:
            call()
        assert str(info.value) == expected
        assert s3_env.secret_key not in str(info.value)


def test_missing_key_is_object_not_found(s3_bucket: str, tmp_path: Path) -> None:
    with pytest.raises(ObjectNotFound, match="not found at endpoint"):
        storage.read_bytes(f"s3://{s3_bucket}/absent")
    with pytest.raises(FileNotFoundError):
        storage.download_file(f"s3://{s3_bucket}/absent", tmp_path / "x")


def test_bad_credentials_name_bucket_and_endpoint_but_not_the_secret(
    s3_env: S3Server, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3

    iam = boto3.client("iam", endpoint_url=s3_env.endpoint)
    iam.create_user(UserName="writer")
    key = iam.create_access_key(UserName="writer")["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    wrong = "wrong-" + key["SecretAccessKey"][6:]
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", wrong)
    s3_env.set_auth(True)  # moto now verifies signatures against its IAM users
    try:
        with pytest.raises(StorageError) as info:
            storage.read_bytes(f"s3://{s3_bucket}/k")
    finally:
        s3_env.set_auth(False)
    message = str(info.value)
    assert f"bucket '{s3_bucket}' at endpoint {s3_env.endpoint} denied" in message
    assert "SignatureDoesNotMatch" in message and "AWS_SECRET_ACCESS_KEY" in message
    assert wrong not in message and key["SecretAccessKey"] not in message
    assert "\n" not in message


def test_unreachable_endpoint_fails_after_bounded_retries(
    s3_env: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")
    # The default is 5 attempts (3-19 s measured: botocore's jittered backoff); 2 keeps this quick.
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    started = time.monotonic()
    with pytest.raises(StorageError) as info:
        storage.read_bytes("s3://bucket/key")
    elapsed = time.monotonic() - started
    assert str(info.value).startswith("cannot reach S3 endpoint http://127.0.0.1:9 ")
    assert "after 2 attempts" in str(info.value) and s3_env.secret_key not in str(info.value)
    assert elapsed < 10, f"retries were not bounded: {elapsed:.1f} s"
    print(f"endpoint down: gave up after {elapsed:.1f} s")


def test_no_credentials_is_one_clear_line(
    s3_env: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(StorageError, match="set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"):
        storage.read_bytes("s3://bucket/key")


@pytest.mark.parametrize("bad", ["bucket/key", "s3://", "/local/path", "gs://b/k"])
def test_non_s3_uris_are_rejected_with_the_expected_form(bad: str) -> None:
    with pytest.raises(StorageError, match="s3://BUCKET/KEY"):
        storage.parse_s3_uri(bad)


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _dvc_env(tmp_path: Path) -> dict[str, str]:
    """A subprocess environment without AWS_* so credentials must come from the DVC remote config."""
    env = {k: v for k, v in quiet_environ().items() if not k.startswith("AWS_")}
    env |= {"HOME": str(tmp_path), "GIT_CONFIG_NOSYSTEM": "1"}
    env |= {"GIT_AUTHOR_NAME": "xfer", "GIT_AUTHOR_EMAIL": "xfer@example.invalid"}
    env |= {"GIT_COMMITTER_NAME": "xfer", "GIT_COMMITTER_EMAIL": "xfer@example.invalid"}
    return env


def _configure_remote(repo: Path, bucket: str, s3: S3Server, env: dict[str, str]) -> None:
    _run([str(DVC), "remote", "modify", "s3remote", "endpointurl", s3.endpoint], repo, env)
    for option, value in (("access_key_id", s3.access_key), ("secret_access_key", s3.secret_key)):
        _run([str(DVC), "remote", "modify", "--local", "s3remote", option, value], repo, env)


def test_dvc_push_then_clone_and_pull_through_s3(
    s3_env: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    env, repo = _dvc_env(tmp_path), tmp_path / "repo"
    images = repo / "data" / "images"
    images.mkdir(parents=True)
    files = {f"img{i}.png": os.urandom(2048) for i in range(5)}
    for name, data in files.items():
        (images / name).write_bytes(data)
    _run(["git", "init", "-q", "-b", "main"], repo, env)
    _run([str(DVC), "init", "-q"], repo, env)
    _run([str(DVC), "remote", "add", "-d", "s3remote", f"s3://{s3_bucket}/dvc"], repo, env)
    _configure_remote(repo, s3_bucket, s3_env, env)
    _run([str(DVC), "add", "-q", "data/images"], repo, env)
    _run(["git", "add", "-A"], repo, env)
    _run(["git", "commit", "-q", "-m", "data v1"], repo, env)
    _run([str(DVC), "push", "-q"], repo, env)

    pushed = storage.list_uris(f"s3://{s3_bucket}/dvc/")
    assert len(pushed) == len(files) + 1  # one object per file + the .dir listing
    assert s3_env.secret_key not in (repo / ".dvc" / "config").read_text()  # committed config

    clone = tmp_path / "clone"
    _run(["git", "clone", "-q", str(repo), str(clone)], tmp_path, env)
    _configure_remote(clone, s3_bucket, s3_env, env)  # config.local is not committed
    _run([str(DVC), "pull", "-q"], clone, env)
    for name, data in files.items():
        assert (clone / "data" / "images" / name).read_bytes() == data
    shutil.rmtree(clone)


@pytest.mark.parametrize("how", ["--remote", "XFER_DVC_REMOTE"])
def test_init_with_an_s3_remote_keeps_the_url_and_endpoint_and_ingest_pushes_to_it(
    how: str, s3_bucket: str, s3_env: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PIL import Image

    from xferlib import cli, versioning

    url, wd = f"s3://{s3_bucket}/dvc", tmp_path / "wd"
    for name in ("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):  # DVC's s3fs rejects /dev/null
        (tmp_path / name).write_text("")
        monkeypatch.setenv(name, str(tmp_path / name))
    if how == "--remote":
        assert cli.main(["init", "--workdir", str(wd), "--remote", url]) == 0
    else:  # the default remote from the environment, once mangled by Path() into s3:/bucket/dvc
        monkeypatch.setenv("XFER_DVC_REMOTE", url)
        assert cli.main(["init", "--workdir", str(wd)]) == 0
    config = (wd / ".dvc" / "config").read_text()
    assert f"url = {url}\n" in config and "s3:/" + s3_bucket not in config
    assert versioning.remote_url(wd) == url
    # the endpoint is the environment's (infrastructure): in the uncommitted config.local
    assert s3_env.endpoint not in config
    shown = subprocess.run(
        [versioning._tool("dvc"), "config", f"remote.{versioning.REMOTE_NAME}.endpointurl"],
        cwd=wd, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert shown.stdout.strip() == s3_env.endpoint

    for label in ("cat", "dog"):
        (tmp_path / "src" / label).mkdir(parents=True)
        for i in range(3):
            pixel = (i * 40, 100 if label == "cat" else 200, 7)
            Image.new("RGB", (16, 16), pixel).save(tmp_path / "src" / label / f"{i}.png")
    assert cli.main(["ingest", str(tmp_path / "src"), "--workdir", str(wd)]) == 0
    pushed = storage.list_uris(f"{url}/")
    assert any(u.endswith(".dir") for u in pushed) and len(pushed) >= 3
    assert not list((wd / ".dvcstore").glob("*"))  # nothing went to the local default
