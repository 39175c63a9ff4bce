"""The S3 part of infra/'s init step (infra/s3/init_bucket.py, compose service `s3-init`) run as
compose runs it, a separate process with only the environment compose gives it, against a real
S3 HTTP API (moto's server: no SeaweedFS installs here)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from s3_fixtures import S3Server

pytestmark = pytest.mark.integration

SCRIPT = Path(__file__).resolve().parents[2] / "infra" / "s3" / "init_bucket.py"


def _run(s3: S3Server, bucket: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "AWS_ENDPOINT_URL": s3.endpoint,
        "AWS_ACCESS_KEY_ID": s3.access_key,
        "AWS_SECRET_ACCESS_KEY": s3.secret_key,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "XFER_BUCKET": bucket,
    }
    return subprocess.run(
        [sys.executable, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60
    )


def test_s3_init_creates_a_versioned_bucket_and_a_rerun_keeps_its_objects(
    s3_server: S3Server,
) -> None:
    import boto3

    bucket = f"xfer-init-{uuid.uuid4().hex[:8]}"
    first = _run(s3_server, bucket)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == f"bucket {bucket}: versioning Enabled"

    s3 = boto3.client(
        "s3",
        endpoint_url=s3_server.endpoint,
        aws_access_key_id=s3_server.access_key,
        aws_secret_access_key=s3_server.secret_key,
        region_name="us-east-1",
    )
    s3.put_object(Bucket=bucket, Key="dvc/files/md5/ab/cd", Body=b"v1")
    s3.put_object(Bucket=bucket, Key="dvc/files/md5/ab/cd", Body=b"v2")
    versions = s3.list_object_versions(Bucket=bucket, Prefix="dvc/")["Versions"]
    assert len(versions) == 2  # an overwritten object stays recoverable

    again = _run(s3_server, bucket)  # compose runs it on every `up`
    assert again.returncode == 0, again.stderr
    body = s3.get_object(Bucket=bucket, Key="dvc/files/md5/ab/cd")["Body"].read()
    assert body == b"v2"


def test_s3_init_refuses_without_a_bucket_name(s3_server: S3Server) -> None:
    done = _run(s3_server, "")
    assert done.returncode != 0 and "XFER_BUCKET" in done.stderr
