"""Alerts against a real HTTP webhook receiver on 127.0.0.1 (no mocks of urllib)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from xferlib.alerts import Alert, AlertSink, read_alerts, slack_payload


@dataclass
class Receiver:
    """A webhook endpoint: answers with `script` status codes in turn (then 200), records bodies."""

    url: str = ""
    script: list[int] = field(default_factory=list)
    delay_s: float = 0.0
    bodies: list[dict] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_status(self) -> int:
        with self.lock:
            return self.script.pop(0) if self.script else 200


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if state.delay_s:
                time.sleep(state.delay_s)
            with state.lock:
                state.bodies.append(json.loads(body))
                state.paths.append(self.path)
            status = state.next_status()
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    state.url = (
        f"http://127.0.0.1:{server.server_address[1]}/services/T0XFER/B0XFER/hooktoken9f8e7d"
    )
    yield state
    server.shutdown()
    server.server_close()


def _alert(**kw: object) -> Alert:
    base: dict = {"kind": "promoted", "model_name": "fashion", "model_version": "7"}
    return Alert(**(base | kw))


def test_send_prints_one_line_appends_jsonl_and_posts_slack_payload(
    tmp_path: Path, receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    sink = AlertSink(tmp_path / "alerts.jsonl", webhook_url=receiver.url, backoff=0.01)
    alert = _alert(
        run_url="http://mlflow.local/#/runs/abc",
        report_path="reports/drift-1.html",
        message="challenger beats champion",
        details={"accuracy": 0.91},
    )
    result = sink.send(alert)

    assert result.webhook == "sent" and result.attempts == 1 and not result.duplicate
    out = capsys.readouterr().out.strip().splitlines()
    assert out == ["[xfer] promoted fashion v7: challenger beats champion"]
    [record] = read_alerts(tmp_path / "alerts.jsonl")
    assert record["kind"] == "promoted" and record["webhook"] == "sent"
    assert record["dedup_key"] == alert.dedup_key
    [body] = receiver.bodies
    assert body["text"].endswith("[xfer] promoted fashion v7: challenger beats champion")
    fields = " ".join(f["text"] for f in body["blocks"][1]["fields"])
    for expected in ("fashion", "*Version*\n7", "reports/drift-1.html", "runs/abc", "0.91"):
        assert expected in fields


def test_same_dedup_key_is_sent_once_even_from_a_new_sink(
    tmp_path: Path, receiver: Receiver
) -> None:
    path = tmp_path / "alerts.jsonl"
    alert = _alert(kind="drift_detected", report_path="reports/r1.json")
    first = AlertSink(path, webhook_url=receiver.url).send(alert)
    again = AlertSink(path, webhook_url=receiver.url).send(_alert(**{**alert.__dict__}))

    assert first.webhook == "sent"
    assert again.duplicate and again.webhook == "duplicate"
    assert len(receiver.bodies) == 1 and len(read_alerts(path)) == 1


def test_different_reports_get_different_dedup_keys() -> None:
    a = _alert(kind="drift_detected", report_path="reports/r1.json")
    b = _alert(kind="drift_detected", report_path="reports/r2.json")
    assert a.dedup_key != b.dedup_key


def test_5xx_is_retried_with_backoff_until_it_succeeds(tmp_path: Path, receiver: Receiver) -> None:
    receiver.script = [500, 503]
    sink = AlertSink(tmp_path / "alerts.jsonl", webhook_url=receiver.url, retries=3, backoff=0.05)
    started = time.monotonic()
    result = sink.send(_alert())

    assert result.webhook == "sent" and result.attempts == 3
    assert time.monotonic() - started >= 0.05 + 0.1  # slept backoff * (1 + 2)
    assert len(receiver.bodies) == 3


def test_a_failing_webhook_never_raises_and_is_recorded(tmp_path: Path, receiver: Receiver) -> None:
    receiver.script = [500] * 10
    sink = AlertSink(tmp_path / "alerts.jsonl", webhook_url=receiver.url, retries=2, backoff=0.01)
    result = sink.send(_alert(kind="retrain_failed", message="OOM"))

    assert result.webhook == "failed" and result.attempts == 3
    assert "HTTP 500" in (result.error or "")
    [record] = read_alerts(tmp_path / "alerts.jsonl")
    assert record["webhook"] == "failed" and record["webhook_attempts"] == 3


def test_a_4xx_is_not_retried(tmp_path: Path, receiver: Receiver) -> None:
    receiver.script = [404]
    result = AlertSink(tmp_path / "a.jsonl", webhook_url=receiver.url, backoff=0.01).send(_alert())
    assert result.webhook == "failed" and result.attempts == 1


def test_a_hanging_webhook_times_out_within_the_bound(tmp_path: Path, receiver: Receiver) -> None:
    receiver.delay_s = 3.0
    sink = AlertSink(tmp_path / "a.jsonl", webhook_url=receiver.url, timeout=0.3, retries=1)
    started = time.monotonic()
    result = sink.send(_alert())
    elapsed = time.monotonic() - started

    assert result.webhook == "failed" and result.attempts == 2
    assert elapsed < 2.0, f"hanging webhook held the sender {elapsed:.1f} s"


def test_an_unreachable_webhook_is_a_recorded_failure(tmp_path: Path) -> None:
    sink = AlertSink(tmp_path / "a.jsonl", webhook_url="http://127.0.0.1:9/hook", backoff=0.01)
    result = sink.send(_alert())
    assert result.webhook == "failed" and "unreachable" in (result.error or "")
    assert read_alerts(tmp_path / "a.jsonl")[0]["webhook"] == "failed"


def test_secrets_never_reach_stdout_jsonl_or_payload(
    tmp_path: Path,
    receiver: Receiver,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret-0123456789")
    monkeypatch.setenv("XFER_DB_PASSWORD", "pg-password-xyz")
    monkeypatch.setenv("XFER_ALERT_WEBHOOK", receiver.url)
    alert = _alert(
        kind="retrain_failed",
        message="boto failed with aws-secret-0123456789 at postgresql://u:pg-password-xyz@db/x",
        details={"env": "XFER_DB_PASSWORD=pg-password-xyz", "key_id": "AKIAABCDEFGHIJKLMNOP"},
    )
    result = AlertSink(tmp_path / "a.jsonl", backoff=0.01).send(alert)

    assert result.webhook == "sent"
    outputs = {
        "stdout": capsys.readouterr().out,
        "jsonl": (tmp_path / "a.jsonl").read_text(),
        "payload": json.dumps(receiver.bodies),
    }
    for where, text in outputs.items():
        for secret in ("aws-secret-0123456789", "pg-password-xyz", "AKIAABCDEFGHIJKLMNOP"):
            assert secret not in text, f"{secret} leaked to {where}"
        assert "hooktoken9f8e7d" not in text, f"webhook token leaked to {where}"
    assert "***" in outputs["jsonl"] and "boto failed with" in outputs["payload"]
    assert receiver.paths == ["/services/T0XFER/B0XFER/hooktoken9f8e7d"]  # the real URL was used


def test_concurrent_senders_write_whole_lines_and_send_each_key_once(
    tmp_path: Path, receiver: Receiver
) -> None:
    path = tmp_path / "alerts.jsonl"
    shared = _alert(kind="drift_detected", report_path="reports/shared.json")
    receiver.delay_s = 0.02  # a slow webhook widens any check-then-append race
    barrier = threading.Barrier(6)

    def worker(i: int) -> None:
        sink = AlertSink(path, webhook_url=receiver.url)
        barrier.wait()
        sink.send(shared)
        for j in range(5):
            sink.send(
                _alert(kind="retrain_started", message=f"w{i}-{j}", details={"pad": "x" * 3000})
            )

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    lines = path.read_text().splitlines()
    records = [json.loads(line) for line in lines]  # a torn line would fail to parse
    assert len(records) == 6 * 5 + 1
    assert sum(r["dedup_key"] == shared.dedup_key for r in records) == 1
    assert len(receiver.bodies) == 31


def test_webhook_comes_from_the_environment_and_empty_disables_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XFER_ALERT_WEBHOOK", "https://hooks.slack.com/services/T1/B2/secret3")
    assert AlertSink(tmp_path / "a.jsonl").webhook == "https://hooks.slack.com/***"
    sink = AlertSink(tmp_path / "a.jsonl", webhook_url="")
    assert sink.webhook is None and sink.send(_alert()).webhook == "disabled"


def test_unknown_kind_is_rejected_with_the_valid_kinds() -> None:
    with pytest.raises(ValueError, match="use one of drift_detected, retrain_started"):
        Alert(kind="drift", model_name="m")


def test_slack_payload_has_at_most_ten_fields_per_section() -> None:
    alert = _alert(details={f"k{i}": i for i in range(20)})
    assert len(slack_payload(alert)["blocks"][1]["fields"]) == 10


def test_redaction_keeps_hosts_but_drops_tokens_and_url_passwords() -> None:
    from xferlib.secrets import redact, redact_url

    assert (
        redact_url("https://hooks.slack.com/services/T1/B2/tok?x=1")
        == "https://hooks.slack.com/***"
    )
    assert redact_url("http://127.0.0.1:8080") == "http://127.0.0.1:8080"
    assert redact("postgresql://xfer:hunter2pw@db:5432/mlflow") == "postgresql://***@db:5432/mlflow"
    assert redact("see https://x.io/cb?token=abc123&v=2") == "see https://x.io/cb?***&v=2"
