"""Load a registered version for inference, refusing weights that do not match their recorded hash.

A version's source is its run's logged MLflow model (`models:/m-<id>`, `registry.pyfunc_model`);
xfer's saved model (model.pt + model.json) sits inside it, and that one copy is what both
`mlflow.pyfunc.load_model` and `load_predictor` read. The sha256 of `model.pt` was taken when
`save_model` wrote it, tagged on the run when the run logged the model and copied onto the version
at registration (`xfer.weights_sha256`); a file swapped in the artifact store afterwards is
refused before it is unpickled by `load_model`'s one hash check (and unpickling itself is
`weights_only`, see `xferlib.models.io`). Only the model's files are read here: its code file is
never executed.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from xferlib.models.predictor import Predictor
from xferlib.registry.client import call_with_retries, mlflow_client
from xferlib.registry.runs import SHA_TAG
from xferlib.registry.versions import VersionInfo, get_version_info, resolve_uri


def download_model_dir(tracking_uri: str, info: VersionInfo, dst: Path) -> Path:
    """Copy the version's MLflow model into `dst`; returns the xfer model folder inside it."""
    import mlflow.artifacts

    from xferlib.registry.pyfunc_model import artifact_dir

    model_id = info.source.removeprefix("models:/")
    if not info.source.startswith("models:/m-"):
        raise ValueError(
            f"{info.name} v{info.version} has source {info.source!r}, not a logged MLflow model "
            "(models:/m-<id>); it was registered by an older xfer: register the model again"
        )
    client = mlflow_client(tracking_uri)
    location = call_with_retries(
        tracking_uri,
        f"read logged model {model_id}",
        lambda: client.get_logged_model(model_id).artifact_location,
    )
    local = call_with_retries(
        tracking_uri,
        f"download {info.name} v{info.version}",
        lambda: mlflow.artifacts.download_artifacts(
            artifact_uri=location, dst_path=str(dst), tracking_uri=tracking_uri
        ),
    )
    return artifact_dir(Path(local))


def download_version_artifact(
    tracking_uri: str, name: str, version: str, artifact: str, dst: Path
) -> Path:
    """Copy the artifact folder `artifact` of version `version`'s run into `dst`; its local path."""
    info = get_version_info(tracking_uri, name, version)
    client = mlflow_client(tracking_uri)
    local = call_with_retries(
        tracking_uri,
        f"download the {artifact} of {name} v{version}",
        lambda: client.download_artifacts(info.run_id, artifact, str(dst)),
    )
    return Path(local)


def load_predictor(model_uri: str, tracking_uri: str) -> Predictor:
    """`models:/NAME@champion` or `models:/NAME/3` -> a Predictor, after checking the weights' sha256."""
    from xferlib.models.io import ModelIntegrityError, load_model

    name, version = resolve_uri(model_uri, tracking_uri)
    info = get_version_info(tracking_uri, name, version)
    expected = info.tags.get(SHA_TAG)
    if not expected:
        raise ModelIntegrityError(
            f"{name} v{version} has no {SHA_TAG} tag; re-register it with registry.register_candidate"
        )
    with tempfile.TemporaryDirectory(prefix="xfer-model-") as tmp:
        local = download_model_dir(tracking_uri, info, Path(tmp))
        try:  # load_model hashes model.pt once and checks it against the tag before unpickling
            model, meta = load_model(local, expected_sha256=expected)
        except ModelIntegrityError as exc:
            raise ModelIntegrityError(f"{model_uri} (v{version}): {exc}") from None
    return Predictor(model, meta, name, version)
