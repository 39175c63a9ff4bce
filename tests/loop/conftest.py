"""The reliability suite's tiny trained work directory (one per session, cloned per test)."""

from tests.reliability.conftest import _own_env, base_wd, fashion_xy, wd  # noqa: F401
