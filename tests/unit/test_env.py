"""xferlib.env: every environment variable xfer reads, typed, blank meaning unset."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from xferlib import env


@pytest.mark.parametrize("value", ["", "   ", "\t"])
def test_a_blank_variable_counts_as_unset(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    for name in ("XFER_HOME", "XFER_DVC_REMOTE", "MLFLOW_TRACKING_URI", "XFER_WEIGHTS_CACHE"):
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("XFER_ALERT_WEBHOOK", value)
    assert env.xfer_home() is None
    assert env.dvc_remote() is None
    assert env.mlflow_tracking_uri() is None
    assert env.weights_cache() is None
    assert env.alert_webhook() == ""


def test_values_are_stripped_and_typed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "  http://127.0.0.1:5000 \n")
    monkeypatch.setenv("XFER_WEIGHTS_CACHE", str(tmp_path))
    monkeypatch.setenv("RANK", "3")
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert env.mlflow_tracking_uri() == "http://127.0.0.1:5000"
    assert env.weights_cache() == tmp_path
    assert (env.rank(), env.local_rank()) == (3, 0)


def test_variables_are_read_when_asked_not_at_import(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XFER_HOME", "/one")
    assert env.xfer_home() == "/one"
    monkeypatch.setenv("XFER_HOME", "/two")
    assert env.xfer_home() == "/two"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, False),
        ("", False),
        ("0", False),
        ("false", False),
        ("False", False),
        ("NO", False),
        ("off", False),
        ("1", True),
        ("true", True),
        ("yes", True),
        (" 1 ", True),
    ],
)
def test_debug_parsing(monkeypatch: pytest.MonkeyPatch, value: str | None, expected: bool) -> None:
    if value is None:
        monkeypatch.delenv("XFER_DEBUG", raising=False)
    else:
        monkeypatch.setenv("XFER_DEBUG", value)
    assert env.debug() is expected


def test_s3_endpoint_prefers_the_s3_specific_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://general:9000")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://s3only:9000")
    assert env.s3_endpoint() == "http://s3only:9000"
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "")
    assert env.s3_endpoint() == "http://general:9000"


def test_aws_region_and_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_DEFAULT_REGION", "AWS_REGION", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "id")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "")
    assert env.aws_region() == "us-east-1"
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    assert env.aws_region() == "eu-west-1"
    assert env.aws_credentials() == ("id", None, None)


def test_quiet_environ_turns_telemetry_off_over_the_users_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DO_NOT_TRACK", "0")  # the user's value loses: no telemetry, ever
    monkeypatch.setenv("PREFECT_LOGGING_LEVEL", "DEBUG")  # a soft default: the user's value wins
    monkeypatch.setenv("XFER_PROBE", "kept")
    out = env.quiet_environ(PREFECT_API_URL="http://127.0.0.1:1/api")
    assert {k: out[k] for k in env.QUIET_ENV} == dict(env.QUIET_ENV)
    assert out["DO_NOT_TRACK"] == "1" and out["MLFLOW_DISABLE_TELEMETRY"] == "true"
    assert out["DVC_NO_ANALYTICS"] == "1" and out["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
    assert out["PREFECT_LOGGING_LEVEL"] == "DEBUG"
    assert out["XFER_PROBE"] == "kept"
    assert out["PREFECT_API_URL"] == "http://127.0.0.1:1/api"
    assert os.environ["DO_NOT_TRACK"] == "0", "quiet_environ must not change this process"
    monkeypatch.delenv("PREFECT_LOGGING_LEVEL")
    assert env.quiet_environ()["PREFECT_LOGGING_LEVEL"] == "WARNING"


def test_set_default_keeps_the_users_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XFER_PROBE_A", "user")
    monkeypatch.delenv("XFER_PROBE_B", raising=False)
    env.set_default("XFER_PROBE_A", "ours")
    env.set_default("XFER_PROBE_B", "ours")
    assert (os.environ["XFER_PROBE_A"], os.environ["XFER_PROBE_B"]) == ("user", "ours")
    monkeypatch.delenv("XFER_PROBE_B")


def test_preserved_restores_set_and_unset_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XFER_PROBE_SET", "before")
    monkeypatch.delenv("XFER_PROBE_UNSET", raising=False)
    with pytest.raises(RuntimeError), env.preserved("XFER_PROBE_SET", "XFER_PROBE_UNSET"):
        os.environ["XFER_PROBE_SET"] = "rewritten by a library"
        os.environ["XFER_PROBE_UNSET"] = "leaked"
        raise RuntimeError("the block failed")
    assert os.environ["XFER_PROBE_SET"] == "before"
    assert "XFER_PROBE_UNSET" not in os.environ
