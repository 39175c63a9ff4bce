"""The stage tests reuse the flows suite's tiny real work directory (tiny backbone, git + DVC,
one sqlite MLflow store for the session)."""

from pathlib import Path

import numpy as np
import pytest

from tests.flows.conftest import fashion, make_workdir, mlflow_store  # noqa: F401


@pytest.fixture(scope="module")
def champion(
    tmp_path_factory: pytest.TempPathFactory,
    fashion: tuple[np.ndarray, np.ndarray],  # noqa: F811 - the fixture imported above
    mlflow_store: str,  # noqa: F811
) -> Path:
    """A trained champion (v1) in a work dir of its own, one per test module."""
    return make_workdir(tmp_path_factory.mktemp("stages") / "wd", fashion)
