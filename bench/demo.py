"""The README's demo table: `xfer demo --json` run several times on a fresh work directory each.

Each run is the product's main job as `make demo` runs it (a real Prefect server and runner, the
drift-triggered retrain deployment), with nothing configured. The result keeps every run's
summary (windows and verdicts, retrains and gate decisions, v1 vs champion accuracy on the clean
and shifted holdouts, recovery, stage times) and, for each figure, the median with min and max
over the runs.

    .venv/bin/python bench/demo.py                 # 3 runs, ~3-5 min each on 2 cores
    .venv/bin/python bench/demo.py --runs 1 --quick --out /tmp/demo_smoke.json   # smoke
Writes bench/results/demo.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

XFER = Path(sys.executable).parent / "xfer"


def run_demo(workdir: Path, quick: bool, prefect: bool) -> dict[str, Any]:
    """One `xfer demo --json` in a fresh work directory; its parsed summary plus wall time."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "PREFECT_API_URL")
    }
    env["PATH"] = f"{XFER.parent}:{env['PATH']}"
    cmd = [str(XFER), "demo", "--json", "--workdir", str(workdir)]
    cmd += ["--quick"] * quick + ["--no-prefect"] * (not prefect)
    t = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
    wall = time.perf_counter() - t
    if out.returncode != 0:
        raise SystemExit(f"xfer demo failed ({out.returncode}):\n{out.stderr[-4000:]}")
    summary = json.loads(out.stdout)
    return {"wall_seconds": round(wall, 1), "summary": _slim(summary)}


def _slim(s: dict[str, Any]) -> dict[str, Any]:
    """The summary without machine-local paths (work dir, report files, UI commands)."""
    drop = {"workdir", "mlflow_ui", "ui", "drift_reports"}
    return {k: v for k, v in s.items() if k not in drop}


def figures(run: dict[str, Any]) -> dict[str, float]:
    """The per-run figures the README quotes."""
    s = run["summary"]
    acc, champ = s["accuracy"], s["champion_version"]
    v1 = min(acc, key=int)
    return {
        "v1_clean": acc[v1]["clean"],
        "v1_shifted": acc[v1]["shifted"],
        "champion_clean": acc[champ]["clean"],
        "champion_shifted": acc[champ]["shifted"],
        "recovered_fraction": s["recovered_fraction"],
        "clean_change": s["clean_change"],
        "loop_seconds": s["seconds"],
        "wall_seconds": run["wall_seconds"],
        **{f"stage_{k}_seconds": v for k, v in s.get("stage_seconds", {}).items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description="xfer demo, repeated")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="xfer demo --quick (smoke, not a result)")
    ap.add_argument("--no-prefect", action="store_true", help="plain calls instead of Prefect")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    if args.runs < 3 and args.out is None:
        raise SystemExit(
            "the committed result needs at least 3 runs (or pass --out for a smoke run)"
        )
    common.quiet_env()
    common.start()
    runs = []
    with common.sampling_load(10.0) as load, tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            runs.append(run_demo(Path(tmp) / f"demo-{i}", args.quick, not args.no_prefect))
            print(f"run {i}: {figures(runs[-1])}", file=sys.stderr, flush=True)
    per_run = [figures(r) for r in runs]
    keys = [k for k in per_run[0] if all(k in f for f in per_run)]
    common.write_result("demo", {
        "what": "xfer demo --json on a fresh work directory, repeated",
        "mode": {"quick": args.quick, "prefect": not args.no_prefect},
        "runs": runs,
        "figures": {k: common.spread([f[k] for f in per_run]) for k in keys},
        "load_average_1m": load.summary(),
    }, out=args.out)  # fmt: skip


if __name__ == "__main__":
    main()
