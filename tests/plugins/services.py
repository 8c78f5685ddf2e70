"""Pytest plugin: real throwaway PostgreSQL and Redis servers for the suite.

Loaded with `-p tests.plugins.services` so that it runs before pytest-django reads the settings: it starts
both servers on free ports from the installed binaries and exports DATABASE_URL / REDIS_URL, so the whole
suite runs on PostgreSQL and Redis. Set HYPERSENTRY_TEST_DATABASE_URL / HYPERSENTRY_TEST_REDIS_URL to use
servers you already run. initdb/postgres refuse root: as root they run as the `postgres` system user.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

_PROCS: list[subprocess.Popen[bytes]] = []
_DIRS: list[str] = []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pg_bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    if not candidates:
        raise pytest.UsageError(
            f"PostgreSQL server binary {name!r} not found: install postgresql (make test does it with apt-get)"
        )
    return candidates[0]


def _as_postgres(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    return ["runuser", "-u", "postgres", "--", *cmd]


def _wait_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise pytest.UsageError(f"{what} exited with code {proc.returncode} during start-up")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.1)
    raise pytest.UsageError(f"{what} did not listen on port {port} within {timeout:.0f}s")


def start_postgres() -> str:
    base = tempfile.mkdtemp(prefix="hs-pg-")
    _DIRS.append(base)
    data, sock = os.path.join(base, "data"), os.path.join(base, "sock")
    os.makedirs(sock)
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
        shutil.chown(sock, "postgres", "postgres")
    subprocess.run(
        _as_postgres([_pg_bin("initdb"), "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"]),
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    port = free_port()
    log = open(os.path.join(base, "postgres.log"), "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        _as_postgres(
            [
                _pg_bin("postgres"),
                "-D",
                data,
                "-p",
                str(port),
                "-k",
                sock,
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=300",
            ]
        ),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    _PROCS.append(proc)
    _wait_port(port, proc, "postgres")
    # Accepting TCP is not the same as accepting logins: wait for a real query.
    import psycopg

    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    deadline = time.monotonic() + 30
    while True:
        try:
            with psycopg.connect(url, connect_timeout=2, autocommit=True) as conn:
                conn.execute("CREATE DATABASE hypersentry")
            break
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    return f"postgresql://postgres@127.0.0.1:{port}/hypersentry"


def start_redis() -> str:
    binary = shutil.which("redis-server")
    if not binary:
        raise pytest.UsageError("redis-server not found: install redis-server (make test does it with apt-get)")
    port = free_port()
    base = tempfile.mkdtemp(prefix="hs-redis-")
    _DIRS.append(base)
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", base],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _PROCS.append(proc)
    _wait_port(port, proc, "redis-server")
    return f"redis://127.0.0.1:{port}/0"


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser, args: list[str]) -> None:
    os.environ.setdefault("ENVIRONMENT", "test")
    os.environ["DATABASE_URL"] = os.environ.get("HYPERSENTRY_TEST_DATABASE_URL") or start_postgres()
    os.environ["REDIS_URL"] = os.environ.get("HYPERSENTRY_TEST_REDIS_URL") or start_redis()
    os.environ.setdefault("SQLITE_PATH", str(Path(tempfile.mkdtemp(prefix="hs-sqlite-")) / "db.sqlite3"))


def pytest_unconfigure(config: pytest.Config) -> None:
    for proc in _PROCS:
        proc.terminate()
    for proc in _PROCS:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
    for path in _DIRS:
        shutil.rmtree(path, ignore_errors=True)
