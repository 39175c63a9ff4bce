"""Shared plumbing for the benches: provenance, paired interleaved ratios, load sampling, results.

The machine is 2 cores shared with other work, so an absolute figure means little; a speed claim
is a ratio of two runs measured side by side. `paired` runs them interleaved (A B B A A B ...), so a
load spike hits both sides, and keeps every pair: the headline is the median of the per-pair
ratios with its min and max, and `tests/unit/test_bench_results.py` recomputes it from the pairs.

Every result file is written by `write_result` only, with `provenance` (commit and dirty flag,
the exact command, UTC start and end, CPU model and cores, load average at start and end, library
versions). Imported by the bench scripts as `common` (bench/ is on sys.path when a script runs).
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from xferlib import env

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
MIN_PAIRS = 5
QUIET_ENV = {**env.QUIET_ENV, **env.QUIET_DEFAULTS}
PROVENANCE_KEYS = (
    "commit",
    "dirty",
    "command",
    "started_utc",
    "finished_utc",
    "cpu_model",
    "cores",
    "load_average_start",
    "load_average_end",
    "versions",
)
PAIRED_METHOD = (
    "interleaved pairs (A B, then B A, alternating), one warm-up round discarded; "
    "ratio = numerator / denominator per pair; median with min and max over the pairs"
)


def quiet_env() -> None:
    """Turn off the libraries' phone-home and progress output (there is no internet here)."""
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)


def _utc() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


class Provenance:
    """Where and how a result was made; started when the bench starts, finished when it writes.

    `dirty` ignores bench/results/ (a bench run after another leaves that folder changed); any
    other uncommitted change makes a result unreproducible, and the results test refuses it.
    """

    def __init__(self) -> None:
        self.started_utc = _utc()
        self.load_start = [round(x, 2) for x in os.getloadavg()]
        self.commit = _git("rev-parse", "HEAD")
        status = _git("status", "--porcelain", "--", ".", ":(exclude)bench/results")
        self.dirty = bool(status)
        self.command = " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv])

    def finish(self) -> dict[str, Any]:
        return {
            "commit": self.commit,
            "dirty": self.dirty,
            "command": self.command,
            "started_utc": self.started_utc,
            "finished_utc": _utc(),
            "cpu_model": _cpu_model(),
            "cores": os.cpu_count(),
            "load_average_start": self.load_start,
            "load_average_end": [round(x, 2) for x in os.getloadavg()],
            "versions": {
                "python": platform.python_version(),
                **{d: _version(d) for d in ("torch", "mlflow", "evidently", "dvc", "prefect")},
            },
        }


_PROVENANCE: Provenance | None = None


def start() -> Provenance:
    """Call first thing in a bench's main(): records commit, command, start time and load."""
    global _PROVENANCE
    _PROVENANCE = Provenance()
    if _PROVENANCE.dirty:
        print(
            "bench: the work tree has uncommitted changes outside bench/results; the result "
            "will say dirty=true and the results test will refuse it (commit first)",
            file=sys.stderr,
        )
    return _PROVENANCE


def session() -> dict[str, Any]:
    """This invocation's commit and start (a result finished over several runs lists each)."""
    if _PROVENANCE is None:
        raise RuntimeError("call common.start() first")
    return {"commit": _PROVENANCE.commit, "started_utc": _PROVENANCE.started_utc}


def ratio_summary(pairs: list[list[float]]) -> dict[str, float]:
    """Median, min and max of numerator/denominator over the pairs (the figure the tests check)."""
    ratios = [a / b for a, b in pairs]
    return {
        "median": float(statistics.median(ratios)),
        "min": min(ratios),
        "max": max(ratios),
        "n": len(ratios),
    }


def paired(
    numerator: tuple[str, Callable[[], float]],
    denominator: tuple[str, Callable[[], float]],
    pairs: int = MIN_PAIRS,
    warmup: int = 1,
) -> dict[str, Any]:
    """Measure a ratio from `pairs` interleaved pairs; each callable returns one repetition's figure.

    Order alternates A B, B A, A B ... so neither side always runs on a warmer or quieter machine.
    The returned dict is the form every ratio in a result file takes (the results test recomputes
    `ratio` from `pairs`).
    """
    if pairs < MIN_PAIRS:
        raise ValueError(f"a ratio needs at least {MIN_PAIRS} interleaved pairs, got {pairs}")
    (a_name, a), (b_name, b) = numerator, denominator
    for _ in range(warmup):
        a(), b()
    rows: list[list[float]] = []
    for i in range(pairs):
        if i % 2 == 0:
            x = a()
            y = b()
        else:
            y = b()
            x = a()
        rows.append([float(x), float(y)])
    return paired_result(a_name, b_name, rows)


def paired_result(a_name: str, b_name: str, rows: list[list[float]]) -> dict[str, Any]:
    """The stored form of a paired ratio (for benches that interleave their own pairs)."""
    if len(rows) < MIN_PAIRS:
        raise ValueError(f"a ratio needs at least {MIN_PAIRS} interleaved pairs, got {len(rows)}")
    return {
        "numerator": a_name,
        "denominator": b_name,
        "pairs": rows,
        "ratio": ratio_summary(rows),
        "method": PAIRED_METHOD,
    }


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
    """Write `bench/results/<name>.json` with provenance (call `start()` first); return the path.

    `out` elsewhere (a smoke run) keeps the committed result untouched. The file is written to a
    temporary name and renamed, so an interrupted bench never leaves half a result.
    """
    if _PROVENANCE is None:
        raise RuntimeError(f"bench {name}: call common.start() before write_result()")
    path = out or RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"bench": name, **result, "provenance": _PROVENANCE.finish()}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(body, indent=2, default=str) + "\n")
    os.replace(tmp, path)
    print(f"bench {name}: wrote {path}", file=sys.stderr)
    return path


def timed(fn: Callable[[], object]) -> Callable[[], float]:
    """Wrap `fn` so that calling it returns its wall time in seconds (for `paired`)."""

    def run() -> float:
        t = time.perf_counter()
        fn()
        return time.perf_counter() - t

    return run


def interleaved_rounds(
    runs: dict[str, Callable[[], float]], rounds: int = MIN_PAIRS, warmup: int = 1
) -> dict[str, list[float]]:
    """Call every run once per round, in listed order, then reversed, alternating; keep every figure.

    For benches comparing more than two variants: any two runs A, B give `rounds` pairs (round i's
    A with round i's B) in which A ran first, then B first, alternately, as in `paired`. Build the
    stored ratio with `pair_up`. `warmup` rounds run first and are discarded.
    """
    if rounds < MIN_PAIRS:
        raise ValueError(f"a ratio needs at least {MIN_PAIRS} interleaved pairs, got {rounds}")
    names = list(runs)
    for _ in range(warmup):
        for name in names:
            runs[name]()
    out: dict[str, list[float]] = {name: [] for name in names}
    for i in range(rounds):
        for name in names if i % 2 == 0 else names[::-1]:
            out[name].append(float(runs[name]()))
    return out


def pair_up(figures: dict[str, list[float]], numerator: str, denominator: str) -> dict[str, Any]:
    """The paired-ratio dict of two runs of `interleaved_rounds` (round i with round i)."""
    rows = [[x, y] for x, y in zip(figures[numerator], figures[denominator], strict=True)]
    return paired_result(numerator, denominator, rows)


def warn_if_oversubscribed(threads: int) -> None:
    """Say so when torch runs several threads on a box already busier than its cores: OpenMP
    barrier waits then made a resnet18 step 10-30x slower here (load 11, 2 threads vs 1)."""
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    if threads > 1 and load >= cores:
        print(
            f"bench: load average {load:.1f} on {cores} cores with {threads} torch threads; "
            "timings will be noisy and slow, consider --threads 1 (the result records it)",
            file=sys.stderr,
        )


def set_torch_threads(threads: int | None, quick: bool = False) -> None:
    """`--threads` for torch (1 in a smoke run: on a busy box 2 threads can make a step 10-30x
    slower), with a warning when the machine is already busier than its cores."""
    import torch

    if quick and threads is None:
        threads = 1
    if threads:
        torch.set_num_threads(threads)
    warn_if_oversubscribed(torch.get_num_threads())
