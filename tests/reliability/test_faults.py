"""Faults: a killed training, an object store that goes away, a full disk, racing monitors and a
hanging webhook. Each ends in a clear error or a clean recovery, and loses nothing."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from tests.integration.s3_fixtures import S3Server
from tests.reliability.conftest import XFER, clean_env, clone, xfer
from tests.reliability.helpers import drift_report, wait_for, window

pytestmark = pytest.mark.reliability


def _set(wd: Path, section: str, **values: object) -> None:
    raw = yaml.safe_load((wd / "params.yaml").read_text())
    raw[section].update(values)
    (wd / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))


# slow suite (CI runs it): keeps `make test` under its 15-minute budget
@pytest.mark.slow
def test_kill_9_mid_training_then_resume_ends_with_the_same_weights_as_an_uninterrupted_run(
    base_wd: Path, tmp_path: Path
) -> None:
    a, b = clone(base_wd, tmp_path / "a"), clone(base_wd, tmp_path / "b")
    epochs = 7  # not v1's epoch count, so v1's train.json cannot pass for the resumed run's
    for wd in (a, b):
        _set(wd, "finetune", epochs=epochs, strategy="full", early_stopping_patience=10)
    cmd = [XFER, "train", "--no-register", "--json", "--workdir"]
    victim = subprocess.Popen(
        [*cmd, str(b)], env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    ckpt = b / "checkpoints" / "last.pt"
    wait_for(lambda: ckpt.exists() or victim.poll() is not None, 120, "the first checkpoint")
    victim.send_signal(signal.SIGKILL)
    assert victim.wait(30) == -signal.SIGKILL
    done = torch.load(ckpt, map_location="cpu", weights_only=True)["progress"][
        "epoch"
    ]  # next epoch
    assert done < epochs, f"the run had finished {done} epochs: not killed mid-run"
    v1 = json.loads((b / "model" / "train.json").read_text())
    assert v1["epochs_run"] != epochs  # still v1's file: the killed run wrote no model

    resumed = subprocess.Popen(
        [*cmd, str(b), "--resume"],
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    straight = xfer("train", "--no-register", wd=a)
    out, err = resumed.communicate(timeout=300)
    assert straight.returncode == 0 and resumed.returncode == 0, (straight.stderr, err)
    assert json.loads(out)["train"]["epochs_run"] == epochs
    wa = torch.load(a / "model" / "model.pt", weights_only=True)
    wb = torch.load(b / "model" / "model.pt", weights_only=True)
    assert wa.keys() == wb.keys()
    differ = [k for k in wa if not torch.equal(wa[k], wb[k])]
    assert not differ, f"resumed weights differ from the uninterrupted run in {differ[:5]}"


@pytest.fixture
def private_s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[S3Server, list]]:
    """A moto S3 server this test may stop and restart on the same port (state lives in-process)."""
    from moto.server import ThreadedMotoServer

    from xferlib import storage

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    info = S3Server(f"http://{host}:{port}", "AKIDXFERTEST0002", "xfer-secret-" + uuid.uuid4().hex)
    for name, value in {**info.env(), "AWS_MAX_ATTEMPTS": "2"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    storage.clear_client_cache()  # (AWS_CONFIG_FILE=/dev/null would break DVC's aiobotocore)
    servers = [server]
    yield info, servers
    for s in servers:
        try:
            s.stop()
        except Exception:
            pass
    storage.clear_client_cache()


def _restart(info: S3Server, servers: list) -> None:
    from moto.server import ThreadedMotoServer

    port = int(info.endpoint.rsplit(":", 1)[1])
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    servers.append(server)


def test_object_store_down_during_dvc_push_is_retried_then_a_clear_error_and_local_data_is_intact(
    tmp_path: Path, private_s3: tuple[S3Server, list], fashion_xy
) -> None:
    from xferlib import storage, versioning
    from xferlib.data.shards import read_manifest
    from xferlib.stages import data

    info, servers = private_s3
    bucket = f"xfer-rel-{uuid.uuid4().hex[:8]}"
    storage.create_bucket(bucket)
    wd = tmp_path / "wd"
    data.init(wd, remote=f"s3://{bucket}/dvc")
    first = data.ingest(wd, window(tmp_path / "one" / "Coat", fashion_xy, 0, 5).parent)
    assert first.pushed and storage.list_uris(f"s3://{bucket}/dvc/")

    servers[0].stop()
    t0 = time.monotonic()
    with pytest.raises(versioning.VersioningError) as err:
        data.ingest(wd, window(tmp_path / "two" / "Bag", fashion_xy, 5, 5).parent)
    took = time.monotonic() - t0
    msg = str(err.value)
    assert "\n" not in msg and "failed after 3 attempts" in msg and f"s3://{bucket}/dvc" in msg
    assert info.secret_key not in msg
    assert took < 180, f"gave up only after {took:.0f} s"
    manifest = read_manifest(wd / "data" / "source")  # the local dataset + manifest are intact
    assert sorted(manifest["label"]) == ["Bag"] * 5 + ["Coat"] * 5
    version = versioning.data_version(wd, wd / "data" / "source")
    assert version.git_rev and version.md5.endswith(".dir")  # committed: a push later completes it


def test_monitoring_log_write_to_s3_with_the_server_down_is_a_clear_error_and_leaves_no_partial_object(
    private_s3: tuple[S3Server, list],
) -> None:
    from xferlib import monitoring, storage

    info, servers = private_s3
    bucket = f"xfer-rel-{uuid.uuid4().hex[:8]}"
    storage.create_bucket(bucket)
    root = f"s3://{bucket}/monitoring"
    frame = pd.DataFrame({"window_id": ["w1"] * 50, "x": range(50)})
    monitoring.append(root, frame)

    servers[0].stop()
    t0 = time.monotonic()
    with pytest.raises(storage.StorageError) as err:
        monitoring.append(root, frame.assign(window_id="w2"))
    assert time.monotonic() - t0 < 60
    msg = str(err.value)
    assert "\n" not in msg and "cannot reach S3 endpoint" in msg and info.secret_key not in msg

    _restart(info, servers)
    assert len(storage.list_uris(root + "/")) == 1  # only the first window's part, no partial one
    back = monitoring.read_window(root)
    assert list(back["window_id"].unique()) == ["w1"] and len(back) == 50


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MB tmpfs (we run as root here); unmounted afterwards."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(disk: Path) -> Path:
    filler = disk / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    return filler


def test_disk_full_in_the_work_dir_fails_clearly_and_keeps_the_champion(
    base_wd: Path, small_disk: Path, tmp_path: Path
) -> None:
    from xferlib.atomic import sha256_file

    wd = clone(base_wd, small_disk / "wd")
    window_dir = window(tmp_path / "win", None or _fashion(base_wd), 0, 20)  # type: ignore[arg-type]
    before = sha256_file(wd / "model" / "model.pt")
    filler = _fill(small_disk)

    for args in (("train", "--no-register"), ("train",)):
        proc = xfer(*args, wd=wd)
        assert proc.returncode == 2 and proc.stdout == "", proc.stderr[-2000:]
        # the last line is xfer's one-line error (MLflow's own logger may print a traceback before it)
        line = proc.stderr.strip().splitlines()[-1]
        assert line.startswith("xfer train: error:"), line
        assert "No space left" in line or "disk is full" in line or "bytes free" in line, line
    assert sha256_file(wd / "model" / "model.pt") == before

    filler.unlink()
    leftovers = [p.name for p in wd.rglob(".*.tmp")]
    scored = xfer("score", str(window_dir), wd=wd)
    assert scored.returncode == 0, scored.stderr
    assert json.loads(scored.stdout)["model_version"] == "1"  # the champion is still v1 and loads
    assert not leftovers, f"partial temp files left behind: {leftovers}"


def _fashion(base_wd: Path):
    from xferlib.data.fashion import load_fashion_mnist

    return load_fashion_mnist(split="train", limit=100)


RACER = """
import json, os, sys, time
from xferlib.stages import trigger
from xferlib.stages.results import DriftResult
wd, report, go = sys.argv[1], DriftResult.from_dict(json.load(open(sys.argv[2]))), sys.argv[3]
open(sys.argv[4], "w").close()
while not os.path.exists(go):
    time.sleep(0.001)
print(json.dumps(trigger.decide(wd, report).to_dict()))
"""


def test_monitors_racing_on_the_same_drift_request_exactly_one_retrain(
    wd: Path, tmp_path: Path, fashion_xy
) -> None:
    from xferlib.alerts import read_alerts

    reports = [
        drift_report(
            wd, window(tmp_path / f"d{i}", fashion_xy, 1000 + 100 * i, 100, "invert"), f"d{i}"
        )
        for i in range(2)
    ]
    assert all(r.report.drift for r in reports)
    paths = []
    for i, r in enumerate(reports):
        paths.append(tmp_path / f"r{i}.json")
        paths[-1].write_text(json.dumps(r.to_dict()))
    go = tmp_path / "go"
    procs = [
        subprocess.Popen([sys.executable, "-c", RACER, str(wd), str(paths[i % 2]), str(go), str(tmp_path / f"ready{i}")],
                         env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(4)
    ]  # fmt: skip
    wait_for(
        lambda: all((tmp_path / f"ready{i}").exists() for i in range(4)), 120, "all racers ready"
    )
    go.touch()
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e for _, e in outs]
    decisions = [json.loads(o.strip().splitlines()[-1]) for o, _ in outs]
    assert sum(d["retrain"] for d in decisions) == 1, decisions
    drift_alerts = [a for a in read_alerts(wd / "alerts.jsonl") if a["kind"] == "drift_detected"]
    assert len(drift_alerts) == 2  # one per report, never duplicated by the racers


@pytest.fixture
def hanging_webhook() -> Iterator[str]:
    """A TCP server that accepts connections and never answers (no HTTP response ever comes)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(sock.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/hooks/T000/B000/tok-Zq81x"
    stop.set()
    thread.join(5)
    for conn in held:
        conn.close()
    sock.close()


# slow suite (CI runs it): keeps `make test` under its 15-minute budget
@pytest.mark.slow
def test_a_hanging_webhook_delays_the_monitor_stage_boundedly_and_never_breaks_it(
    wd: Path, tmp_path: Path, fashion_xy, hanging_webhook: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from xferlib.alerts import AlertSink, read_alerts
    from xferlib.stages import trigger

    report = drift_report(wd, window(tmp_path / "d", fashion_xy, 1000, 100, "invert"), "d")
    monkeypatch.setenv("XFER_ALERT_WEBHOOK", hanging_webhook)
    sink = AlertSink(wd / "x")
    bound = (
        sink.timeout * (sink.retries + 1)
        + sum(sink.backoff * 2**n for n in range(sink.retries))
        + 5
    )
    t0 = time.monotonic()
    decision = trigger.decide(wd, report)
    took = time.monotonic() - t0
    assert decision.retrain and took < bound, (decision, took, bound)
    (alert,) = [a for a in read_alerts(wd / "alerts.jsonl") if a["kind"] == "drift_detected"]
    assert alert["webhook"] == "failed" and "tok-Zq81x" not in json.dumps(
        alert
    )  # token path redacted
