"""Pytest plugin: real throwaway PostgreSQL and Redis servers for the suite.

Loaded with `-p tests.plugins.services` so that it runs before pytest-django reads the settings: it starts
both servers (deploy/servers.py) on free ports and exports DATABASE_URL / REDIS_URL, so the whole suite runs on
PostgreSQL and Redis. Set HYPERSENTRY_TEST_DATABASE_URL / HYPERSENTRY_TEST_REDIS_URL to use servers you already run.
"""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from deploy.servers import PostgresServer, RedisServer, ServerError

_SERVERS: list[PostgresServer | RedisServer] = []


def _start(server: Callable[[], PostgresServer | RedisServer]) -> str:
    try:
        started = server()
    except ServerError as exc:
        raise pytest.UsageError(str(exc)) from exc
    _SERVERS.append(started)
    return started.url


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser, args: list[str]) -> None:
    os.environ.setdefault("ENVIRONMENT", "test")
    os.environ["DATABASE_URL"] = os.environ.get("HYPERSENTRY_TEST_DATABASE_URL") or _start(
        functools.partial(PostgresServer, scratch=True)
    )
    os.environ["REDIS_URL"] = os.environ.get("HYPERSENTRY_TEST_REDIS_URL") or _start(RedisServer)
    os.environ.setdefault("SQLITE_PATH", str(Path(tempfile.mkdtemp(prefix="hs-sqlite-")) / "db.sqlite3"))


def pytest_unconfigure(config: pytest.Config) -> None:
    for server in _SERVERS:
        server.close()
