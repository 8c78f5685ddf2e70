from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _clear_cache() -> Iterator[None]:
    """The cache is a shared Redis for the suite: every test starts from an empty one."""
    from django.core.cache import cache

    cache.clear()
    yield


@pytest.fixture
def redis_url() -> str:
    return os.environ["REDIS_URL"]


@pytest.fixture
def database_url() -> str:
    return os.environ["DATABASE_URL"]
