"""A registered version is an MLflow model: MLflow's own loader and server predict what `xfer
predict` predicts, on a real MLflow server (and embedded sqlite), with the gate's decision on the
version's page."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.integration.conftest import QUIET_ENV, free_port
from xferlib import env, registry
from xferlib.config import RegistryParams
from xferlib.registry import CandidateMetrics, decide_promotion

pytestmark = pytest.mark.integration
BIN = Path(sys.executable).parent
CLASSES = ["cat", "dog", "bird"]  # what the conftest logged_run saves


def _champion(uri: str, name: str, root: Path, logged_run: Callable[..., str]) -> str:
    """v1 promoted (first version), v2 promoted over it: v2 is champion, v1 previous."""
    params = RegistryParams(min_accuracy=0.0)
    v1 = registry.register_candidate(uri, name, logged_run(uri, root, seed=1))
    registry.apply_decision(
        uri, name, decide_promotion(CandidateMetrics(v1, None, 0.6), None, params)
    )
    v2 = registry.register_candidate(uri, name, logged_run(uri, root, seed=2))
    decision = decide_promotion(
        CandidateMetrics(v2, 0.8, 0.6), CandidateMetrics(v1, 0.5, 0.6), params
    )
    registry.apply_decision(uri, name, decision)
    return v2


def _images(folder: Path, n: int = 7, side: int = 24) -> tuple[list[Path], np.ndarray]:
    """n PNG files (varied content, one size) and the same images decoded, uint8 (n, H, W, 3)."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    files = []
    for i in range(n):
        img = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
        img[: side // 2] //= i + 1  # different brightness per image: different predictions
        files.append(folder / f"img{i}.png")
        Image.fromarray(img).save(files[-1])
    decoded = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])
    return files, decoded


def _xfer_predict(wd: Path, uri: str, model: str, files: list[Path]) -> list[dict]:
    out = subprocess.run(
        [str(BIN / "xfer"), "predict", "--model", model, *map(str, files)]
        + ["--workdir", str(wd), "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, "MLFLOW_TRACKING_URI": uri},
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)["predictions"]
    assert [r["image"] for r in rows] == [f.name for f in files]
    return rows


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    from xferlib.stages import data

    data.init(tmp_path / "wd")
    return tmp_path / "wd"


def test_pyfunc_load_of_the_champion_predicts_what_xfer_predict_does(
    tracking_uri: str, tmp_path: Path, workdir: Path, logged_run: Callable[..., str]
) -> None:
    import mlflow.pyfunc

    name = f"mm-{os.urandom(4).hex()}"
    v2 = _champion(tracking_uri, name, tmp_path, logged_run)
    files, decoded = _images(tmp_path / "imgs")
    rows = _xfer_predict(workdir, tracking_uri, f"models:/{name}@champion", files)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", tracking_uri)
        model = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    got = model.predict(decoded)
    assert list(got["label"]) == [r["class"] for r in rows]
    assert [float(p) for p in got["probability"]] == [r["probability"] for r in rows]  # exact
    assert len(set(got["label"])) > 1 or got["probability"].std() > 0  # not one constant row
    probs = got[[f"prob_{c}" for c in CLASSES]].to_numpy()
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert np.array_equal(probs.max(axis=1), got["probability"].to_numpy())
    same = registry.load_predictor(f"models:/{name}/{v2}", tracking_uri).predict(
        decoded.transpose(0, 3, 1, 2).copy()
    )
    assert np.array_equal(probs, same.probs)  # one model, one inference path

    info = registry.get_version_info(tracking_uri, name, v2)
    assert info.aliases == ["champion"]  # challenger left it when it was promoted
    assert info.description.startswith("**Promoted** to champion, replacing v1.")
    assert "| new labelled data | 0.8000 | 0.5000 |" in info.description
    assert "- new data: v2 0.8000 vs v1 0.5000" in info.description
    first = registry.get_version_info(tracking_uri, name, "1")
    assert first.aliases == ["previous-champion"] and "no champion yet" in first.description


@pytest.fixture
def served(mlflow_server: object, tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """`serve(model_uri) -> base URL`: `mlflow models serve --env-manager local` on 127.0.0.1
    against the shared server, in its own process group, killed at the end."""
    procs: list[subprocess.Popen[bytes]] = []
    uri = mlflow_server.uri  # type: ignore[attr-defined]
    # serve execs `uvicorn` from PATH: the venv's, as an activated venv would have it
    path = os.pathsep.join([str(BIN), os.environ.get("PATH", "")])

    def serve(model_uri: str) -> str:
        port = free_port()
        log = tmp_path / "serve.log"
        cmd = [str(BIN / "mlflow"), "models", "serve", "-m", model_uri, "--env-manager", "local"]
        cmd += ["-p", str(port), "-h", "127.0.0.1", "-w", "1"]
        with open(log, "wb") as out:
            procs.append(
                subprocess.Popen(
                    cmd,
                    stdout=out,
                    stderr=out,
                    env=env.quiet_environ(**QUIET_ENV, MLFLOW_TRACKING_URI=uri, PATH=path),
                    start_new_session=True,
                )
            )
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert procs[-1].poll() is None, (
                f"mlflow models serve exited: {log.read_text()[-2000:]}"
            )
            try:
                with urllib.request.urlopen(f"{base}/ping", timeout=2) as resp:
                    if resp.status == 200:
                        return base
            except OSError:
                time.sleep(0.5)
        raise AssertionError(f"mlflow models serve not up in 120 s: {log.read_text()[-2000:]}")

    yield serve
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
            proc.wait(timeout=30)


@pytest.mark.slow  # starts `mlflow models serve` (~20 s); pyfunc loading is checked in the default suite
def test_mlflow_models_serve_answers_invocations_like_xfer_predict(
    mlflow_server: object,
    served: Callable[[str], str],
    tmp_path: Path,
    workdir: Path,
    logged_run: Callable[..., str],
) -> None:
    uri = mlflow_server.uri  # type: ignore[attr-defined]
    name = f"serve-{os.urandom(4).hex()}"
    _champion(uri, name, tmp_path, logged_run)
    files, decoded = _images(tmp_path / "imgs")
    rows = _xfer_predict(workdir, uri, f"models:/{name}@champion", files)
    base = served(f"models:/{name}@champion")
    body = json.dumps({"inputs": decoded.tolist()}).encode()
    request = urllib.request.Request(
        f"{base}/invocations", body, {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as resp:
        answer = json.loads(resp.read())["predictions"]
    assert [a["label"] for a in answer] == [r["class"] for r in rows]
    assert [a["probability"] for a in answer] == pytest.approx(
        [r["probability"] for r in rows], abs=1e-7
    )
    for a in answer:
        assert sum(a[f"prob_{c}"] for c in CLASSES) == pytest.approx(1.0, abs=1e-5)
    channels_first = decoded.transpose(0, 3, 1, 2)  # (N, 3, H, W): not the signature's layout
    bad = urllib.request.Request(
        f"{base}/invocations",
        json.dumps({"inputs": channels_first.tolist()}).encode(),
        {"Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(bad, timeout=60)
    assert err.value.code == 400
