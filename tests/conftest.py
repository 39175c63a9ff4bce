"""Session-wide test settings: offline, quiet libraries; shared fixtures registered as plugins."""

import os

pytest_plugins = ["tests.integration.s3_fixtures"]

for key, value in {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "DVC_NO_ANALYTICS": "1",
}.items():
    os.environ.setdefault(key, value)
