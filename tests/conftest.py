"""Session-wide test settings: offline, quiet libraries; shared fixtures registered as plugins."""

import os

import torch

from xferlib.env import QUIET_ENV

pytest_plugins = ["tests.integration.s3_fixtures"]

for key, value in QUIET_ENV.items():
    os.environ.setdefault(key, value)

# Results must not depend on the machine's core count: the thread count changes how torch splits
# its reductions, so the last bits of every weight, and a gate decision on a tiny holdout turns on
# one image (at 1 thread the CLI registry test's v2 forgot exactly one holdout image more than at
# 2). Every test process, and every child it starts, computes with the 2 threads CI has.
TEST_THREADS = 2
os.environ["OMP_NUM_THREADS"] = str(TEST_THREADS)
torch.set_num_threads(TEST_THREADS)
