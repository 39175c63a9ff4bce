"""Saving and loading a Classifier as `model.pt` (a state_dict) + `model.json` (what rebuilds it).

Loading checks the file's sha256 before unpickling and unpickles with `weights_only=True`, so a
swapped or crafted `model.pt` is refused instead of executed. Each path hashes model.pt once:
`save_model` hashes the bytes it writes; `load_model` reads the file once, hashes those bytes and
unpickles the same bytes (so the file cannot change between the check and the load).
"""

from __future__ import annotations

import io
import json
import pickle
from pathlib import Path
from typing import Any

import torch

from xferlib.atomic import atomic_write_bytes, atomic_write_text, sha256_bytes
from xferlib.data.imageset import Preprocess
from xferlib.models.backbones import create_backbone
from xferlib.models.classifier import Classifier

MODEL_FILE = "model.pt"
META_FILE = "model.json"


class ModelIntegrityError(RuntimeError):
    """model.pt does not match its recorded hash, or is not a plain state_dict."""


def save_model(
    model: Classifier,
    out_dir: str | Path,
    class_names: list[str],
    extra: dict[str, Any] | None = None,
) -> str:
    """Write model.pt and model.json into `out_dir` (each atomically); return model.pt's sha256."""
    if len(class_names) != model.num_classes:
        raise ValueError(
            f"{len(class_names)} class names for a {model.num_classes}-class head; pass one name per class"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    torch.save(state, buf)
    data = buf.getvalue()
    atomic_write_bytes(out / MODEL_FILE, data)
    digest = sha256_bytes(data)
    meta = {
        "backbone": model.spec.name,
        "num_classes": model.num_classes,
        "class_names": list(class_names),
        "preprocess": model.preprocess.to_dict(),
        "weights_sha256": digest,
        "provenance": model.spec.provenance,
        "extra": extra or {},
    }
    atomic_write_text(out / META_FILE, json.dumps(meta, indent=2, sort_keys=True))
    return digest


def read_meta(model_dir: str | Path) -> dict[str, Any]:
    """model.json of a saved model."""
    path = Path(model_dir) / META_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"no {META_FILE} in {model_dir}; point at a directory written by save_model"
        )
    return json.loads(path.read_text())


def load_model(
    model_dir: str | Path, expected_sha256: str | None = None
) -> tuple[Classifier, dict[str, Any]]:
    """Rebuild the Classifier saved in `model_dir`; returns it (eval mode) and its model.json.

    model.pt must match `expected_sha256` (when given, e.g. a registry tag) and model.json's own
    record; both are checked against one hash of the bytes that are then unpickled.
    """
    meta = read_meta(model_dir)
    weights = Path(model_dir) / MODEL_FILE
    data = weights.read_bytes()
    actual = sha256_bytes(data)
    for label, want in (("expected", expected_sha256), ("model.json", meta.get("weights_sha256"))):
        if want is not None and want != actual:
            raise ModelIntegrityError(
                f"{weights} has sha256 {actual} but {label} says {want}; refusing to load - "
                "re-export the model or fix the reference"
            )
    pre = Preprocess.from_dict(meta["preprocess"])
    backbone = create_backbone(meta["backbone"], pretrained=False, image_size=pre.image_size)
    backbone.preprocess = pre
    model = Classifier(backbone, int(meta["num_classes"]))
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, AttributeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelIntegrityError(
            f"{weights} is not a plain state_dict and was refused ({first}); re-export it with save_model"
        ) from exc
    model.load_state_dict(state, strict=True)
    backbone.provenance = f"{meta.get('provenance', 'unknown')} -> fine-tuned {model_dir}"
    return model.eval(), meta
