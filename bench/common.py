"""Shared plumbing for the benches: interleaved repetitions, a load-average sampler, JSON results.

The machine is 2 cores shared with other work, so an absolute figure means little; every bench
reports a ratio against a baseline measured in the same run. Baseline and candidate repetitions
alternate (the order flips every round) so a load spike hits both, and medians are kept.
Imported by the bench scripts as `common` (bench/ is on sys.path when a script runs).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
QUIET_ENV = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "DVC_NO_ANALYTICS": "1",
    "PREFECT_LOGGING_LEVEL": "WARNING",
}


def quiet_env() -> None:
    """Turn off the libraries' phone-home and progress output (there is no internet here)."""
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)


def interleaved(
    runs: Mapping[str, Callable[[], float]], reps: int, warmup: int = 1
) -> dict[str, list[float]]:
    """Call every run `reps` times, alternating them (order reversed every other round).

    Each callable returns the figure of one repetition (seconds or a rate). `warmup` rounds run
    first and are discarded (first-call allocations, lazy imports, caches).
    """
    names = list(runs)
    for _ in range(warmup):
        for name in names:
            runs[name]()
    out: dict[str, list[float]] = {name: [] for name in names}
    for rep in range(reps):
        for name in names if rep % 2 == 0 else reversed(names):
            out[name].append(runs[name]())
    return out


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def spread(values: list[float]) -> dict[str, float]:
    """Median, min and max of repetitions (the spread shows how noisy the machine was)."""
    return {"median": median(values), "min": min(values), "max": max(values), "n": len(values)}


class LoadSampler:
    """Samples the 1-minute load average every `every` seconds in a daemon thread."""

    def __init__(self, every: float = 5.0) -> None:
        self.every = every
        self.samples: list[float] = [os.getloadavg()[0]]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="load-sampler")

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.samples.append(os.getloadavg()[0])

    def summary(self) -> dict[str, float]:
        s = self.samples
        return {"mean": round(sum(s) / len(s), 2), "min": round(min(s), 2), "max": round(max(s), 2)}


@contextmanager
def sampling_load(every: float = 5.0) -> Iterator[LoadSampler]:
    """Sample the load average while the block runs; read `.summary()` afterwards."""
    sampler = LoadSampler(every)
    sampler._thread.start()
    try:
        yield sampler
    finally:
        sampler._stop.set()
        sampler._thread.join()
        sampler.samples.append(os.getloadavg()[0])


def machine() -> dict[str, Any]:
    import torch

    return {
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def write_result(name: str, result: dict[str, Any], out: Path | None = None) -> Path:
    """Write `bench/results/<name>.json` ("ratio" first), print it, and return the path."""
    if "ratio" not in result:
        raise ValueError(f"bench result {name} has no top-level 'ratio'; every bench reports one")
    path = out or RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    ordered = {"ratio": result["ratio"], **{k: v for k, v in result.items() if k != "ratio"}}
    ordered["written_at"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    path.write_text(json.dumps(ordered, indent=2, default=str) + "\n")
    print(json.dumps(ordered, indent=2, default=str))
    return path
