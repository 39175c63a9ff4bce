"""One inference path: outside training, images reach a model only through `Predictor`.

Two paths drifted apart once (scoring resized an image according to the other files of its batch,
`xfer predict` did not), so this walks the AST of xferlib and fails on a second one coming back.
"""

from __future__ import annotations

import ast
from pathlib import Path

LIB = Path(__file__).resolve().parents[2] / "xferlib"
TRAINING_ONLY = {"predict", "extract_features", "cached_features"}


def _finetune_names(path: Path) -> set[str]:
    """Names a module imports from xferlib.finetune (lazy imports included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("xferlib.finetune"):
            names |= {a.name for a in node.names} | {node.module or ""}
        elif isinstance(node, ast.Import):
            names |= {a.name for a in node.names if a.name.startswith("xferlib.finetune")}
    return names


def test_no_module_outside_finetune_runs_inference_through_the_training_package() -> None:
    offenders = {
        path.relative_to(LIB).as_posix(): sorted(_finetune_names(path) & TRAINING_ONLY)
        for path in LIB.rglob("*.py")
        if "finetune" not in path.relative_to(LIB).parts
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_evaluation_does_not_import_the_training_package() -> None:
    assert _finetune_names(LIB / "evaluate.py") == set()


def test_the_training_package_no_longer_offers_an_inference_helper() -> None:
    import xferlib.finetune as finetune

    assert not hasattr(finetune, "predict")
