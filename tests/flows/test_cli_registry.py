"""The registry through the CLI on a real work directory: history, lineage, rollback, predict."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.flows.conftest import assert_default_gate, make_workdir, write_feedback, write_window
from xferlib.context import Context

BIN = Path(sys.executable).parent


def xfer(*args: str) -> dict:
    out = subprocess.run(
        [str(BIN / "xfer"), *args, "--json"], capture_output=True, text=True, env=os.environ.copy()
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


# slow suite (CI runs it): keeps `make test` under its 15-minute budget
@pytest.mark.slow
@pytest.mark.usefixtures("mlflow_store")
def test_history_lineage_rollback_and_predict_through_the_cli(tmp_path: Path, fashion) -> None:
    from xferlib.stages import retrain

    x, y = fashion
    wd = make_workdir(tmp_path / "wd", fashion)
    name = Context.load(wd).params.registry.model_name
    fb = write_feedback(tmp_path / "fb", x[2000:2300], y[2000:2300], "invert")
    v2 = retrain.retrain(
        wd, fb, drift_report="report-123", flow_run_id="flow-run-456", feedback_id="t"
    ).gate
    # earned under the default gate: the feedback teaches the inverted domain and the full replay
    # of the old training set keeps the old holdout
    assert v2.decision.action == "promote", v2.decision.reasons
    assert v2.champion_accuracy is not None
    assert v2.accuracy["new"] > (v2.champion_accuracy["new"] or 0.0)

    lineage = xfer("lineage", f"models:/{name}/{v2.version}", "--workdir", str(wd))
    assert lineage["parent_version"] == "1"
    assert lineage["drift_report"] == "report-123" and lineage["flow_run_id"] == "flow-run-456"
    assert lineage["data_version"].startswith("md5:") and lineage["run_id"] == v2.run_id
    # v1 came from `xfer train`: its lineage names the work dir commit holding its params + dvc.yaml
    first = xfer("lineage", f"models:/{name}/1", "--workdir", str(wd))
    at_rev = subprocess.run(["git", "-C", str(wd), "show", f"{first['pipeline_rev']}:params.yaml"],
                            capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert at_rev == (wd / "params.yaml").read_text() and first["dvc_exp"] == ""

    history = xfer("registry", "history", name, "--workdir", str(wd))["history"]
    assert [(h["version"], h["action"]) for h in history][-2:] == [
        ("1", "promoted"),
        ("2", "promoted"),
    ]

    back = xfer("rollback", name, "--workdir", str(wd))
    assert back["champion_after"] == "1"
    history = xfer("registry", "history", name, "--workdir", str(wd))["history"]
    assert history[-1]["action"] == "rolled_back"

    img = next(write_window(tmp_path / "one", x[:1]).glob("*.png"))
    pred = xfer("predict", "--model", f"models:/{name}@champion", str(img), "--workdir", str(wd))
    assert pred["version"] == "1" and len(pred["predictions"]) == 1
    assert 0.0 < pred["predictions"][0]["probability"] <= 1.0
    assert_default_gate(wd)  # v2's promotion above was earned under the shipped gate
