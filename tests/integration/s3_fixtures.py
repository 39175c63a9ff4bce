"""Pytest fixtures for a real S3 HTTP API on 127.0.0.1 (moto's server), shared by integration tests.

MinIO cannot be installed on these machines (not in Debian, no binary on PyPI), so the
S3-compatible server here is moto's `ThreadedMotoServer`: a real HTTP server speaking the S3 REST
API, reached by boto3, DVC and MLflow exactly as MinIO would be (`infra/compose.yaml` uses MinIO).
Register in tests/integration/conftest.py with
`from s3_fixtures import S3Server, s3_bucket, s3_env, s3_server  # noqa: F401`
(pytest forbids `pytest_plugins` in a non-top-level conftest, and `tests` is not importable as a
package unless pyproject sets `pythonpath = ["."]`).

Note: moto keeps its state in this process; a test that enters `moto.mock_aws()` resets it and
intercepts boto3 while active. Use either the server or mock_aws within one session, not both.
"""

from __future__ import annotations

import os
import secrets
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest


@dataclass(frozen=True)
class S3Server:
    """Where the test S3 server listens and the credentials the tests use with it."""

    endpoint: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"

    def env(self) -> dict[str, str]:
        """Environment for xferlib.storage, DVC, MLflow (MLFLOW_S3_ENDPOINT_URL) and boto3."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ENDPOINT_URL_S3": self.endpoint,
            "MLFLOW_S3_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
        }

    def set_auth(self, enforce: bool) -> None:
        """Make moto check signatures against its IAM users (True) or accept anything (False)."""
        body = b"0" if enforce else b"inf"
        request = urllib.request.Request(
            f"{self.endpoint}/moto-api/reset-auth",
            data=body,
            headers={"Content-Type": "text/plain"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()


def start_moto_server() -> tuple[object, str]:
    """Start moto's threaded S3 server on a free 127.0.0.1 port; returns (server, endpoint URL)."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return server, f"http://{host}:{port}"


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """One moto S3 server for the session (~0.3 s to start), stopped at the end."""
    server, endpoint = start_moto_server()
    # A random secret, so tests can assert it never leaks into messages.
    info = S3Server(endpoint, "AKIDXFERTEST0001", "xfer-secret-" + secrets.token_hex(12))
    try:
        yield info
    finally:
        server.stop()  # type: ignore[attr-defined]


@pytest.fixture
def s3_env(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """Point the environment (and so xferlib.storage) at the test server for one test."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_MAX_ATTEMPTS", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    return s3_server


@pytest.fixture
def s3_bucket(s3_env: S3Server) -> str:
    """A fresh, empty bucket on the test server (unique name per test)."""
    from xferlib import storage

    name = f"xfer-test-{uuid.uuid4().hex[:12]}"
    storage.create_bucket(name)
    return name
