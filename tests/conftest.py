"""Suite-wide fixtures, and the fixture plugins every directory shares.

The convention: fixtures live in conftest.py files (a directory's own) and in the plugins under tests/plugins/
registered below; tests never import a fixture. Helpers (factories, harnesses, clients) are plain modules that
tests import by name: tests/factories.py for what many tests build, a directory's own modules for the rest."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from markets.hotstate import MemoryHotState, set_hot_state

# tests.plugins.services starts PostgreSQL and Redis before Django reads its settings: pytest.ini loads it (-p).
pytest_plugins = ["tests.plugins.venue"]


@pytest.fixture(autouse=True)
def _clear_cache() -> Iterator[None]:
    """The cache is a shared Redis for the suite: every test starts from an empty one."""
    from django.core.cache import cache

    cache.clear()
    yield


@pytest.fixture
def memory_hot_state() -> Iterator[MemoryHotState]:
    """An empty in-memory hot state installed as the process's hot state for the test."""
    state = MemoryHotState()
    set_hot_state(state)
    yield state
    set_hot_state(None)


@pytest.fixture
def redis_url() -> str:
    return os.environ["REDIS_URL"]


@pytest.fixture
def database_url() -> str:
    return os.environ["DATABASE_URL"]


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):  # type: ignore[no-untyped-def]
    """Close connections left by worker threads (sync_to_async, relay threads) before the test database is
    dropped, so teardown does not fail with "database is being accessed by other users"."""
    yield
    with django_db_blocker.unblock():
        from django.db import connection

        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
