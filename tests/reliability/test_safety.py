"""Safety: crafted weights are refused unexecuted, credentials never leak, services bind 127.0.0.1
and the demo's servers stop with it."""

from __future__ import annotations

import ast
import os
import re
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
import torch

from tests.flows.conftest import make_workdir
from tests.registry_helpers import stored_model_dir
from tests.reliability.conftest import XFER, assert_one_line_error, clean_env, xfer
from tests.reliability.helpers import drift_report, kill_group, pids_matching, wait_for, window

pytestmark = pytest.mark.reliability
REPO = Path(__file__).resolve().parents[2]


class _Payload:
    """Unpickling this calls open(marker, "w"): proof of code execution if the file appears."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple:
        return (open, (self.marker, "w"))


def _plant(wd: Path, payload_file: Path) -> tuple[str, str, str]:
    """Register a fresh version of the champion's model, then overwrite its model.pt in the artifact store."""
    from xferlib import registry
    from xferlib.context import Context
    from xferlib.registry.runs import Tracker

    ctx = Context.load(wd)
    uri, name = ctx.wd.mlflow_uri, ctx.params.registry.model_name
    with Tracker.start(uri, "xfer-safety", "train", artifact_root=ctx.wd.mlflow_artifacts) as run:
        run.log_model(wd / "model")
    version = registry.register_candidate(uri, name, run.run_id)
    stored = stored_model_dir(uri, name, str(version), None) / "model.pt"
    stored.write_bytes(payload_file.read_bytes())
    return uri, name, str(version)


@pytest.mark.parametrize("tag", ["kept", "forged to match"])
def test_a_crafted_pickle_in_the_registry_is_refused_and_never_executed(
    wd: Path, tmp_path: Path, tag: str
) -> None:
    from xferlib.atomic import sha256_file
    from xferlib.models.io import ModelIntegrityError
    from xferlib.registry import load_predictor
    from xferlib.registry.client import mlflow_client
    from xferlib.registry.runs import SHA_TAG

    marker = tmp_path / "pwned"
    evil = tmp_path / "evil" / "model.pt"
    evil.parent.mkdir()
    torch.save({"head.weight": _Payload(marker)}, evil)
    uri, name, version = _plant(wd, evil)
    if tag == "forged to match":  # an attacker who can also write registry tags
        mlflow_client(uri).set_model_version_tag(name, version, SHA_TAG, sha256_file(evil))

    with pytest.raises(ModelIntegrityError):
        load_predictor(f"models:/{name}/{version}", uri)
    proc = xfer("predict", "--model", f"models:/{name}/{version}", str(evil), wd=wd)
    assert_one_line_error(proc, "ModelIntegrityError")
    assert not marker.exists(), "the crafted pickle was executed"
    proof = tmp_path / "proof.pt"  # the payload is real: an unsafe load runs it
    torch.save({"w": _Payload(tmp_path / "proof")}, proof)
    torch.load(proof, weights_only=False)
    assert (tmp_path / "proof").exists()
    assert load_predictor(f"models:/{name}@champion", uri).version == "1"  # champion untouched


PLANTED = "planted-secret-XYZ"
TOKEN = "planted-token-ABC"


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[bytes]]]:
    """A webhook receiver on 127.0.0.1 that records the bodies it gets."""
    bodies: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            bodies.append(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/hooks/T1/B1/{TOKEN}", bodies
    server.shutdown()


def test_credentials_never_reach_logs_mlflow_alerts_reports_or_output(
    tmp_path: Path,
    fashion_xy,
    receiver: tuple[str, list[bytes]],
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    from xferlib.stages import trigger

    url, bodies = receiver
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", PLANTED)
    monkeypatch.setenv("XFER_ALERT_WEBHOOK", url)
    wd = make_workdir(tmp_path / "wd", fashion_xy)  # init, ingest, prepare, train + register
    report = drift_report(wd, window(tmp_path / "shifted", fashion_xy, 1000, 100, "invert"), "w1")
    trigger.decide(wd, report)
    cli = xfer(
        "score",
        str(window(tmp_path / "clean", fashion_xy, 1200, 60)),
        wd=wd,
        env=clean_env(AWS_SECRET_ACCESS_KEY=PLANTED, XFER_ALERT_WEBHOOK=url),
    )
    out, err = capfd.readouterr()

    assert cli.returncode == 0 and len(bodies) >= 2  # the webhook was used: promoted + drift alerts
    texts = {"captured stdout/stderr": out + err, "cli output": cli.stdout + cli.stderr}
    texts |= {f"webhook body {i}": b.decode() for i, b in enumerate(bodies)}
    for path in [p for p in tmp_path.rglob("*") if p.is_file() and ".git" not in p.parts]:
        texts[str(path)] = path.read_bytes().decode("latin-1")
    assert any(str(wd / "mlflow.db") == k for k in texts) and any(
        "alerts.jsonl" in k for k in texts
    )
    leaks = [where for where, text in texts.items() if PLANTED in text or TOKEN in text]
    assert not leaks, f"planted credentials found in {leaks}"


def _server_commands() -> list[tuple[str, list[str]]]:
    """Every literal command list in xferlib/, flows/, bench/ that starts an mlflow/prefect server."""
    found = []
    for path in [*REPO.glob("xferlib/**/*.py"), *REPO.glob("flows/*.py"), *REPO.glob("bench/*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.List):
                words = [
                    e.value
                    for e in node.elts
                    if isinstance(e, ast.Constant) and isinstance(e.value, str)
                ]
                if "server" in words and ("--port" in words or "start" in words):
                    found.append((str(path.relative_to(REPO)), words))
    return found


def test_servers_xfer_starts_bind_127_0_0_1_by_default() -> None:
    commands = _server_commands()
    assert any(p == "flows/server.py" for p, _ in commands)  # Services' prefect server is seen
    for path, words in commands:
        assert "--host" in words and words[words.index("--host") + 1] == "127.0.0.1", (path, words)
    compose = (REPO / "infra" / "compose.yaml").read_text()
    ports = re.findall(r"^\s*-\s*\"([^\"]*:\d+)\"\s*$", compose, flags=re.M)
    assert ports and all(p.startswith("${XFER_BIND:-127.0.0.1}:") for p in ports), ports


def _listeners(port: int) -> list[str]:
    """Local addresses listening on `port` (from /proc/net/tcp and tcp6)."""
    out = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            addr, hexport = local.split(":")
            if state == "0A" and int(hexport, 16) == port:
                out.append(addr)
    return out


# SIGINT in the default suite; SIGTERM in the slow one (CI runs both): `make test` stays < 15 min
@pytest.mark.parametrize(
    "sig",
    [pytest.param(signal.SIGTERM, marks=pytest.mark.slow), signal.SIGINT],
    ids=["SIGTERM", "SIGINT"],
)
def test_the_demo_servers_stop_with_it(tmp_path: Path, sig: signal.Signals) -> None:
    wd = tmp_path / "demo"
    log = tmp_path / "demo.err"
    with open(log, "wb") as err:
        proc = subprocess.Popen([XFER, "demo", "--quick", "--workdir", str(wd), "--json"], env=clean_env(),
                                stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)  # fmt: skip
    try:
        found: list[int] = []

        def server_up() -> bool:
            m = re.search(r"Prefect server up at http://127\.0\.0\.1:(\d+)", log.read_text())
            found[:] = [int(m.group(1))] if m else []
            return bool(m) or proc.poll() is not None

        wait_for(server_up, 180, "the demo's Prefect server", step=0.2)
        assert found, log.read_text()[-2000:]
        port = found[0]
        assert _listeners(port) == ["0100007F"]  # 127.0.0.1 only
        os.kill(proc.pid, sig)
        assert proc.wait(60) != 0
        survivors = pids_matching(str(wd)) + pids_matching(f"--port {port}")
        assert not survivors, f"processes of the demo survived: {survivors}"
        with socket.socket() as s:  # nothing listens any more (TIME_WAIT leftovers are fine)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))
            s.listen(1)
    finally:
        kill_group(proc.pid)
