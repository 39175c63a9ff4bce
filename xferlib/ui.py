"""`xfer ui`: the web UIs over one work directory, on 127.0.0.1 with free ports, until Ctrl-C.

- MLflow: `mlflow server` over the work dir's store (`Workdir.mlflow_uri`, artifacts in
  `Workdir.mlflow_artifacts`); when MLFLOW_TRACKING_URI already names an HTTP server, that server
  is the UI and nothing is started.
- Evidently: `evidently ui` over the work dir's workspace (`Workdir.evidently_workspace`: one
  project per model, one snapshot per checked window, the verdict dashboard).
- Prefect: only a server the work dir is configured for (PREFECT_API_URL) and that answers;
  otherwise skipped with the reason (`xfer demo` runs its own only while it runs).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any, TextIO

from xferlib import env
from xferlib.services import ProcessGroup, answers, executable, free_port, wait_healthy
from xferlib.workdir import Workdir

REFRESH_S = 5  # how often `serve` looks for windows checked since the Evidently UI started
# mlflow server is healthy in ~7 s on an idle machine, far later on a busy one
START_TIMEOUT_S = 180.0
# one MLflow server process (+ its uvicorn worker) instead of ten (FACTS.md)
MLFLOW_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


@dataclass(frozen=True)
class UIs:
    """What `xfer ui` serves (`--json` prints it once, as soon as every UI answers)."""

    mlflow: str
    evidently: str
    prefect: str | None
    workspace: str
    notes: list[str] = field(default_factory=list)
    pids: dict[str, int] = field(default_factory=dict)  # the children xfer started

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def mlflow_command(wd: Workdir, port: int) -> list[str]:
    return [
        executable("mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
        "--workers", "1", "--backend-store-uri", wd.mlflow_uri,
        "--artifacts-destination", str(wd.mlflow_artifacts),
    ]  # fmt: skip


def evidently_command(wd: Workdir, port: int) -> list[str]:
    return [
        executable("evidently"), "ui", "--workspace", str(wd.evidently_workspace),
        "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip


def prefect_ui() -> tuple[str | None, str | None]:
    """(the Prefect UI's URL, None) when a configured server answers, else (None, why not)."""
    api = env.prefect_api_url()
    if api is None:
        return None, (
            "Prefect UI skipped: no Prefect server configured (PREFECT_API_URL unset; "
            "`xfer demo` runs one only while it runs)"
        )
    if not answers(api.rstrip("/") + "/health"):
        return None, f"Prefect UI skipped: the server at {api} does not answer"
    return api.rstrip("/").removesuffix("/api"), None


def start(wd: Workdir, group: ProcessGroup) -> UIs:
    """Start the servers in `group` and wait until each answers HTTP."""
    tracking = wd.mlflow_uri
    notes: list[str] = []
    waits: list[tuple[str, str]] = []  # (child name, health URL)
    if tracking.startswith(("http://", "https://")):
        mlflow_url = tracking
        notes.append(f"MLflow UI: the tracking server {tracking} (not started by xfer)")
    else:
        port = free_port()
        group.spawn("mlflow-ui", mlflow_command(wd, port), env.quiet_environ(**MLFLOW_ENV))
        mlflow_url = f"http://127.0.0.1:{port}"
        waits.append(("mlflow-ui", f"{mlflow_url}/health"))
    port = free_port()
    wd.evidently_workspace.mkdir(parents=True, exist_ok=True)
    group.spawn("evidently-ui", evidently_command(wd, port), env.quiet_environ())
    evidently_url = f"http://127.0.0.1:{port}"
    waits.append(("evidently-ui", f"{evidently_url}/api/projects"))
    for name, url in waits:  # the servers start side by side; wait for each in turn
        try:
            wait_healthy(url, START_TIMEOUT_S, group.procs[name])
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(f"{name}: {exc}; see {group.log(name)}") from exc
    prefect, why = prefect_ui()
    notes += [why] if why else []
    pids = {n: p.pid for n, p in group.procs.items()}
    return UIs(mlflow_url, evidently_url, prefect, str(wd.evidently_workspace), notes, pids)


def show(uis: UIs, out: TextIO, as_json: bool) -> None:
    if as_json:
        print(json.dumps(uis.to_dict()), file=out, flush=True)
        return
    print(f"MLflow UI:    {uis.mlflow}", file=out)
    print(f"Evidently UI: {uis.evidently}  (workspace {uis.workspace})", file=out)
    print(f"Prefect UI:   {uis.prefect or '-'}", file=out)
    for note in uis.notes:
        print(note, file=out)
    print("Ctrl-C stops them.", file=out, flush=True)


def serve(workdir: str | None, out: TextIO, *, as_json: bool = False) -> None:
    """Start the UIs, print their URLs, and keep them up until Ctrl-C / SIGTERM (then stop all;
    the KeyboardInterrupt goes on to the caller). A server that dies takes the others down."""
    from xferlib.drift.workspace import snapshot_counts

    wd = Workdir.resolve(workdir)
    seen, ticks = snapshot_counts(wd.evidently_workspace), 0  # before the UI reads them
    with ProcessGroup(wd.logs) as group:
        uis = start(wd, group)
        show(uis, out, as_json)
        while not (gone := group.exited()):
            time.sleep(1)
            ticks += 1
            if ticks % REFRESH_S == 0:
                seen = _refresh(uis.evidently, wd, seen)
        name, code = next(iter(gone.items()))
        raise RuntimeError(f"{name} exited with code {code}; see {group.log(name)}")


def _refresh(evidently_url: str, wd: Workdir, seen: dict[str, int]) -> dict[str, int]:
    """The Evidently UI reads the workspace when it starts: ask it to re-read each project that
    has gained snapshots since (its own "reload" re-parses the project's every snapshot, so only
    on change)."""
    from xferlib.drift.workspace import snapshot_counts

    now = snapshot_counts(wd.evidently_workspace)
    for pid, count in now.items():
        if seen.get(pid) != count and not answers(f"{evidently_url}/api/projects/{pid}/reload", 60):
            now[pid] = seen.get(pid, -1)  # not taken: try again next time
    return now
