"""The S3 part of the init step: the bucket, versioned (an overwritten DVC object or monitoring
window stays recoverable). Idempotent. Runs with the S3 server's admin identity, in the one-shot
compose service `s3-init` only; workers and MLflow get application keys scoped to this bucket.

    AWS_ENDPOINT_URL=http://s3:8333 AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... \
        XFER_BUCKET=xfer python infra/s3/init_bucket.py

On AWS, terraform/ makes the bucket and the scoped IAM policy instead.
"""

from __future__ import annotations

import os
import sys
import time

import boto3
from botocore.exceptions import ClientError, EndpointConnectionError


def ensure_bucket(bucket: str, attempts: int = 30) -> str:
    """Create `bucket` unless it exists, enable versioning; returns the versioning status."""
    s3 = boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None)
    for attempt in range(attempts):  # the S3 gateway may still be starting
        try:
            s3.head_bucket(Bucket=bucket)
            break
        except ClientError as err:
            if err.response["Error"]["Code"] not in ("404", "NoSuchBucket"):
                raise
            s3.create_bucket(Bucket=bucket)
            break
        except EndpointConnectionError:
            if attempt == attempts - 1:
                raise
            time.sleep(2)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    return str(s3.get_bucket_versioning(Bucket=bucket).get("Status"))


if __name__ == "__main__":
    name = os.environ.get("XFER_BUCKET", "").strip()
    if not name:
        sys.exit("set XFER_BUCKET to the bucket name")
    print(f"bucket {name}: versioning {ensure_bucket(name)}")
