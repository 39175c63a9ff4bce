"""`xfer predict` and `xfer score` on a registered model: an image's score is its own, whatever else
is in the folder, and its drift properties describe the file, not the model's resized copy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.flows.conftest import make_workdir
from xferlib import monitoring
from xferlib.context import Context
from xferlib.drift import image_properties
from xferlib.stages import monitor, serving

# Fashion-MNIST is 28 px; the folder mixes that most common size with resized copies, so the old
# path (stack at the most common size, then resize to the input size) resized the others twice.
SIDES = [(28, 28)] * 30 + [(40, 40)] * 6 + [(20, 33)] * 6


def _mixed_folder(folder: Path, pixels: np.ndarray) -> list[Path]:
    folder.mkdir(parents=True)
    paths = []
    for i, ((h, w), img) in enumerate(zip(SIDES, pixels, strict=False)):
        im = Image.fromarray(img).convert("RGB").resize((w, h), Image.Resampling.BILINEAR)
        im.save(folder / f"f{i:03d}.png")
        paths.append(folder / f"f{i:03d}.png")
    return paths


@pytest.mark.usefixtures("mlflow_store")
def test_predict_and_score_give_an_image_its_own_score_in_a_mixed_folder(
    tmp_path: Path, fashion
) -> None:
    x, _ = fashion
    wd = make_workdir(tmp_path / "wd", fashion, extra={"finetune": {"epochs": 1}})
    uri = f"models:/{Context.load(wd).params.registry.model_name}/1"  # champion or not
    paths = _mixed_folder(tmp_path / "mixed", x[2000 : 2000 + len(SIDES)])
    odd = paths[31]  # 40x40, among mostly 28x28 files

    together = serving.predict(wd, uri, paths).predictions
    alone = serving.predict(wd, uri, [odd]).predictions
    assert alone[0] == together[31]  # class and probability, exactly

    monitor.score(wd, str(tmp_path / "mixed"), model_uri=uri, window_id="mixed")
    monitor.score(wd, [str(odd)], model_uri=uri, window_id="alone")
    root = Context.load(wd).wd.monitoring
    mixed, single = (monitoring.read_window(root, w) for w in ("mixed", "alone"))
    row = mixed.set_index("image_id").loc[single["image_id"].iloc[0]]
    for col in ("max_softmax", "pred"):
        assert row[col] == single[col].iloc[0], col
    emb = [c for c in single if c.startswith("emb_")]
    assert np.array_equal(row[emb].to_numpy(float), single[emb].iloc[0].to_numpy(float))
    pixels = torch.from_numpy(np.array(Image.open(odd))).permute(2, 0, 1)[None]
    own = image_properties(pixels, [40], [40]).iloc[0]
    for col in ("brightness", "contrast", "sharpness", "width", "height"):
        assert row[col] == own[col] and single[col].iloc[0] == own[col], col
