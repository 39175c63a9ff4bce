"""`xfer ui` lists Prefect's UI only for a configured server that answers, and says why not."""

from __future__ import annotations

import pytest

from xferlib import ui
from xferlib.services import free_port


def test_no_prefect_server_configured_is_skipped_with_the_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    url, why = ui.prefect_ui()
    assert url is None and why is not None and "PREFECT_API_URL unset" in why


def test_a_configured_prefect_server_that_does_not_answer_is_skipped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    api = f"http://127.0.0.1:{free_port()}/api"  # nothing listens there
    monkeypatch.setenv("PREFECT_API_URL", api)
    url, why = ui.prefect_ui()
    assert url is None and why == f"Prefect UI skipped: the server at {api} does not answer"
