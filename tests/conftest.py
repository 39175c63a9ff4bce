"""Session-wide test settings: offline, quiet libraries; shared fixtures registered as plugins."""

import os

from xferlib.env import QUIET_ENV

pytest_plugins = ["tests.integration.s3_fixtures"]

for key, value in QUIET_ENV.items():
    os.environ.setdefault(key, value)
