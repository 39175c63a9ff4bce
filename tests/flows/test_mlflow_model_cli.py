"""A trained champion (Fashion-MNIST, embedded sqlite store) through MLflow's own loader: the same
labels and probabilities as `xfer predict`, xfer's metadata in the model, the decision on its page."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.flows.conftest import make_workdir, write_window
from xferlib import registry
from xferlib.context import Context
from xferlib.data.fashion import FASHION_CLASSES

BIN = Path(sys.executable).parent


@pytest.mark.integration
@pytest.mark.usefixtures("mlflow_store")
def test_the_trained_champion_loads_in_mlflow_and_predicts_like_xfer_predict(
    tmp_path: Path, fashion: tuple[np.ndarray, np.ndarray]
) -> None:
    import mlflow.pyfunc

    x, y = fashion
    wd = make_workdir(tmp_path / "wd", fashion)
    ctx = Context.load(wd)
    name, uri = ctx.params.registry.model_name, ctx.wd.mlflow_uri
    files = sorted(write_window(tmp_path / "imgs", x[2500:2540]).glob("*.png"))
    out = subprocess.run(
        [str(BIN / "xfer"), "predict", "--model", f"models:/{name}@champion", *map(str, files)]
        + ["--workdir", str(wd), "--json"],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
    )
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)["predictions"]

    model = mlflow.pyfunc.load_model(f"models:/{name}@champion")  # MLFLOW_TRACKING_URI: the store
    decoded = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])
    got = model.predict(decoded)
    assert list(got["label"]) == [r["class"] for r in rows]
    assert [float(p) for p in got["probability"]] == [r["probability"] for r in rows]  # exact
    truth = [FASHION_CLASSES[int(i)] for i in y[2500:2540]]
    assert np.mean(np.array(got["label"]) == np.array(truth)) > 0.4  # a trained model (chance 0.1)

    xfer_meta = model.metadata.metadata["xfer"]
    predictor = registry.load_predictor(f"models:/{name}@champion", uri)
    assert xfer_meta["class_names"] == predictor.class_names  # the label map's order
    assert sorted(predictor.class_names) == sorted(FASHION_CLASSES)
    assert list(got.columns[2:]) == [f"prob_{c}" for c in predictor.class_names]
    assert xfer_meta["preprocess"]["image_size"] == 28
    info = registry.get_version_info(uri, name, "1")
    assert xfer_meta["weights_sha256"] == info.tags["xfer.weights_sha256"]
    assert info.source.startswith("models:/m-") and info.aliases == ["champion"]
    assert info.description.startswith("**Promoted** to champion.")
    assert "no champion yet" in info.description
