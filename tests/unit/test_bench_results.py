"""Every figure's source: each `bench/results/*.json` was written by its own bench script on a
commit of this history, says how, and carries the raw measurements its ratios come from."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results"
PROVENANCE_KEYS = {
    "commit",
    "dirty",
    "command",
    "started_utc",
    "finished_utc",
    "cpu_model",
    "cores",
    "load_average_start",
    "load_average_end",
    "versions",
}
FILES = sorted(RESULTS.glob("*.json"))


def _walk(node: Any, path: str = "$") -> Iterator[tuple[str, Any]]:
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{path}[{i}]")


def test_results_folder_holds_only_result_files() -> None:
    strays = [p.name for p in RESULTS.iterdir() if p.suffix != ".json"]
    assert not strays, f"bench/results holds files no bench writes as a result: {strays}"
    assert FILES, "bench/results is empty: the README's figures have no source"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_result_names_its_bench_script(path: Path) -> None:
    body = json.loads(path.read_text())
    assert body.get("bench") == path.stem, f"{path.name}: 'bench' must be {path.stem!r}"
    assert (ROOT / "bench" / f"{path.stem}.py").exists(), f"no bench/{path.stem}.py writes it"
    assert not body.get("quick"), f"{path.name} is a smoke run (--quick), not a result"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_result_has_provenance_from_a_clean_commit_of_this_history(path: Path) -> None:
    prov = json.loads(path.read_text()).get("provenance")
    assert isinstance(prov, dict), f"{path.name} has no provenance"
    missing = PROVENANCE_KEYS - set(prov)
    assert not missing, f"{path.name} provenance lacks {sorted(missing)}"
    assert prov["dirty"] is False, f"{path.name} was made from uncommitted code"
    assert "bench/" in prov["command"] and prov["command"].split()[1].endswith(f"{path.stem}.py")
    ancestor = subprocess.run(
        ["git", "merge-base", "--is-ancestor", prov["commit"], "HEAD"], cwd=ROOT
    )
    assert ancestor.returncode == 0, f"{path.name}: commit {prov['commit']} is not in the history"
    assert prov["started_utc"] <= prov["finished_utc"]
    assert {"torch", "mlflow", "evidently", "dvc"} <= set(prov["versions"])


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_every_ratio_is_recomputed_from_its_pairs(path: Path) -> None:
    body = json.loads(path.read_text())
    for where, node in _walk(body):
        if not isinstance(node, dict) or "ratio" not in node:
            continue
        assert "pairs" in node, f"{path.name} {where}: a ratio without the pairs it came from"
        pairs = node["pairs"]
        assert len(pairs) >= 5, f"{path.name} {where}: {len(pairs)} pairs (at least 5 needed)"
        ratios = [a / b for a, b in pairs]
        got = node["ratio"]
        assert got["median"] == pytest.approx(statistics.median(ratios), rel=1e-9), where
        assert got["min"] == pytest.approx(min(ratios), rel=1e-9), where
        assert got["max"] == pytest.approx(max(ratios), rel=1e-9), where
        assert got["n"] == len(pairs), where


def test_figures_in_readme_and_docs_match_the_result_files() -> None:
    """`make figures` renders the marked sections; a stale section means a figure nobody re-ran."""
    out = subprocess.run(
        [sys.executable, "bench/figures.py", "--check"], cwd=ROOT, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr
