"""What xfer's MLflow logging costs a training loop, and how long register + promote take.

A training-like loop (tiny conv classifier, CPU, ~12 ms a step) runs in 50-step chunks, alternately
without logging and with `Tracker` logging three metrics per step (defaults: window means every 10
steps, written in the background; a flush after every chunk). Medians per chunk; the tracker's final
close (waiting for all writes) is charged to it. For reference it also times naive per-step
`MlflowClient.log_metric` calls (on a fifth of the steps: they are slow). Then it times register_candidate + decide + apply_decision against
embedded sqlite and a local `mlflow server`.

    .venv/bin/python bench/logging_overhead.py [--steps 300] [--reps 3] [--no-server]

Writes bench/results/logging_overhead.json (top-level "ratio" = steps/s with Tracker / without).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from xferlib import registry
from xferlib.config import RegistryParams
from xferlib.models import Classifier, create_backbone, save_model
from xferlib.registry import CandidateMetrics, decide_promotion
from xferlib.registry_client import mlflow_client
from xferlib.tracking import Tracker

QUIET = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
}
OUT = Path(__file__).resolve().parent / "results" / "logging_overhead.json"


class Loop:
    """A small SGD loop (tiny conv net, batch 32, 32 px, CPU) that can be run in chunks."""

    def __init__(self) -> None:
        torch.manual_seed(0)
        self.model = Classifier(create_backbone("tiny", pretrained=False, image_size=32), 10)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.01)
        self.x, self.y = torch.randn(32, 3, 32, 32), torch.randint(0, 10, (32,))
        self.step = 0

    def run(self, steps: int, log: Callable[[int, dict[str, float]], None] | None) -> float:
        """Wall seconds for `steps` steps; `log(step, metrics)` is called each step if given."""
        start = time.perf_counter()
        for _ in range(steps):
            loss = torch.nn.functional.cross_entropy(self.model(self.x), self.y)
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
            if log is not None:
                log(self.step, {"loss": loss.item(), "lr": 0.01, "grad_steps": float(self.step)})
            self.step += 1
        return time.perf_counter() - start


def bench_logging(uri: str, steps: int, reps: int, chunk: int = 50) -> dict[str, float]:
    """Plain and tracked chunks alternate (order flipped every round) so load spikes on the
    shared machine hit both; the tracker's close (waiting for every write) is charged to it."""
    loop, plain, tracked = Loop(), [], []
    loop.run(20, None)  # warm-up
    cpu0 = time.process_time()
    with Tracker.start(uri, "bench-logging", "tracked") as run:
        for i in range(reps * steps // chunk):
            for mode in ("plain", "tracked") if i % 2 == 0 else ("tracked", "plain"):
                if mode == "plain":
                    plain.append(loop.run(chunk, None))
                else:
                    tracked.append(loop.run(chunk, run.log_metrics))
                    run.flush()  # the "epoch end" flush, every chunk: the harsh case
        t0 = time.perf_counter()
    close_s = time.perf_counter() - t0
    naive_plain = loop.run(40, None)
    with Tracker.start(uri, "bench-logging", "naive") as naive_run:
        client, rid = mlflow_client(uri), naive_run.run_id

        def log_naive(step: int, m: dict[str, float]) -> None:
            for key, value in m.items():
                client.log_metric(rid, key, value, step=step)

        naive = loop.run(40, log_naive)  # slow: few steps
    per_chunk_plain = statistics.median(plain)
    per_chunk_tracked = statistics.median(tracked) + close_s / len(tracked)
    return {"steps_per_s_plain": chunk / per_chunk_plain, "steps_per_s_tracker": chunk / per_chunk_tracked,
            "ratio": per_chunk_plain / per_chunk_tracked, "naive_log_metric_ratio": naive_plain / naive,
            "step_ms": 1000 * per_chunk_plain / chunk, "close_wait_s": close_s,
            "tracked_chunks_wall_s_sum": sum(tracked), "plain_chunks_wall_s_sum": sum(plain),
            "process_cpu_s": time.process_time() - cpu0}  # fmt: skip


def bench_registry(uri: str, root: Path, rounds: int = 3) -> dict[str, float]:
    """Median seconds of register_candidate, and of decide + apply_decision (a promotion)."""
    name, reg_s, promote_s = f"bench-{os.getpid()}-{int(time.time())}", [], []
    model = Classifier(create_backbone("tiny", pretrained=False), 3)
    for i in range(rounds):
        save_model(model, root / f"m{i}", ["a", "b", "c"])
        with Tracker.start(uri, "bench-registry", f"cand-{i}", artifact_root=root / "art") as run:
            run.log_model(root / f"m{i}")
        t0 = time.perf_counter()
        version = registry.register_candidate(uri, name, run.run_id)
        t1 = time.perf_counter()
        champ = registry.champion_version(uri, name)
        old = CandidateMetrics(champ, 0.5, 0.9) if champ else None
        registry.apply_decision(
            uri,
            name,
            decide_promotion(CandidateMetrics(version, 0.6 + i / 100, 0.9), old, RegistryParams()),
        )
        t2 = time.perf_counter()
        reg_s.append(t1 - t0)
        promote_s.append(t2 - t1)
    return {"register_s": statistics.median(reg_s), "promote_s": statistics.median(promote_s),
            "register_plus_promote_s": statistics.median(a + b for a, b in zip(reg_s, promote_s, strict=True))}  # fmt: skip


@contextmanager
def local_server(root: Path) -> Iterator[str]:
    """`mlflow server` on a free port with a sqlite backend; killed on exit."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [str(Path(sys.executable).with_name("mlflow")), "server", "--host", "127.0.0.1", "--port", str(port),
           "--workers", "1", "--backend-store-uri", f"sqlite:///{root / 'server.db'}",
           "--artifacts-destination", str(root / "server-artifacts")]  # fmt: skip
    log = open(root / "server.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        cmd, stdout=log, stderr=log, env={**os.environ, **QUIET}, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).close()
                break
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError(f"mlflow server exited; see {root / 'server.log'}") from None
                time.sleep(0.3)
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(proc.pid, 9)
        proc.wait()
        log.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument(
        "--no-server", action="store_true", help="skip the registry timing on a local server"
    )
    args = ap.parse_args()
    os.environ.update({k: v for k, v in QUIET.items() if k not in os.environ})
    torch.set_num_threads(1)  # a shared 2-core machine: keep the loop on one core
    with tempfile.TemporaryDirectory(prefix="xfer-bench-") as tmp:
        root = Path(tmp)
        sqlite = f"sqlite:///{root / 'mlflow.db'}"
        result: dict = {
            "backend": "embedded sqlite",
            **bench_logging(sqlite, args.steps, args.reps),
        }
        result["steps"], result["reps"], result["torch_threads"] = args.steps, args.reps, 1
        result["load_average_1m"] = os.getloadavg()[0]  # the machine is shared: context for noise
        result["registry"] = {"embedded sqlite": bench_registry(sqlite, root / "reg-sqlite")}
        if not args.no_server:
            with local_server(root) as uri:
                result["registry"]["server"] = bench_registry(uri, root / "reg-server")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"steps/s with Tracker / without: {result['ratio']:.3f} "
          f"(naive per-step log_metric: {result['naive_log_metric_ratio']:.3f}); wrote {OUT}")  # fmt: skip


if __name__ == "__main__":
    main()
