"""Ops alerts: one line on stdout, one JSON line in `<workdir>/alerts.jsonl`, an optional webhook.

Alerts are the pipeline's voice to people (drift seen, retrain started/finished/failed, a model
promoted, rejected or rolled back). They must never break the pipeline: a failing or hanging
webhook is retried with backoff and then recorded as `webhook: failed`, never raised. An alert is
sent once per `dedup_key`; alerts.jsonl is the record of what was sent, and the check-and-append
runs under an exclusive `flock` on that file, so concurrent senders (threads or processes) neither
duplicate an alert nor interleave lines. Secrets are redacted from every output.
"""

from __future__ import annotations

import fcntl
import http.client
import json
import os
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, get_args

from xferlib import env
from xferlib.atomic import sha256_bytes
from xferlib.secrets import redact, redact_obj, redact_url

AlertKind = Literal[
    "drift_detected",
    "retrain_started",
    "retrain_finished",
    "retrain_failed",
    "promoted",
    "rejected",
    "rolled_back",
    "labels_requested",
]
WebhookStatus = Literal["sent", "failed", "disabled", "duplicate"]
KINDS: tuple[str, ...] = get_args(AlertKind)
_EMOJI = {
    "drift_detected": ":warning:",
    "retrain_started": ":arrows_counterclockwise:",
    "retrain_finished": ":white_check_mark:",
    "retrain_failed": ":x:",
    "promoted": ":trophy:",
    "rejected": ":no_entry:",
    "rolled_back": ":rewind:",
    "labels_requested": ":label:",
}


@dataclass(frozen=True)
class Alert:
    """One operational event. `dedup_key` defaults to a hash of the identifying fields."""

    kind: str  # one of KINDS (AlertKind); checked at construction
    model_name: str
    model_version: str | None = None
    report_path: str | None = None
    run_url: str | None = None
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict, hash=False)
    dedup_key: str = ""
    ts: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown alert kind {self.kind!r}; use one of {', '.join(KINDS)}")
        if self.model_version is not None and not isinstance(self.model_version, str):
            object.__setattr__(self, "model_version", str(self.model_version))
        if not self.dedup_key:
            ident = [self.kind, self.model_name, self.model_version, self.report_path, self.message]
            digest = sha256_bytes(json.dumps(ident).encode())[:16]  # an id, not a file hash
            object.__setattr__(self, "dedup_key", f"{self.kind}:{self.model_name}:{digest}")
        if not self.ts:
            object.__setattr__(self, "ts", datetime.now(UTC).isoformat(timespec="seconds"))

    def text(self) -> str:
        """A one-line human summary, e.g. `[xfer] promoted fashion v7: beats champion`."""
        version = f" v{self.model_version}" if self.model_version else ""
        tail = f": {self.message}" if self.message else ""
        return f"[xfer] {self.kind} {self.model_name}{version}{tail}"


@dataclass(frozen=True)
class SendResult:
    """What `AlertSink.send` did; `webhook` is sent/failed/disabled/duplicate."""

    dedup_key: str
    duplicate: bool
    webhook: WebhookStatus
    attempts: int = 0
    error: str | None = None
    elapsed_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def slack_payload(alert: Alert) -> dict[str, Any]:
    """A Slack-compatible body (`text` + Block Kit `blocks`); plain `text` suits other chat hooks."""
    fields = [
        ("Kind", alert.kind),
        ("Model", alert.model_name),
        ("Version", alert.model_version),
        ("Report", alert.report_path),
        ("Run", f"<{alert.run_url}|MLflow run>" if alert.run_url else None),
        ("When", alert.ts),
    ]
    fields += [(str(k), json.dumps(v, default=str)[:200]) for k, v in alert.details.items()]
    block_fields = [{"type": "mrkdwn", "text": f"*{k}*\n{v}"} for k, v in fields if v][:10]
    headline = f"{_EMOJI.get(alert.kind, '')} {alert.text()}".strip()
    return {
        "text": headline,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": headline}},
            {"type": "section", "fields": block_fields},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": alert.dedup_key}]},
        ],
    }


class AlertSink:
    """Sends alerts to stdout, `workdir_alerts_path` (JSON lines) and an optional webhook.

    `webhook_url=None` reads `XFER_ALERT_WEBHOOK` from the environment when the sink is built;
    pass `""` to disable the webhook explicitly. `retries` is how many times a failed POST is
    retried (5xx, 429, timeouts, refused connections), sleeping `backoff * 2**n` in between.
    """

    def __init__(
        self,
        workdir_alerts_path: Path,
        webhook_url: str | None = None,
        timeout: float = 5.0,
        retries: int = 3,
        backoff: float = 0.5,
    ) -> None:
        self.path = Path(workdir_alerts_path)
        url = env.alert_webhook() if webhook_url is None else webhook_url
        self._webhook_url = url.strip()
        self.timeout = timeout
        self.retries = max(0, retries)
        self.backoff = backoff

    @property
    def webhook(self) -> str | None:
        """The webhook endpoint with its token path removed, safe to show."""
        return redact_url(self._webhook_url) if self._webhook_url else None

    def send(self, alert: Alert) -> SendResult:
        """Deliver `alert` once per dedup_key; never raises for webhook failures."""
        start = time.monotonic()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            # Held across the webhook POST: that is what makes "never twice" hold across
            # processes; the hold is bounded by timeout * (retries + 1) + backoffs.
            fcntl.flock(fd, fcntl.LOCK_EX)
            sent = _sent_keys(self.path)
            if alert.dedup_key in sent or redact(alert.dedup_key, self._extra()) in sent:
                return SendResult(alert.dedup_key, duplicate=True, webhook="duplicate")
            print(redact(alert.text(), self._extra()), flush=True, file=sys.stdout)
            status, attempts, error = self._post(alert)
            result = SendResult(
                alert.dedup_key, False, status, attempts, error, time.monotonic() - start
            )
            record = {**asdict(alert), "webhook": status, "webhook_attempts": attempts}
            record |= {"webhook_error": error, "webhook_url": self.webhook}
            line = json.dumps(redact_obj(record, self._extra()), default=str) + "\n"
            os.write(fd, line.encode())  # one write on an O_APPEND fd: lines never interleave
            return result
        finally:
            os.close(fd)

    def _extra(self) -> tuple[str, ...]:
        return (self._webhook_url,) if self._webhook_url else ()

    def _post(self, alert: Alert) -> tuple[WebhookStatus, int, str | None]:
        """POST the Slack payload with retries; returns (status, attempts, redacted error)."""
        if not self._webhook_url:
            return "disabled", 0, None
        body = json.dumps(redact_obj(slack_payload(alert), self._extra())).encode()
        error = None
        for attempt in range(1, self.retries + 2):
            retry_after, error = self._post_once(body)
            if error is None:
                return "sent", attempt, None
            if retry_after is None or attempt > self.retries:
                return "failed", attempt, redact(error, self._extra())
            time.sleep(max(retry_after, self.backoff * 2 ** (attempt - 1)))
        return "failed", self.retries + 1, error  # pragma: no cover - loop always returns

    def _post_once(self, body: bytes) -> tuple[float | None, str | None]:
        """One POST. Returns (None, None) on success, (wait, error) if retryable, else (None, error)."""
        request = urllib.request.Request(
            self._webhook_url,
            data=body,
            headers={"Content-Type": "application/json", "User-Agent": "xfer-alerts"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                response.read()
            return None, None
        except urllib.error.HTTPError as exc:
            error = f"HTTP {exc.code} from {self.webhook}"
            if exc.code >= 500 or exc.code == 429:
                return _retry_after(exc.headers.get("Retry-After")), error
            return None, error
        except (OSError, http.client.HTTPException) as exc:  # URLError, timeouts, resets
            reason = getattr(exc, "reason", None) or exc.__class__.__name__
            return 0.0, f"webhook {self.webhook} unreachable: {reason}"
        except ValueError as exc:  # a malformed URL will not get better by retrying
            return (
                None,
                f"webhook URL is invalid ({exc.__class__.__name__}); fix XFER_ALERT_WEBHOOK",
            )


def _retry_after(header: str | None) -> float:
    """Seconds from a Retry-After header, capped at 10 s so an alert never stalls the pipeline."""
    try:
        return min(10.0, max(0.0, float(header or 0)))
    except ValueError:
        return 0.0


def _sent_keys(path: Path) -> set[str]:
    """dedup_keys already recorded in alerts.jsonl (a torn or foreign line is ignored)."""
    keys: set[str] = set()
    with path.open("rb") as fh:
        for raw in fh:
            try:
                keys.add(json.loads(raw)["dedup_key"])
            except (ValueError, KeyError, TypeError):
                continue
    return keys


def read_alerts(path: Path) -> list[dict[str, Any]]:
    """All alert records of an alerts.jsonl, oldest first (missing file = none)."""
    if not Path(path).exists():
        return []
    out = []
    for raw in Path(path).read_bytes().splitlines():
        try:
            out.append(json.loads(raw))
        except ValueError:
            continue
    return out
