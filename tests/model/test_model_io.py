"""save_model / load_model: round trip, hash checks, and refusing pickled code."""

from __future__ import annotations

import json
import pickle
from typing import Any

import pytest
import torch

from xferlib.atomic import sha256_file
from xferlib.models import (
    Classifier,
    ModelIntegrityError,
    create_backbone,
    load_model,
    save_model,
)


def _model() -> Classifier:
    torch.manual_seed(0)
    return Classifier(create_backbone("tiny", pretrained=False, image_size=12), num_classes=3)


def test_round_trip_gives_the_same_outputs_and_metadata(tmp_path) -> None:
    model = _model().eval()
    digest = save_model(model, tmp_path, ["a", "b", "c"], {"data_version": "abc.dir"})
    loaded, meta = load_model(tmp_path, expected_sha256=digest)
    x = torch.randn(2, 3, 12, 12)
    assert torch.equal(model(x), loaded(x))
    assert meta["class_names"] == ["a", "b", "c"] and meta["extra"]["data_version"] == "abc.dir"
    assert meta["weights_sha256"] == digest == sha256_file(tmp_path / "model.pt")
    assert loaded.preprocess == model.preprocess
    assert not list(tmp_path.glob(".*tmp")), "temporary files left behind"


def test_hash_mismatch_names_both_hashes(tmp_path) -> None:
    digest = save_model(_model(), tmp_path, ["a", "b", "c"])
    wrong = "0" * 64
    with pytest.raises(ModelIntegrityError) as err:
        load_model(tmp_path, expected_sha256=wrong)
    assert digest in str(err.value) and wrong in str(err.value)


def test_swapped_weights_file_is_caught_by_model_json(tmp_path) -> None:
    save_model(_model(), tmp_path, ["a", "b", "c"])
    other = _model()
    torch.nn.init.zeros_(other.head.weight)
    torch.save(other.state_dict(), tmp_path / "model.pt")
    with pytest.raises(ModelIntegrityError, match="model.json says"):
        load_model(tmp_path)


class _Exploit:
    def __reduce__(self):
        return (exec, ("open(__import__('os').environ['XFER_PWNED'], 'w').write('pwned')",))


def test_crafted_pickle_is_refused_without_running_it(tmp_path, monkeypatch) -> None:
    marker = tmp_path / "pwned"
    monkeypatch.setenv("XFER_PWNED", str(marker))
    save_model(_model(), tmp_path, ["a", "b", "c"])
    with open(tmp_path / "model.pt", "wb") as f:
        pickle.dump({"head.weight": _Exploit()}, f, protocol=2)
    meta = json.loads((tmp_path / "model.json").read_text())
    meta["weights_sha256"] = sha256_file(tmp_path / "model.pt")  # the attacker fixes the hash too
    (tmp_path / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelIntegrityError, match="refused"):
        load_model(tmp_path)
    assert not marker.exists(), "the pickle's payload ran"


class _CountingHashlib:
    """Stands in for `hashlib` inside xferlib.atomic and counts the sha256 objects it makes."""

    def __init__(self) -> None:
        import hashlib

        self._real, self.calls = hashlib, 0

    def sha256(self, data: bytes = b"") -> Any:
        self.calls += 1
        return self._real.sha256(data)


def test_model_pt_is_hashed_once_per_save_and_once_per_load(tmp_path, monkeypatch) -> None:
    from xferlib import atomic
    from xferlib.registry.runs import _weights_sha256

    counter = _CountingHashlib()
    monkeypatch.setattr(atomic, "hashlib", counter)
    digest = save_model(_model(), tmp_path, ["a", "b", "c"])
    assert counter.calls == 1, "save_model hashes the bytes it writes, once"
    assert _weights_sha256(tmp_path) == digest and counter.calls == 1, "logging reuses model.json's"
    load_model(tmp_path, expected_sha256=digest)
    assert counter.calls == 2, "load_model checks both expected hashes against one hash"


def test_logging_a_model_without_a_recorded_hash_hashes_the_file(tmp_path) -> None:
    from xferlib.registry.runs import _weights_sha256

    digest = save_model(_model(), tmp_path, ["a", "b", "c"])
    meta = json.loads((tmp_path / "model.json").read_text())
    del meta["weights_sha256"]
    (tmp_path / "model.json").write_text(json.dumps(meta))
    assert _weights_sha256(tmp_path) == digest
    (tmp_path / "model.pt").unlink()
    with pytest.raises(FileNotFoundError, match="save_model"):
        _weights_sha256(tmp_path)
