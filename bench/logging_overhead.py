"""What MLflow logging costs a training loop, at equal points written; and register + promote time.

A training-like loop (tiny conv classifier, batch 32, 32 px, 1 torch thread, ~12 ms a step) runs
--steps steps per repetition, three metrics per step (loss, lr, grad_steps), in five ways:
- "none": no logging (the baseline).
- "tracker_default": `Tracker` as `xfer train` uses it (log_every=10, flush_every=100): each
  10-step window becomes one point per metric (its mean), written off-thread: 3 * steps / 10 points.
- "tracker_every_step": `Tracker(log_every=1)`: every step's value, off-thread: 3 * steps points.
- "sync_every_step": the same 3 * steps points, written by the loop itself with a synchronous
  `MlflowClient.log_batch` every 100 steps (the plain way to batch).
- "sync_window_means": the same points as tracker_default (window means of 10 steps), written
  by a synchronous `log_batch` every 100 steps.
Each repetition starts a fresh run (created outside the timing) and its time includes the wait
until every point is stored (`flush(wait=True)`, or the last synchronous batch). The points
actually stored are counted from the run afterwards (`points_written`). Method: one warm-up round,
then --pairs rounds of all five in listed order then reversed (`common.interleaved_rounds`).
Ratios are steps/s relative to "none" (none seconds / logged seconds, per round), and the
like-for-like pairs: tracker steps/s / synchronous steps/s at the same points.
Then register_candidate, and decide + apply_decision (a promotion), timed against embedded sqlite
and a local `mlflow server` (absolute seconds over --registry-rounds, no ratio).

    .venv/bin/python bench/logging_overhead.py                 # ~3 min on an idle 2-core box
    .venv/bin/python bench/logging_overhead.py --quick --out /tmp/logging_overhead.json  # ~40 s

--quick: 100 steps a repetition, one registry round, no server. Writes
bench/results/logging_overhead.json.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from common import (
    interleaved_rounds,
    machine,
    pair_up,
    quiet_env,
    sampling_load,
    spread,
    start,
    write_result,
)

from xferlib import registry
from xferlib.config import RegistryParams
from xferlib.models import Classifier, create_backbone, save_model
from xferlib.registry import CandidateMetrics, decide_promotion
from xferlib.registry.client import metric, mlflow_client
from xferlib.registry.runs import Tracker

EXPERIMENT = "bench-logging"
BATCH_EVERY = 100  # steps between synchronous log_batch calls (= the Tracker's flush_every)
WINDOW = 10  # the Tracker's default log_every
KEYS = ("loss", "lr", "grad_steps")
Log = Callable[[int, dict[str, float]], None]


class Loop:
    """A small SGD loop (tiny conv net, batch 32, 32 px, CPU) that can be run in chunks."""

    def __init__(self) -> None:
        torch.manual_seed(0)
        self.model = Classifier(create_backbone("tiny", pretrained=False, image_size=32), 10)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.01)
        self.x, self.y = torch.randn(32, 3, 32, 32), torch.randint(0, 10, (32,))
        self.step = 0

    def run(self, steps: int, log: Log | None) -> None:
        for _ in range(steps):
            loss = torch.nn.functional.cross_entropy(self.model(self.x), self.y)
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
            if log is not None:
                log(self.step, {"loss": loss.item(), "lr": 0.01, "grad_steps": float(self.step)})
            self.step += 1


class SyncWriter:
    """Buffers points and writes them with a synchronous `log_batch` every BATCH_EVERY steps.

    `window=1` keeps every step's value; `window=10` keeps window means, like the Tracker default.
    """

    def __init__(self, uri: str, run_id: str, window: int) -> None:
        self.client, self.run_id, self.window = mlflow_client(uri), run_id, window
        self.points: list[Any] = []
        self.sums: dict[str, float] = {}
        self.calls = 0

    def log(self, step: int, metrics: dict[str, float]) -> None:
        for key, value in metrics.items():
            self.sums[key] = self.sums.get(key, 0.0) + value
        self.calls += 1
        if self.calls % self.window == 0:
            now = int(time.time() * 1000)
            self.points += [metric(k, v / self.window, now, step) for k, v in self.sums.items()]
            self.sums = {}
        if self.calls % BATCH_EVERY == 0:
            self.write()

    def write(self) -> None:
        if self.points:
            self.client.log_batch(self.run_id, metrics=self.points)
            self.points = []


class Bench:
    """One timed repetition per call; remembers each variant's last run to count its points."""

    def __init__(self, uri: str, steps: int) -> None:
        self.uri, self.steps, self.loop = uri, steps, Loop()
        self.last_run: dict[str, str] = {}
        Tracker.start(uri, EXPERIMENT, "warm-db").close()  # sqlite migrations, not timed

    def none(self) -> float:
        t = time.perf_counter()
        self.loop.run(self.steps, None)
        return time.perf_counter() - t

    def tracker(self, name: str, log_every: int) -> float:
        with Tracker.start(self.uri, EXPERIMENT, name, log_every=log_every) as run:
            t = time.perf_counter()
            self.loop.run(self.steps, run.log_metrics)
            run.flush(wait=True)  # every point stored: charged to the tracker
            elapsed = time.perf_counter() - t
        self.last_run[name] = run.run_id
        return elapsed

    def sync(self, name: str, window: int) -> float:
        with Tracker.start(self.uri, EXPERIMENT, name) as run:  # only creates and ends the run
            writer = SyncWriter(self.uri, run.run_id, window)
            t = time.perf_counter()
            self.loop.run(self.steps, writer.log)
            writer.write()
            elapsed = time.perf_counter() - t
        self.last_run[name] = run.run_id
        return elapsed

    def runs(self) -> dict[str, Callable[[], float]]:
        return {
            "none": self.none,
            "tracker_default": lambda: self.tracker("tracker_default", WINDOW),
            "tracker_every_step": lambda: self.tracker("tracker_every_step", 1),
            "sync_every_step": lambda: self.sync("sync_every_step", 1),
            "sync_window_means": lambda: self.sync("sync_window_means", WINDOW),
        }

    def points_written(self) -> dict[str, int]:
        client = mlflow_client(self.uri)
        return {
            name: sum(len(client.get_metric_history(rid, k)) for k in KEYS)
            for name, rid in self.last_run.items()
        }


def bench_logging(uri: str, steps: int, pairs: int) -> dict[str, Any]:
    bench = Bench(uri, steps)
    secs = interleaved_rounds(bench.runs(), pairs)
    return {
        "steps_per_repetition": steps,
        "seconds": {k: spread(v) for k, v in secs.items()},
        "step_ms_none": 1000 * spread(secs["none"])["median"] / steps,
        "points_written": {"none": 0, **bench.points_written()},
        "steps_per_s_vs_none": {
            name: pair_up(secs, "none", name) for name in secs if name != "none"
        },
        "tracker_vs_sync_same_points": {
            "every_step": pair_up(secs, "sync_every_step", "tracker_every_step"),
            "window_means": pair_up(secs, "sync_window_means", "tracker_default"),
        },
    }


def bench_registry(uri: str, root: Path, rounds: int) -> dict[str, Any]:
    """Seconds of register_candidate, and of decide + apply_decision (a promotion), per round."""
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
        new = CandidateMetrics(version, 0.6 + i / 100, 0.9)
        registry.apply_decision(uri, name, decide_promotion(new, old, RegistryParams()))
        reg_s.append(t1 - t0)
        promote_s.append(time.perf_counter() - t1)
    return {"register_s": spread(reg_s), "promote_s": spread(promote_s)}


@contextmanager
def local_server(root: Path) -> Iterator[str]:
    """`mlflow server` on a free port with a sqlite backend; killed on exit."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [str(Path(sys.executable).with_name("mlflow")), "server", "--host", "127.0.0.1", "--port", str(port),
           "--workers", "1", "--backend-store-uri", f"sqlite:///{root / 'server.db'}",
           "--artifacts-destination", str(root / "server-artifacts")]  # fmt: skip
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with open(root / "server.log", "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=log, env=env, start_new_session=True)
        try:
            _wait_healthy(port, proc, root / "server.log")
            yield f"http://127.0.0.1:{port}"
        finally:
            os.killpg(proc.pid, 9)
            proc.wait()


def _wait_healthy(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).close()
            return
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited; see {log}") from None
            time.sleep(0.3)
    raise RuntimeError(f"mlflow server not healthy after 120 s; see {log}")


def main() -> None:
    start()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300, help="loop steps per repetition")
    ap.add_argument("--pairs", type=int, default=5, help="interleaved rounds (>= 5)")
    ap.add_argument("--registry-rounds", type=int, default=3)
    ap.add_argument("--no-server", action="store_true", help="skip the local mlflow server")
    ap.add_argument("--quick", action="store_true", help="smoke run: 100 steps, no server")
    ap.add_argument("--out", type=Path, default=None, help="write here, not bench/results/")
    args = ap.parse_args()
    if args.quick:
        args.steps, args.registry_rounds, args.no_server = 100, 1, True
    quiet_env()
    torch.set_num_threads(1)  # a shared 2-core machine: keep the loop on one core
    with tempfile.TemporaryDirectory(prefix="xfer-bench-") as tmp, sampling_load() as load:
        root = Path(tmp)
        sqlite = f"sqlite:///{root / 'mlflow.db'}"
        logged = bench_logging(sqlite, args.steps, args.pairs)
        reg = {"embedded sqlite": bench_registry(sqlite, root / "reg-sqlite", args.registry_rounds)}
        if not args.no_server:
            with local_server(root) as uri:
                reg["local mlflow server"] = bench_registry(
                    uri, root / "reg-server", args.registry_rounds
                )
    result = {
        "what": "steps/s of a small training loop that logs 3 metrics a step, relative to no "
        "logging, and the Tracker vs a synchronous log_batch writer at the same points",
        "method": "one warm-up round, then `pairs` rounds of the five variants in listed order "
        "then reversed; a fresh MLflow run per repetition (created untimed); a repetition's time "
        "includes waiting until every point is stored; ratio per round, median, min, max",
        "variants": {
            "none": "no logging",
            "tracker_default": f"Tracker(log_every={WINDOW}, flush_every=100): window means, off-thread",
            "tracker_every_step": "Tracker(log_every=1, flush_every=100): every value, off-thread",
            "sync_every_step": f"every value, MlflowClient.log_batch every {BATCH_EVERY} steps in the loop",
            "sync_window_means": f"{WINDOW}-step window means, log_batch every {BATCH_EVERY} steps in the loop",
        },  # fmt: skip
        "backend": "embedded sqlite",
        "torch_threads": 1,
        "quick": args.quick,
        "pairs": args.pairs,
        **logged,
        "registry": reg,
        "registry_rounds": args.registry_rounds,
        "load_average_1m": load.summary(),
        "machine": machine(),
    }
    write_result("logging_overhead", result, args.out)


if __name__ == "__main__":
    main()
