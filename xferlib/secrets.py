"""Redaction of secrets before anything is printed, logged, written or sent.

Alerts and storage errors travel to places (stdout, alerts.jsonl, a chat webhook) that are read by
more people than the credentials are meant for. Everything that leaves the process goes through
`redact`, which removes the values of secret-looking environment variables, credentials embedded in
URLs, webhook tokens and AWS key ids.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from xferlib.env import environ

MASK = "***"
# Variable names whose values are secrets (AWS_SECRET_ACCESS_KEY, XFER_ALERT_WEBHOOK_TOKEN, ...).
_SECRET_NAME = re.compile(r"KEY|SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL", re.IGNORECASE)
# Values too short to be real secrets would mask ordinary words ("1", "true").
_MIN_SECRET_LEN = 6
_PATTERNS = (
    re.compile(r"(?<=://)[^/\s:@]+:[^/\s@]+(?=@)"),  # user:password@ in any URL
    re.compile(r"(?<=hooks\.slack\.com/)[^\s\"'<>]+"),  # Slack incoming-webhook path = the token
    re.compile(r"(?<=discord\.com/api/webhooks/)[^\s\"'<>]+"),
    re.compile(r"\bxox[abposr]-[A-Za-z0-9-]+"),  # Slack bot/user tokens
    re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),  # AWS access key ids
    re.compile(r"(?i)(?<=[?&])(?:token|key|sig|signature|secret|password|code)=[^&\s\"']+"),
)


def secret_values(env: Mapping[str, str] | None = None) -> list[str]:
    """Values of environment variables whose names look secret (*KEY*, *SECRET*, *TOKEN*, ...).

    The webhook URL is included too: a Slack/Teams webhook URL is itself a bearer credential.
    """
    env = environ() if env is None else env
    found = {
        value
        for name, value in env.items()
        if (_SECRET_NAME.search(name) or name == "XFER_ALERT_WEBHOOK")
        and len(value) >= _MIN_SECRET_LEN
    }
    # Longest first, so a secret that contains another is masked whole.
    return sorted(found, key=len, reverse=True)


def redact(text: str, extra: Iterable[str] = ()) -> str:
    """Return `text` with every known secret replaced by `***`."""
    values = secret_values()
    values += [v for v in extra if v and len(v) >= _MIN_SECRET_LEN]
    for value in sorted(set(values), key=len, reverse=True):
        text = text.replace(value, MASK)
    for pattern in _PATTERNS:
        text = pattern.sub(MASK, text)
    return text


def redact_obj(obj: Any, extra: Iterable[str] = ()) -> Any:
    """Redact every string inside a JSON-like structure (dicts, lists, tuples, scalars)."""
    extra = tuple(extra)
    if isinstance(obj, str):
        return redact(obj, extra)
    if isinstance(obj, Mapping):
        return {redact(str(k), extra): redact_obj(v, extra) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [redact_obj(v, extra) for v in obj]
    return obj


def redact_url(url: str) -> str:
    """Keep only scheme, host and port of a URL: paths and queries of webhooks carry tokens."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    tail = f"/{MASK}" if (parts.path.strip("/") or parts.query) else ""
    return f"{parts.scheme}://{host}{port}{tail}"
