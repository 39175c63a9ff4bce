"""Where a registered version's files live in the artifact store, for tests that tamper with them."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

from xferlib import registry
from xferlib.registry.client import mlflow_client
from xferlib.registry.pyfunc_model import artifact_dir


def stored_model_dir(uri: str, name: str, version: str, server_artifacts: Path | None) -> Path:
    """The xfer model folder (model.pt + model.json) inside the version's stored MLflow model, on
    disk: a file:// store, or `server_artifacts` (the server's --artifacts-destination)."""
    info = registry.get_version_info(uri, name, version)
    model_id = info.source.removeprefix("models:/")
    location = mlflow_client(uri).get_logged_model(model_id).artifact_location
    if location.startswith("mlflow-artifacts:"):
        assert server_artifacts is not None, f"{location} is on a server: pass its artifacts dir"
        root = server_artifacts / location.removeprefix("mlflow-artifacts:").lstrip("/")
    else:
        root = Path(unquote(urlparse(location).path))
    return artifact_dir(root)
