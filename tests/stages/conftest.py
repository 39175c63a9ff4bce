"""The stage tests reuse the flows suite's tiny real work directory (tiny backbone, git + DVC,
one sqlite MLflow store for the session)."""

from tests.flows.conftest import fashion, mlflow_store  # noqa: F401
