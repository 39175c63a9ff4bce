"""`xfer`: one CLI whose subcommands are the pipeline's stages.

Every command takes `--workdir` (default `XFER_HOME` or the current directory) and `--json` (one
machine-readable object on stdout). Heavy libraries are imported inside the handlers so that
`xfer --help` stays fast (torch, mlflow and evidently each cost seconds to import).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
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
Adder = Callable[[str, Handler, str], argparse.ArgumentParser]


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workdir", default=None, help="work directory (default: $XFER_HOME or cwd)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--params", default=None, help="params.yaml (default: <workdir>/params.yaml)")


def _cmd_init(a: argparse.Namespace) -> Result:
    from xferlib.stages import data

    return data.init(a.workdir, remote=a.remote)


def _cmd_ingest(a: argparse.Namespace) -> Result:
    from xferlib.stages import data

    return data.ingest(a.workdir, Path(a.src), dataset=a.dataset, split=a.split, push=not a.no_push)


def _cmd_prepare(a: argparse.Namespace) -> Result:
    from xferlib.stages import data

    return data.prepare(a.workdir, params_path=a.params)


def _cmd_train(a: argparse.Namespace) -> Result:
    from xferlib.stages import distributed  # one process in-process, more through torchrun

    return distributed.train(
        a.workdir,
        nproc=a.nproc or None,
        params_path=a.params,
        resume=a.resume,
        register=not a.no_register,
    )


def _cmd_evaluate(a: argparse.Namespace) -> Result:
    from xferlib.stages import training

    return training.evaluate(a.workdir, params_path=a.params)


def _cmd_predict(a: argparse.Namespace) -> Result:
    from xferlib.stages import serving

    return serving.predict(a.workdir, a.model, [Path(p) for p in a.images])


def _cmd_registry(a: argparse.Namespace) -> Result:
    from xferlib.stages import serving

    if a.action == "history":
        return serving.history(a.workdir, a.name, params_path=a.params)
    return serving.rollback(a.workdir, a.name, params_path=a.params)


def _cmd_rollback(a: argparse.Namespace) -> Result:
    from xferlib.stages import serving

    return serving.rollback(a.workdir, a.name, params_path=a.params)


def _cmd_lineage(a: argparse.Namespace) -> Result:
    from xferlib.stages import serving

    return serving.lineage(a.workdir, a.model)


def _cmd_score(a: argparse.Namespace) -> Result:
    from xferlib.stages import monitor

    return monitor.score(
        a.workdir, a.src, model_uri=a.model, window_id=a.window, params_path=a.params
    )


def _cmd_drift(a: argparse.Namespace) -> Result:
    from xferlib.stages import monitor

    return monitor.drift(
        a.workdir, current=a.current, model_uri=a.model, window_id=a.window, params_path=a.params
    )


def _cmd_shift(a: argparse.Namespace) -> Result:
    from xferlib.data import shifts

    n = shifts.shift_folder(Path(a.src), a.kind, a.severity, Path(a.out), seed=a.seed)
    return Plain({"written": n, "kind": a.kind, "severity": a.severity, "out": str(a.out)})


def _cmd_retrain(a: argparse.Namespace) -> Result:
    from xferlib import loop  # the retrain lifecycle: in-flight marker, alerts, failure reported

    outcome = loop.retrain_now(
        a.workdir, a.feedback, drift_report=a.drift_report, force=a.force, params_path=a.params
    )
    return outcome


def _cmd_monitor(a: argparse.Namespace) -> Result:
    """Score + drift check + decide (+ retrain when decided and --feedback is given): for cron."""
    from xferlib import loop

    orch = loop.Direct(a.workdir, a.params)
    out = loop.monitor_window(orch, a.window_id, src=a.src, feedback=a.feedback).to_dict()
    if out["retrained"] and out["retrained"]["status"] == "labels_needed":
        out["next"] = (
            "retrain decided, no labels: label this window's images, then "
            f"`xfer retrain --feedback DIR --drift-report {out['report_id']}`"
        )
    if out["retrained"] and out["retrained"]["status"] == "failed":
        raise RuntimeError(f"retrain {out['report_id']} failed: {out['retrained']['error']}")
    return Plain(out)


def _cmd_demo(a: argparse.Namespace) -> Result:
    if a.no_prefect:
        from xferlib.demo import run as demo

        return Plain(demo.run(a.workdir, quick=a.quick, keep=a.keep, as_json=a.json))
    from flows import demo as flow_demo  # the orchestrated loop: a real Prefect server + runner

    return Plain(flow_demo.run(a.workdir, quick=a.quick, keep=a.keep, as_json=a.json))


def _cmd_serve(a: argparse.Namespace) -> Result:
    from flows import deploy  # flows/ is the only place that imports prefect

    deploy.serve_all(a.workdir)
    return Plain({})


def _add_data(add: Adder) -> None:
    p = add(
        "init", _cmd_init, "make the work directory a git + DVC repo with params.yaml and dvc.yaml"
    )
    p.add_argument(
        "--remote", default=None, help="DVC remote URL (default: <workdir>/.dvcstore; s3://...)"
    )
    p = add(
        "ingest",
        _cmd_ingest,
        "validate, de-duplicate and version images (ImageFolder, flat folder, IDX)",
    )
    p.add_argument("src")
    p.add_argument(
        "--dataset",
        default=None,
        help="dataset name under <workdir>/data (default: params data.dataset)",
    )
    p.add_argument(
        "--split", default=None, choices=["train", "test"], help="force the split of every image"
    )
    p.add_argument(
        "--no-push", action="store_true", help="version with DVC but do not push to the remote"
    )
    add(
        "prepare",
        _cmd_prepare,
        "stratified splits, label map, optional labels_per_class subsampling",
    )


def _add_training(add: Adder) -> None:
    p = add(
        "train",
        _cmd_train,
        "fine-tune the backbone (strategy from params) and register a challenger",
    )
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    p.add_argument(
        "--no-register", action="store_true", help="do not log to MLflow / register (dvc repro)"
    )
    p.add_argument(
        "--nproc",
        type=int,
        default=0,
        help="processes for torchrun/DDP (default: $XFER_TRAIN_NPROC, else params distributed.nproc)",
    )
    add("evaluate", _cmd_evaluate, "metrics JSON + plots on the test split")
    p = add(
        "retrain",
        _cmd_retrain,
        "warm-start from the champion on new labelled data + replay, then gate",
    )
    p.add_argument("--feedback", required=True, help="ImageFolder of newly labelled images")
    p.add_argument("--drift-report", default=None)
    p.add_argument(
        "--force", action="store_true", help="start even if a retrain is marked in flight"
    )


def _add_registry(add: Adder) -> None:
    p = add("predict", _cmd_predict, "classify images with a registered model")
    p.add_argument("--model", required=True, help="models:/NAME@champion or models:/NAME/N")
    p.add_argument("images", nargs="+")
    p = add("registry", _cmd_registry, "registry history / rollback")
    p.add_argument("action", choices=["history", "rollback"])
    p.add_argument("name", nargs="?", default=None)
    p = add("rollback", _cmd_rollback, "move champion back to the previous champion")
    p.add_argument("name", nargs="?", default=None)
    p = add(
        "lineage", _cmd_lineage, "data version, run, parent, drift report and flow run of a version"
    )
    p.add_argument("model")


def _add_monitoring(add: Adder) -> None:
    p = add(
        "score", _cmd_score, "score a production batch with the champion into the monitoring log"
    )
    p.add_argument("src", help="a folder, an s3:// prefix, or image files")
    p.add_argument("--model", default=None)
    p.add_argument("--window", default=None, help="window id (default: a new one)")
    p = add("drift", _cmd_drift, "drift check of a window against the champion's reference")
    p.add_argument("--current", default=None, help="a folder / s3:// prefix scored on the fly")
    p.add_argument(
        "--window", default=None, help="a window id of the monitoring log (default: latest)"
    )
    p.add_argument("--model", default=None)
    p = add("shift", _cmd_shift, "write a corrupted copy of an image folder (shift catalogue)")
    p.add_argument("src")
    p.add_argument("--kind", required=True)
    p.add_argument("--severity", type=int, required=True, choices=[1, 2, 3, 4, 5])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("out")


def _add_orchestration(add: Adder) -> None:
    p = add(
        "monitor", _cmd_monitor, "score a window, check drift, decide (and retrain if labelled)"
    )
    p.add_argument("src", help="a folder, an s3:// prefix, or image files")
    p.add_argument("--window-id", default=None, help="window id (default: w<UTC timestamp>)")
    p.add_argument("--feedback", default=None, help="labelled images to retrain on if decided")
    p = add("demo", _cmd_demo, "the whole loop on embedded defaults and real data")
    p.add_argument("--quick", action="store_true", help="tiny sizes (tests)")
    p.add_argument("--keep", action="store_true", help="reuse an existing demo workdir")
    p.add_argument(
        "--no-prefect", action="store_true", help="run the loop without the Prefect server"
    )
    add("serve", _cmd_serve, "serve the Prefect deployments (needs PREFECT_API_URL)")


def _build() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="xfer", description=__doc__.splitlines()[0] if __doc__ else None
    )
    sub = ap.add_subparsers(dest="command", required=True)

    def add(name: str, fn: Handler, help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_)
        _common(p)
        p.set_defaults(fn=fn)
        return p

    for group in (_add_data, _add_training, _add_registry, _add_monitoring, _add_orchestration):
        group(add)
    return ap


# Root causes that libraries bury under a generic first line (SQLAlchemy's "autoflush" notice).
_ROOT_CAUSES = ("No space left on device", "database or disk is full")


def _one_line(exc: BaseException) -> str:
    """The message's first line, or the buried root cause (a full disk) with its fix."""
    chain, seen = [exc], 0
    while chain[-1].__cause__ or chain[-1].__context__:
        chain.append(chain[-1].__cause__ or chain[-1].__context__)  # type: ignore[arg-type]
        seen += 1
        if seen > 10:
            break
    text = "\n".join(str(e) for e in chain)
    for cause in _ROOT_CAUSES:
        if cause in text and cause not in str(exc).strip().split("\n")[0]:
            return f"{cause} (in the work dir); free disk space or move --workdir to a larger disk"
    first = str(exc).strip().splitlines()
    return first[0] if first else repr(exc)


def main(argv: list[str] | None = None) -> int:
    args = _build().parse_args(argv)
    try:
        # with --json, stdout carries exactly one JSON object: progress and alerts go to stderr
        with contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext():
            result = args.fn(args).to_dict()
    except KeyboardInterrupt:
        print("xfer: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one line for the user; the traceback with XFER_DEBUG=1
        from xferlib import env

        if env.debug():
            raise
        print(
            f"xfer {args.command}: error: {type(exc).__name__}: {_one_line(exc)}", file=sys.stderr
        )
        return 2
    if args.json:
        print(json.dumps(result, default=str))
    elif result:
        for key, value in result.items():
            print(
                f"{key}: {json.dumps(value, default=str) if isinstance(value, dict | list) else value}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
