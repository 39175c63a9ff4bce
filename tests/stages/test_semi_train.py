"""`xfer train` with `finetune.semi_supervised: pseudo_label`: the unlabelled pool is the dataset's
images outside every split (here: the train images a few-label run left out)."""

from __future__ import annotations

import json

import numpy as np
import yaml

from tests.flows.conftest import SOURCE_IMAGES, TINY
from xferlib.data.fashion import FASHION_CLASSES, export_imagefolder


def test_train_pseudo_labels_the_left_out_images_and_records_it(tmp_path, fashion) -> None:
    from xferlib.data.shards import read_manifest
    from xferlib.data.splits import read_splits
    from xferlib.stages import data, training

    x, y = fashion
    root = tmp_path / "wd"
    data.init(root)
    raw = yaml.safe_load((root / "params.yaml").read_text())
    for section, values in TINY.items():
        raw[section].update(values)
    raw["prepare"]["labels_per_class"] = 10
    # threshold 0: a tiny backbone on 100 labels is never confident; the cap is what binds here
    raw["finetune"].update(
        semi_supervised="pseudo_label", pseudo_threshold=0.0, pseudo_per_class=15, epochs=2
    )
    (root / "params.yaml").write_text(yaml.safe_dump(raw))
    export_imagefolder(x[:SOURCE_IMAGES], y[:SOURCE_IMAGES], FASHION_CLASSES, tmp_path / "src", "s")
    data.ingest(root, tmp_path / "src")
    data.prepare(root)
    result = training.train(root, register=False)

    semi = json.loads((root / "model" / "semi.json").read_text())
    splits = read_splits(root / "prepared")
    manifest = read_manifest(root / "data" / "source")
    outside = len(set(manifest["sha256"]) - set(splits["sha256"]))
    assert (splits["split"] == "train").sum() == 10 * len(FASHION_CLASSES)
    assert semi["pseudo_labels"]["scored"] == outside > 300
    per_class = semi["pseudo_labels"]["per_class"]
    assert len(per_class) == len(FASHION_CLASSES) and max(per_class) <= 15
    assert semi["pseudo_labels"]["kept"] == sum(per_class) > 0
    assert semi["kept"] in ("teacher", "student")
    kept_run = semi[semi["kept"]]
    assert result.train.best_val_accuracy == kept_run["best_val_accuracy"]
    assert np.isfinite(kept_run["best_val_accuracy"])
