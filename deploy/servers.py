"""PostgreSQL and Redis servers of our own on 127.0.0.1, started from the installed binaries on free ports.

One place for what `make run-split` (deploy/split.py: data kept in var/split/), the test suite
(tests/plugins/services.py), the chaos suite (tests/chaos/harness.py: servers it stops and starts again on the same
port) and the benchmarks (bench/bench_relay.py) need. A server given no directory gets a fresh temporary one and
removes it on `close()`.

initdb and postgres refuse root: as root they run as the `postgres` system user. The switch happens in the child
itself (Popen's user/group), not through runuser, so our signals reach postgres (runuser ignores SIGINT, PostgreSQL's
fast shutdown).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Self

import psycopg
from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_fixed

DATABASE = "hypersentry"
# Settings of a throwaway cluster (tests, benchmarks): nothing is worth a disk flush.
SCRATCH_SETTINGS = ("fsync=off", "synchronous_commit=off", "full_page_writes=off")
INSTALL_HINT = "make test and make run-split install it with apt-get (scripts/ensure-system-deps.sh)"


class ServerError(RuntimeError):
    """A server could not be started: a binary is missing, it exited or it did not answer in time."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 30.0) -> None:
    @retry(retry=retry_if_exception_type(OSError), stop=stop_after_delay(timeout), wait=wait_fixed(0.1), reraise=True)
    def connect() -> None:
        if proc.poll() is not None:
            raise ServerError(f"{what} exited with code {proc.returncode} during start-up")
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()

    try:
        connect()
    except OSError:
        raise ServerError(f"{what} did not listen on port {port} within {timeout:.0f}s") from None


def stop_process(proc: subprocess.Popen[Any], sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
    """Send `sig` (unless it has exited), wait up to `timeout` seconds, then kill it."""
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _pg_bin(name: str) -> str:
    installed = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True)
    found = shutil.which(name) or (installed[0] if installed else None)
    if not found:
        raise ServerError(f"PostgreSQL's {name} not found: install postgresql ({INSTALL_HINT})")
    return str(found)


def _as_postgres() -> dict[str, Any]:
    """Popen arguments that run initdb and postgres as the `postgres` user when we are root."""
    return {"user": "postgres", "group": "postgres", "extra_groups": []} if os.geteuid() == 0 else {}


class _Server:
    """A server process on a fixed port with its files in `base`; `stop()` and `start()` again keep the port."""

    what = "server"

    def __init__(self, base: Path | None, prefix: str) -> None:
        self.owns_base = base is None
        self.base = Path(tempfile.mkdtemp(prefix=prefix)) if base is None else base
        self.base.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def _spawn(self, args: list[str], **popen: Any) -> None:
        with open(self.base / f"{self.what}.log", "ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, **popen)
        try:
            wait_port(self.port, self.proc, self.what)
        except ServerError:
            self.kill()
            raise

    def stop(self) -> None:
        """A clean shutdown."""
        if self.proc is not None:
            stop_process(self.proc, signal.SIGTERM)

    def kill(self) -> None:
        """kill -9, as a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def close(self) -> None:
        self.stop()
        if self.owns_base:
            shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PostgresServer(_Server):
    """A PostgreSQL cluster in `base` (initialised on first use) with the database `hypersentry` in it.

    `scratch`: a throwaway cluster (tests, benchmarks): initdb without sync and the server without flushes
    (SCRATCH_SETTINGS). Otherwise the data is kept as PostgreSQL keeps it (`make run-split`'s var/split/pg)."""

    what = "postgres"

    def __init__(self, base: Path | None = None, *, scratch: bool = False, max_connections: int = 300) -> None:
        super().__init__(base, "hs-pg-")
        self.server_url = f"postgresql://postgres@127.0.0.1:{self.port}"
        self.url = f"{self.server_url}/{DATABASE}"
        self.data, self.sock = self.base / "data", self.base / "run"
        self.sock.mkdir(exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.base, "postgres", "postgres")
            shutil.chown(self.sock, "postgres", "postgres")
        self.settings = ["listen_addresses=127.0.0.1", f"max_connections={max_connections}"]
        if scratch:
            self.settings += SCRATCH_SETTINGS
        if not (self.data / "PG_VERSION").exists():
            initdb = [_pg_bin("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8"]
            done = subprocess.run(
                initdb + (["--no-sync"] if scratch else []),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
                **_as_postgres(),
            )
            if done.returncode != 0:
                raise ServerError(f"initdb failed in {self.data}: {done.stderr.strip()}")
        self.start()

    def start(self) -> None:
        """Start the server; returns once it accepts logins and the database exists."""
        args = [_pg_bin("postgres"), "-D", str(self.data), "-p", str(self.port), "-k", str(self.sock)]
        for setting in self.settings:
            args += ["-c", setting]
        self._spawn(args, **_as_postgres())
        try:
            self._create_database()
        except ServerError:
            self.stop()
            raise

    def _create_database(self) -> None:
        # Accepting TCP comes before accepting logins: retry until a real query runs.
        @retry(
            retry=retry_if_exception_type(psycopg.OperationalError),
            stop=stop_after_delay(30),
            wait=wait_fixed(0.2),
            reraise=True,
        )
        def create() -> None:
            with psycopg.connect(f"{self.server_url}/postgres", connect_timeout=2, autocommit=True) as conn:
                if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE]).fetchone() is None:
                    conn.execute(f'CREATE DATABASE "{DATABASE}"')

        try:
            create()
        except psycopg.OperationalError as exc:
            raise ServerError(f"postgres accepts no logins ({exc}); see {self.base / 'postgres.log'}") from exc

    def stop(self) -> None:
        """Fast shutdown: clients are disconnected, as in a restart of the server."""
        if self.proc is not None:
            stop_process(self.proc, signal.SIGINT)


class RedisServer(_Server):
    """A Redis server without persistence (what it holds is gone once it stops), its working directory in `base`."""

    what = "redis-server"

    def __init__(self, base: Path | None = None) -> None:
        super().__init__(base, "hs-redis-")
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.start()

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if not binary:
            raise ServerError(f"redis-server not found: install redis-server ({INSTALL_HINT})")
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self._spawn([*args, "--dir", str(self.base)])


@contextlib.contextmanager
def local_postgres(base: Path | None = None, *, scratch: bool = False) -> Iterator[str]:
    """The URL of a PostgreSQL server running for the block (data in `base`, or a temporary directory)."""
    with PostgresServer(base, scratch=scratch) as server:
        yield server.url


@contextlib.contextmanager
def local_redis(base: Path | None = None) -> Iterator[str]:
    """The URL of a Redis server running for the block."""
    with RedisServer(base) as server:
        yield server.url
