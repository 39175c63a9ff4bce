"""Wall time of each stage of `xfer demo`, and from a drifted window to a promoted champion.

Runs `.venv/bin/xfer demo --no-prefect --workdir <tmp> --json` (and, with `--modes direct
prefect`, the Prefect-orchestrated demo: real server + runner) as a subprocess, reads
`stage_seconds` and `seconds` from its JSON and the progress lines it prints on stderr
(`[elapsed] message (step seconds)`), from which it derives:
- drift_to_champion_s: from the start of the window whose verdict triggered the retrain (score +
  drift + alert + retrain + gate + promotion) to the "retrained vN: promote" line;
- retrain_only_s: that window's step minus the median clean window's step (score + drift alone).

    .venv/bin/python bench/loop_timing.py [--modes direct [prefect]] [--quick]

Writes bench/results/loop_timing.json: "ratio" = drift_to_champion_s / the initial `train` stage
seconds (prepare + fine-tune + register + gate) of the direct run. Below 1 means reacting to drift
costs less than the first training did.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import machine, quiet_env, sampling_load, write_result

XFER = Path(sys.executable).with_name("xfer")
LINE = re.compile(r"^\[\s*(?P<at>[\d.]+)s\] (?P<msg>.*) \((?P<dt>[\d.]+)s\)$")


def run_demo(
    mode: str, quick: bool, root: Path
) -> tuple[dict[str, Any], list[dict[str, Any]], float]:
    """One `xfer demo` run: its JSON summary, its progress lines, its wall seconds."""
    cmd = [str(XFER), "demo", "--workdir", str(root / mode), "--json"]
    cmd += ["--no-prefect"] if mode == "direct" else []
    cmd += ["--quick"] if quick else []
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    lines = [m.groupdict() for m in map(LINE.match, proc.stderr.splitlines()) if m]
    steps = [{"at": float(d["at"]), "msg": d["msg"], "dt": float(d["dt"])} for d in lines]
    return json.loads(proc.stdout.strip().splitlines()[-1]), steps, wall


def reaction(steps: list[dict[str, Any]]) -> dict[str, Any]:
    """Drift window -> promoted champion, from the progress lines."""
    windows = [s for s in steps if s["msg"].startswith("window ")]
    clean = [s["dt"] for s in windows if "-> none" in s["msg"]]
    trig = next((s for s in windows if s["msg"].endswith("-> retrain")), None)
    done = next((s for s in steps if s["msg"].startswith("retrained ")), None)
    if trig is None or done is None:
        return {"retrained": False}
    start = trig["at"] - trig["dt"]
    clean_s = statistics.median(clean) if clean else 0.0
    return {"retrained": True, "window": trig["msg"], "outcome": done["msg"],
            "drift_to_champion_s": round(done["at"] - start, 1), "clean_window_s": clean_s,
            "retrain_only_s": round(trig["dt"] - clean_s, 1)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--modes", nargs="+", default=["direct"], choices=["direct", "prefect"])
    ap.add_argument("--quick", action="store_true", help="xfer demo --quick (smoke check)")
    args = ap.parse_args()
    quiet_env()
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="xfer-bench-demo-") as tmp, sampling_load(10.0) as load:
        for mode in args.modes:
            summary, steps, wall = run_demo(mode, args.quick, Path(tmp))
            out[mode] = {"stage_seconds": summary["stage_seconds"], "seconds": summary["seconds"],
                         "process_wall_s": round(wall, 1), "steps": steps, **reaction(steps),
                         "windows": summary["windows"], "accuracy": summary["accuracy"],
                         "recovered_fraction": summary["recovered_fraction"]}  # fmt: skip
            print(f"[{mode}] {out[mode]['stage_seconds']} total {summary['seconds']}s", flush=True)
    direct = out[args.modes[0]]
    train_s = direct["stage_seconds"]["train"]
    react = direct.get("drift_to_champion_s")
    result = {
        "ratio": round(react / train_s, 3) if react else None,
        "what": "seconds from drifted window to promoted champion / seconds of the initial train stage",
        "headline_mode": args.modes[0],
        "runs": out,
        "config": {"quick": args.quick, "modes": args.modes},
        "load_average_1m": load.summary(),
        "machine": machine(),
    }
    path = write_result("loop_timing", result)
    print(f"drift->champion / initial train: {result['ratio']}; wrote {path}")


if __name__ == "__main__":
    main()
