"""One small handler per `xfer` command: parse nothing, call a stage (or the loop), return its
typed result. Heavy imports stay inside the handlers."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol


class Result(Protocol):
    """What a handler returns: a stage's typed result (its `to_dict()` is the `--json` object)."""

    def to_dict(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Plain:
    """A result that already is a JSON object (the demo's summary; `serve` prints nothing)."""

    data: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return self.data


Handler = Callable[[argparse.Namespace], Result]


def cmd_init(a: argparse.Namespace) -> Result:
    from xferlib.stages import data

    return data.init(a.workdir, remote=a.remote)


def cmd_ingest(a: argparse.Namespace) -> Result:
    from xferlib.stages import data

    return data.ingest(a.workdir, Path(a.src), dataset=a.dataset, split=a.split, push=not a.no_push)


def cmd_prepare(a: argparse.Namespace) -> Result:
    from xferlib.stages import data

    return data.prepare(a.workdir, params_path=a.params)


def cmd_train(a: argparse.Namespace) -> Result:
    from xferlib.stages import training  # one process in-process, more through torchrun

    return training.train(
        a.workdir,
        nproc=a.nproc or None,
        params_path=a.params,
        resume=a.resume,
        register=not a.no_register,
    )


def cmd_evaluate(a: argparse.Namespace) -> Result:
    from xferlib.stages import training

    return training.evaluate(a.workdir, params_path=a.params)


def cmd_predict(a: argparse.Namespace) -> Result:
    from xferlib.stages import serving

    return serving.predict(a.workdir, a.model, [Path(p) for p in a.images])


def cmd_registry(a: argparse.Namespace) -> Result:
    from xferlib.stages import serving

    if a.action == "history":
        return serving.history(a.workdir, a.name, params_path=a.params)
    return serving.rollback(a.workdir, a.name, params_path=a.params)


def cmd_rollback(a: argparse.Namespace) -> Result:
    from xferlib.stages import serving

    return serving.rollback(a.workdir, a.name, params_path=a.params)


def cmd_lineage(a: argparse.Namespace) -> Result:
    from xferlib.stages import serving

    return serving.lineage(a.workdir, a.model)


def cmd_score(a: argparse.Namespace) -> Result:
    from xferlib.stages import monitor

    return monitor.score(
        a.workdir, a.src, model_uri=a.model, window_id=a.window, params_path=a.params
    )


def cmd_drift(a: argparse.Namespace) -> Result:
    from xferlib.stages import monitor

    return monitor.drift(
        a.workdir, current=a.current, model_uri=a.model, window_id=a.window, params_path=a.params
    )


def cmd_shift(a: argparse.Namespace) -> Result:
    from xferlib.data import shifts

    n = shifts.shift_folder(Path(a.src), a.kind, a.severity, Path(a.out), seed=a.seed)
    return Plain({"written": n, "kind": a.kind, "severity": a.severity, "out": str(a.out)})


def cmd_retrain(a: argparse.Namespace) -> Result:
    from xferlib import loop  # the retrain lifecycle: in-flight marker, alerts, failure reported

    outcome = loop.retrain_now(
        a.workdir, a.feedback, drift_report=a.drift_report, force=a.force, params_path=a.params
    )
    return outcome


def cmd_monitor(a: argparse.Namespace) -> Result:
    """Score + drift check + decide (+ retrain when decided and --feedback is given): for cron."""
    from xferlib import loop

    orch = loop.Direct(a.workdir, a.params)
    out = loop.monitor_window(orch, a.window_id, src=a.src, feedback=a.feedback).to_dict()
    if out["retrained"] and out["retrained"]["status"] == "labels_needed":
        out["next"] = (
            f"retrain decided, no labels: incident {out['retrained']['incident']} asked for "
            "labels (alert labels_requested, `xfer incidents`); import them with "
            "`xfer labels import FILE`, or label this window yourself and run "
            f"`xfer retrain --feedback DIR --drift-report {out['report_id']}`"
        )
    if out["retrained"] and out["retrained"]["status"] == "failed":
        raise RuntimeError(f"retrain {out['report_id']} failed: {out['retrained']['error']}")
    return Plain(out)


def cmd_incidents(a: argparse.Namespace) -> Result:
    from xferlib.stages import incidents

    if a.action == "close":
        if not a.incident:
            raise ValueError(
                "xfer incidents close needs an incident id; `xfer incidents` lists them"
            )
        return incidents.close_incident(a.workdir, a.incident)
    return incidents.list_incidents(a.workdir)


def cmd_labels(a: argparse.Namespace) -> Result:
    from xferlib.stages import labels

    if a.action == "request":
        return labels.request_labels(a.workdir, a.target, params_path=a.params)
    result = labels.import_labels(a.workdir, a.target, a.incident, params_path=a.params)
    if not result.ready_to_retrain:
        return result
    return Plain(result.to_dict() | {"retrain": _labels_arrived(a, result.incident)})


def _labels_arrived(a: argparse.Namespace, incident: str) -> dict[str, Any] | None:
    """Enough labels: retrain once, through Prefect (an event the retrain deployment answers)
    when PREFECT_API_URL is set, else here with plain calls."""
    from xferlib import env, loop
    from xferlib.workdir import Workdir

    workdir = str(Workdir.resolve(a.workdir).root)
    if env.prefect_api_url():
        from flows.pipeline import labels_arrived_flow  # flows/ is the only place importing prefect

        return labels_arrived_flow(workdir, incident)
    outcome = loop.labels_arrived(loop.Direct(workdir, a.params), incident)
    return outcome.to_dict() if outcome else None


def cmd_demo(a: argparse.Namespace) -> Result:
    if a.no_prefect:
        from xferlib.demo import run as demo

        return Plain(demo.run(a.workdir, quick=a.quick, keep=a.keep, as_json=a.json))
    from flows import demo as flow_demo  # the orchestrated loop: a real Prefect server + runner

    return Plain(flow_demo.run(a.workdir, quick=a.quick, keep=a.keep, as_json=a.json))


def cmd_ui(a: argparse.Namespace) -> Result:
    """The MLflow and Evidently UIs (and Prefect's, when configured) until Ctrl-C / SIGTERM."""
    import sys

    from xferlib import ui

    # with --json, main points stdout at stderr: the one object goes to the real stdout
    out = (sys.__stdout__ or sys.stdout) if a.json else sys.stdout
    ui.serve(a.workdir, out, as_json=a.json)  # returns only by raising (Ctrl-C, a server died)
    return Plain({})


def cmd_serve(a: argparse.Namespace) -> Result:
    from flows import deploy  # flows/ is the only place that imports prefect

    deploy.serve_all(a.workdir)
    return Plain({})
