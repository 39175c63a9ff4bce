"""A registered version as an MLflow model: `mlflow.pyfunc.load_model("models:/NAME@champion")`.

The model directory MLflow stores for a version (`models:/m-<id>`) holds:
- `artifacts/xfer_model/` - xfer's own saved model (model.pt state_dict + model.json), the one
  copy of the weights: `registry.load_predictor` reads it from here too;
- `MLmodel` - the `python_function` flavour over `XferPyfuncModel`, the signature, the metadata
  (`metadata["xfer"]`: class names, preprocessing, input layout, weights sha256) and the
  `model_config` the loader checks the weights against;
- `input_example.json` / `serving_input_example.json` - one real image, in the signature's layout;
- `requirements.txt` - the running versions, pinned (never inferred: MLflow would import and time
  every package, and may reach for the network).

Input: uint8 images `(N, H, W, 3)` (channels last: what PIL / imageio decode to), any H and W;
each image is resized once by the model's own `Preprocess`. Output: a DataFrame with `label`
(the most probable class), `probability` (its probability) and `prob_<class>` per class in the
model's class order. Prediction goes through xfer's `Predictor`, so it equals `xfer predict` to the bit.

The model is logged "from code" (`pyfunc_code.py`, a three-line script MLflow stores as text and
runs at load), not as a cloudpickle of the wrapper: loading it unpickles nothing of xfer's.
This module imports mlflow at import time (it subclasses `PythonModel`); only `registry.runs`
imports it, lazily, and that script when MLflow loads the model.
"""

from __future__ import annotations

from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.pyfunc.model import PythonModel

from xferlib.models.predictor import Prediction, Predictor

ARTIFACT = "xfer_model"  # the key in `artifacts=` (its folder is named in MLmodel: `artifact_dir`)
CODE_FILE = Path(__file__).with_name("pyfunc_code.py")
INPUT_LAYOUT = "NHWC uint8 RGB"
# what loading and running the wrapper imports, pinned to the running versions
REQUIREMENTS = ("xfer", "mlflow", "torch", "torchvision", "timm", "numpy", "pandas")


def prob_column(class_name: str) -> str:
    return f"prob_{class_name}"


def prediction_frame(out: Prediction) -> pd.DataFrame:
    """The pyfunc output: `label`, `probability` (of that label), `prob_<class>` for every class."""
    frame = pd.DataFrame({"label": out.labels, "probability": out.probs.max(axis=1)})
    for i, name in enumerate(out.class_names):
        frame[prob_column(name)] = out.probs[:, i]
    return frame


def as_nchw(images: Any) -> np.ndarray:
    """`(N, H, W, 3)` uint8 (the signature's layout) -> the `(N, 3, H, W)` the Predictor takes."""
    x = np.asarray(images)
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(
            f"expected uint8 images (N, H, W, 3), got {x.dtype} {x.shape}; "
            "convert grayscale to 3 channels and floats to 0..255 uint8"
        )
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


class XferPyfuncModel(PythonModel):
    """xfer's Predictor behind MLflow's pyfunc interface (and so `mlflow models serve`)."""

    def load_context(self, context: Any) -> None:
        """Load `artifacts/xfer_model`, refusing weights whose sha256 is not the logged one."""
        from xferlib.models.io import load_model

        expected = (context.model_config or {}).get("weights_sha256")
        if not expected:
            raise ValueError("the model's model_config has no weights_sha256; re-log it with xfer")
        model, meta = load_model(context.artifacts[ARTIFACT], expected_sha256=expected)
        self.predictor = Predictor(model, meta, name="", version="")

    # `np.ndarray` bare: MLflow reads predict's hints, and this is the one it takes as "no schema
    # of my own" (the explicit `signature()` is the contract) without warning
    def predict(
        self,
        context: Any,
        model_input: np.ndarray,
        params: dict[str, Any] | None = None,
    ) -> pd.DataFrame:
        """`model_input`: uint8 `(N, H, W, 3)`; returns `prediction_frame` of the Predictor's output."""
        return prediction_frame(self.predictor.predict(as_nchw(model_input)))


def signature(class_names: list[str]) -> Any:
    """uint8 `(-1, -1, -1, 3)` in; `label`, `probability` and one `prob_<class>` per class out."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema, TensorSpec

    inputs = Schema([TensorSpec(np.dtype(np.uint8), (-1, -1, -1, 3))])
    cols: list[ColSpec | TensorSpec] = [ColSpec("string", "label"), ColSpec("float", "probability")]
    cols += [ColSpec("float", prob_column(c)) for c in class_names]
    return ModelSignature(inputs=inputs, outputs=Schema(cols))


def pinned_requirements() -> list[str]:
    """`name==version` of every package the wrapper needs, as installed here (a local build tag
    like `+cu128` dropped: no index serves it). A package not installed as a distribution (xfer
    run from a checkout) is left out."""
    out = []
    for dist in REQUIREMENTS:
        try:
            version = importlib_metadata.version(dist)
        except importlib_metadata.PackageNotFoundError:
            continue
        out.append(f"{dist}=={version.split('+')[0]}")
    return out


def artifact_dir(model_dir: Path) -> Path:
    """The saved xfer model (model.pt + model.json) inside a downloaded MLflow model directory."""
    from mlflow.models import Model

    conf = Model.load(str(model_dir)).flavors["python_function"]
    return model_dir / str(conf["artifacts"][ARTIFACT]["path"])


def xfer_metadata(meta: dict[str, Any], sha256: str) -> dict[str, Any]:
    """What the MLmodel file says about the model (shown by `mlflow models` tools and the UI)."""
    return {
        "backbone": meta.get("backbone"),
        "class_names": list(meta["class_names"]),
        "preprocess": meta["preprocess"],
        "input_layout": INPUT_LAYOUT,
        "weights_sha256": sha256,
        "provenance": meta.get("provenance"),
    }
