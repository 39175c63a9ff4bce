"""`xfer demo`: the whole loop on embedded defaults, offline, on real data.

ingest the source domain -> train v1 -> champion -> stream production windows through score +
monitor: clean windows (no alarm), then a shifted stream -> drift -> alert -> retraining with the
labelled feedback of that stream -> challenger -> gate -> v2 champion -> the next shifted window no
longer alarms. Each window goes through the one retrain lifecycle (`xferlib.loop`), run by an
orchestrator: `Direct` (plain calls, `--no-prefect`) here, or the Prefect one in flows/demo.py (a
real server, a runner executing the retrain deployment).
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path
from typing import Any, Protocol

import yaml

from xferlib import loop
from xferlib.atomic import atomic_write_json, atomic_write_text
from xferlib.context import Context
from xferlib.demo.world import DemoConfig, DemoData, as_imageset, make_demo_data
from xferlib.stages import data, training
from xferlib.stages.results import IngestStageResult, TrainStageResult
from xferlib.workdir import Workdir


class DemoOrchestrator(Protocol):
    """The demo's steps: ingest and train, then one window at a time through the retrain lifecycle."""

    def ingest(self, src: Path, split: str | None) -> IngestStageResult: ...
    def train(self) -> TrainStageResult: ...
    def window(self, src: Path, window_id: str, feedback: Path) -> loop.MonitorOutcome: ...


class Direct(loop.Direct):
    """Plain function calls: the lifecycle of `xferlib.loop`, the same one the flows run."""

    def ingest(self, src: Path, split: str | None) -> IngestStageResult:
        return data.ingest(self.workdir, src, split=split)

    def train(self) -> TrainStageResult:
        data.prepare(self.workdir)
        return training.train(self.workdir)

    def window(self, src: Path, window_id: str, feedback: Path) -> loop.MonitorOutcome:
        return loop.monitor_window(self, window_id, src=str(src), feedback=feedback)


class Progress:
    def __init__(self, stream: Any) -> None:
        self.t0, self.stream = time.monotonic(), stream
        self.stages: dict[str, float] = {}

    def step(self, name: str, msg: str, t_start: float) -> None:
        dt = time.monotonic() - t_start
        self.stages[name] = round(self.stages.get(name, 0.0) + dt, 2)
        print(
            f"[{time.monotonic() - self.t0:6.1f}s] {msg} ({dt:.1f}s)", file=self.stream, flush=True
        )


def setup_workdir(workdir: Path | None, cfg: DemoConfig, keep: bool) -> Path:
    root = Path(workdir or "demo-work").resolve()
    if root.exists() and not keep:
        shutil.rmtree(root)
    data.init(root)
    wd = Workdir(root)
    raw = yaml.safe_load(wd.params_file.read_text())
    raw["model"]["image_size"] = cfg.image_size
    raw["prepare"]["val_fraction"] = 0.1
    # a rejected retrain must not be retried on every following window of the same drift
    raw["drift"].update(
        min_window=min(200, cfg.window),
        reference_size=min(2000, 10 * cfg.per_class_train),
        cooldown_minutes=30.0,
    )
    raw["retrain"]["replay_size"] = 10 * cfg.per_class_train
    atomic_write_text(wd.params_file, yaml.safe_dump(raw, sort_keys=False))
    return root


def run_loop(
    root: Path, cfg: DemoConfig, orch: DemoOrchestrator, progress: Progress
) -> dict[str, Any]:
    t = time.monotonic()
    world = make_demo_data(Workdir(root).demo_incoming, cfg)
    progress.step(
        "data",
        f"demo data: {cfg.per_class_train}/class source, {len(world.windows)} windows of {cfg.window}, shift {cfg.shift}@{cfg.severity}",
        t,
    )
    v1 = _first_champion(orch, world, progress)
    windows: list[dict[str, Any]] = []
    retrains: list[dict[str, Any]] = []
    for wid, folder, shifted in world.windows:
        t = time.monotonic()
        res = orch.window(folder, wid, world.feedback)
        windows.append(
            {
                "window": wid,
                "shifted": shifted,
                "status": res.status,
                "action": _action(res),
                "report_html": res.report_html,
            }
        )
        # a window that retrains is timed as "drift_to_champion": drift check -> retrain -> gate
        stage = "drift_to_champion" if res.retrained else "windows"
        progress.step(stage, f"window {wid}: {res.status} -> {_action(res)}", t)
        if res.retrained is not None and res.retrained.status == "finished":
            retrains.append(_retrain_row(wid, res.retrained, progress.stream))
    return {"world": world, "windows": windows, "retrains": retrains, "v1": v1}


def _first_champion(orch: DemoOrchestrator, world: DemoData, progress: Progress) -> str:
    """Ingest the source domain and train v1 on it; its version."""
    t = time.monotonic()
    orch.ingest(world.source_train, None)
    ing = orch.ingest(world.source_test, "test")
    progress.step("ingest", f"ingested the source domain, data version {ing.data_version}", t)
    t = time.monotonic()
    v1 = orch.train().gate
    if v1 is None:
        raise RuntimeError("the demo's first train registered no version")
    progress.step(
        "train",
        f"trained v{v1.version}: {v1.decision.action} (holdout acc {v1.accuracy['holdout']:.3f})",
        t,
    )
    return v1.version


def _retrain_row(wid: str, r: loop.RetrainOutcome, stream: Any) -> dict[str, Any]:
    print(f"           retrained v{r.version}: {r.action} ({'; '.join(r.reasons)})", file=stream)
    return {
        "window": wid,
        "version": r.version,
        "decision": r.action,
        "reasons": list(r.reasons),  # the gate's figures, for the record
        "flow_run_id": r.flow_run_id,
    }


def _action(res: loop.MonitorOutcome) -> str:
    if res.retrained is not None and res.retrained.status == "failed":
        return f"retrain failed: {res.retrained.error}"
    if res.retrain:
        return "retrain"
    return "alarm, no retrain: " + res.reason if res.drift else "none"


def final_table(root: Path, world: DemoData, v1: str) -> dict[str, Any]:
    """v1 vs the final champion on the clean and the shifted holdouts."""
    from xferlib.data.splits import read_label_map
    from xferlib.evaluate import evaluate
    from xferlib.registry import champion_version, load_predictor

    ctx = Context.load(root)
    label_map = read_label_map(ctx.wd.prepared)
    name = ctx.params.registry.model_name
    champ = str(champion_version(ctx.wd.mlflow_uri, name))
    acc: dict[str, dict[str, float]] = {}
    for version in dict.fromkeys([v1, champ]):
        pred = load_predictor(f"models:/{name}/{version}", ctx.wd.mlflow_uri)
        acc[version] = {
            split: evaluate(pred, as_imageset(*arrays, label_map)).accuracy
            for split, arrays in (("clean", world.clean_test), ("shifted", world.shifted_test))
        }
    return {"champion_version": champ, "accuracy": acc}


def summarise(
    root: Path, ran: dict[str, Any], table: dict[str, Any], progress: Progress
) -> dict[str, Any]:
    from xferlib.alerts import read_alerts
    from xferlib.versioning import data_version

    acc, v1, champ = table["accuracy"], str(ran["v1"]), table["champion_version"]
    lost = acc[v1]["clean"] - acc[v1]["shifted"]
    recovered = (acc[champ]["shifted"] - acc[v1]["shifted"]) / lost if lost > 0 else 0.0
    wd = Workdir(root)
    datasets = sorted(p.name for p in wd.data.iterdir() if p.is_dir())
    return {
        "workdir": str(root),
        "windows": [
            {"window": w["window"], "status": w["status"], "action": w["action"]}
            for w in ran["windows"]
        ],
        "retrains": ran["retrains"],
        "champion_version": champ,
        "accuracy": acc,
        "recovered_fraction": round(recovered, 3),
        "clean_change": round(acc[champ]["clean"] - acc[v1]["clean"], 4),
        "data_versions": {d: str(data_version(root, wd.dataset(d))) for d in datasets},
        "alerts": [
            {
                "kind": a.get("kind"),
                "model_version": a.get("model_version"),
                "message": a.get("message"),
            }
            for a in read_alerts(wd.alerts)
        ],
        "stage_seconds": progress.stages,
        "seconds": round(time.monotonic() - progress.t0, 1),
        "ui": f"xfer ui --workdir {_shown(wd.root)}",
        "drift_reports": sorted(str(p) for p in wd.reports.glob("*/*.html")),
    }


def _shown(root: Path) -> str:
    """The work dir as the user would type it: relative when under the current directory."""
    try:
        return str(root.relative_to(Path.cwd())) or "."
    except ValueError:
        return str(root)


def print_table(s: dict[str, Any], stream: Any) -> None:
    p = lambda *a: print(*a, file=stream)  # noqa: E731
    p("\nwindow            verdict              action")
    for w in s["windows"]:
        p(f"{w['window']:<17} {w['status']:<20} {w['action']}")
    p("\nmodel  clean acc  shifted acc")
    for v, a in s["accuracy"].items():
        p(f"v{v:<5} {a['clean']:9.3f}  {a['shifted']:11.3f}")
    p(
        f"\nchampion: v{s['champion_version']}; recovered {100 * s['recovered_fraction']:.0f}% of the shifted-domain loss; clean change {100 * s['clean_change']:+.1f} pts"
    )
    p("data versions: " + ", ".join(f"{k}={v}" for k, v in s["data_versions"].items()))
    p(f"alerts: {len(s['alerts'])} (see {s['workdir']}/alerts.jsonl); loop took {s['seconds']}s")
    if s["drift_reports"]:
        p(f"drift report: {s['drift_reports'][-1]}")
    p(
        f"UIs: `{s['ui']}` opens MLflow (runs, versions) and Evidently (drift over time); Ctrl-C stops them"
    )


def run(
    workdir: str | None,
    *,
    quick: bool = False,
    keep: bool = False,
    orchestrate: bool = False,
    as_json: bool = False,
    orchestrator: Any = None,
) -> dict[str, Any]:
    cfg = DemoConfig.quick() if quick else DemoConfig()
    stream = sys.stderr if as_json else sys.stdout
    progress = Progress(stream)
    root = setup_workdir(Path(workdir) if workdir else None, cfg, keep)
    orch = orchestrator(root) if orchestrator else Direct(root)
    ran = run_loop(root, cfg, orch, progress)
    t = time.monotonic()
    table = final_table(root, ran["world"], str(ran["v1"]))
    progress.step(
        "final_eval", "evaluated v1 and the champion on the clean and shifted holdouts", t
    )
    summary = summarise(root, ran, table, progress)
    atomic_write_json(Workdir(root).demo_summary, summary)
    if not as_json:
        print_table(summary, stream)
    return summary if as_json else {}
