"""Fixtures for model tests (helpers live in tests/model/helpers.py)."""

from __future__ import annotations

import pytest

from tests.model.helpers import make_images
from xferlib.data.imageset import ImageSet


@pytest.fixture
def images() -> ImageSet:
    return make_images()
