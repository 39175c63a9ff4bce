"""The `xfer` argument parser: the options every command shares, then one group of commands per
part of the loop (data, training, registry, monitoring, orchestration)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from xferlib.cli import commands as c
from xferlib.cli.commands import Handler

Adder = Callable[[str, Handler, str], argparse.ArgumentParser]


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workdir", default=None, help="work directory (default: $XFER_HOME or cwd)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--params", default=None, help="params.yaml (default: <workdir>/params.yaml)")


def _add_data(add: Adder) -> None:
    p = add(
        "init", c.cmd_init, "make the work directory a git + DVC repo with params.yaml and dvc.yaml"
    )
    p.add_argument(
        "--remote", default=None, help="DVC remote URL (default: <workdir>/.dvcstore; s3://...)"
    )
    p = add(
        "ingest",
        c.cmd_ingest,
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
        c.cmd_prepare,
        "stratified splits, label map, optional labels_per_class subsampling",
    )


def _add_training(add: Adder) -> None:
    p = add(
        "train",
        c.cmd_train,
        "fine-tune the backbone (strategy from params) and register a challenger",
    )
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    p.add_argument(
        "--no-register",
        action="store_true",
        help="fit and save model/ only: no MLflow run, no version, no gate",
    )
    p.add_argument(
        "--nproc",
        type=int,
        default=0,
        help="processes for torchrun/DDP (default: $XFER_TRAIN_NPROC, else params distributed.nproc)",
    )
    add("evaluate", c.cmd_evaluate, "metrics JSON + plots on the test split")
    p = add(
        "retrain",
        c.cmd_retrain,
        "warm-start from the champion on new labelled data + replay, then gate",
    )
    p.add_argument("--feedback", required=True, help="ImageFolder of newly labelled images")
    p.add_argument("--drift-report", default=None)
    p.add_argument(
        "--force", action="store_true", help="start even if a retrain is marked in flight"
    )


def _add_registry(add: Adder) -> None:
    p = add("predict", c.cmd_predict, "classify images with a registered model")
    p.add_argument("--model", required=True, help="models:/NAME@champion or models:/NAME/N")
    p.add_argument("images", nargs="+")
    p = add("registry", c.cmd_registry, "registry history / rollback")
    p.add_argument("action", choices=["history", "rollback"])
    p.add_argument("name", nargs="?", default=None)
    p = add("rollback", c.cmd_rollback, "move champion back to the previous champion")
    p.add_argument("name", nargs="?", default=None)
    p = add(
        "lineage",
        c.cmd_lineage,
        "data version, run, parent, drift report and flow run of a version",
    )
    p.add_argument("model")


def _add_monitoring(add: Adder) -> None:
    p = add(
        "score", c.cmd_score, "score a production batch with the champion into the monitoring log"
    )
    p.add_argument("src", help="a folder, an s3:// prefix, or image files")
    p.add_argument("--model", default=None)
    p.add_argument("--window", default=None, help="window id (default: a new one)")
    p = add("drift", c.cmd_drift, "drift check of a window against the champion's reference")
    p.add_argument("--current", default=None, help="a folder / s3:// prefix scored on the fly")
    p.add_argument(
        "--window", default=None, help="a window id of the monitoring log (default: latest)"
    )
    p.add_argument("--model", default=None)
    p = add("shift", c.cmd_shift, "write a corrupted copy of an image folder (shift catalogue)")
    p.add_argument("src")
    p.add_argument("--kind", required=True)
    p.add_argument("--severity", type=int, required=True, choices=[1, 2, 3, 4, 5])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("out")


def _add_orchestration(add: Adder) -> None:
    p = add(
        "monitor", c.cmd_monitor, "score a window, check drift, decide (and retrain if labelled)"
    )
    p.add_argument("src", help="a folder, an s3:// prefix, or image files")
    p.add_argument("--window-id", default=None, help="window id (default: w<UTC timestamp>)")
    p.add_argument("--feedback", default=None, help="labelled images to retrain on if decided")
    p = add("demo", c.cmd_demo, "the whole loop on embedded defaults and real data")
    p.add_argument("--quick", action="store_true", help="tiny sizes (tests)")
    p.add_argument("--keep", action="store_true", help="reuse an existing demo workdir")
    p.add_argument(
        "--no-prefect", action="store_true", help="run the loop without the Prefect server"
    )
    p = add("incidents", c.cmd_incidents, "incidents opened by drift, their state and lineage")
    p.add_argument("action", nargs="?", choices=["list", "close"], default="list")
    p.add_argument("incident", nargs="?", default=None, help="close: the incident id")
    p = add("labels", c.cmd_labels, "request labels for an incident / import annotators' labels")
    p.add_argument("action", choices=["import", "request"])
    p.add_argument(
        "target",
        help="import: a Label Studio JSON export or a CSV image_id,label; request: an incident id",
    )
    p.add_argument("--incident", default=None, help="import: the incident (default: the open one)")
    add("serve", c.cmd_serve, "serve the Prefect deployments (needs PREFECT_API_URL)")
    add("ui", c.cmd_ui, "the MLflow, Evidently (and Prefect) UIs over the work dir, until Ctrl-C")


def build(description: str | None = None) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="xfer", description=description)
    sub = ap.add_subparsers(dest="command", required=True)

    def add(name: str, fn: Handler, help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_)
        _common(p)
        p.set_defaults(fn=fn)
        return p

    for group in (_add_data, _add_training, _add_registry, _add_monitoring, _add_orchestration):
        group(add)
    return ap
