"""`make run-split` as a newcomer runs it: the compose file's services from the Procfile under honcho, on the
PostgreSQL and Redis named in the shell — every component turns healthy, market data flows through the web replicas,
and Ctrl-C stops every process it started."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
import pytest
import redis
import requests

from deploy import split

ROOT = split.ROOT
PY = sys.executable
START_TIMEOUT_SEC = 120.0
COMPONENTS = ("web", "hlsim", "ingest", "alpha", "execution", "celery", "beat")
WEB = ("http://127.0.0.1:8000", "http://127.0.0.1:8001")

pytestmark = pytest.mark.slow


def _busy(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _children(pid: int) -> set[int]:
    """Every process in the session `pid` leads (honcho and all it started)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == pid:  # session id
                found.add(int(entry.name))
    return found


def test_the_makefile_target_runs_the_split_runner() -> None:
    makefile = (ROOT / "Makefile").read_text()
    target = makefile.split("\nrun-split:", 1)[1].split("\n\n", 1)[0]
    assert "$(PY) -m deploy.split run" in target, target


def test_run_split_starts_every_component_serves_the_terminal_and_stops_on_ctrl_c() -> None:
    taken = [p for p in (8000, 8001, 3001) if _busy(p)]
    if taken:
        pytest.skip(f"ports {taken} are in use on this machine (make run?); run-split binds them")
    server = os.environ["DATABASE_URL"].rsplit("/", 1)[0]
    db = f"runsplit_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db}"')
    redis_url = os.environ["REDIS_URL"].rsplit("/", 1)[0] + "/7"  # 8-13: e2e deployments, 14-15: compose test
    redis.Redis.from_url(redis_url).flushdb()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HYPERSENTRY_", "DJANGO_"))}
    env.update(DATABASE_URL=f"{server}/{db}", REDIS_URL=redis_url, PYTHONUNBUFFERED="1")
    log = Path(tempfile.mkstemp(prefix="hs-run-split-", suffix=".log")[1])
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [PY, "-m", "deploy.split", "run"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        started = time.monotonic()
        pending = set(COMPONENTS)
        ready: set[str] = set()
        while (pending or len(ready) < len(WEB)) and time.monotonic() - started < START_TIMEOUT_SEC:
            assert proc.poll() is None, f"run-split exited {proc.returncode}:\n{log.read_text()[-4000:]}"
            for base in WEB:
                try:
                    if requests.get(base + "/readyz", timeout=2).status_code == 200:
                        ready.add(base)
                except requests.RequestException:
                    pass
            for name in sorted(pending):
                check = subprocess.run(
                    [PY, "manage.py", "healthcheck", name], cwd=ROOT, env=env, capture_output=True, timeout=60
                )
                if check.returncode == 0:
                    pending.discard(name)
            time.sleep(1.0)
        took = time.monotonic() - started
        assert not pending and len(ready) == len(WEB), (
            f"after {took:.0f}s: not healthy {sorted(pending)}, ready {sorted(ready)}\n{log.read_text()[-4000:]}"
        )
        print(f"run-split: every component healthy and both web replicas ready after {took:.1f}s")
        # Market data from the simulator, through ingest and Redis, served by each replica.
        for base in WEB:
            prices = requests.get(base + "/trading/prices", timeout=5)
            assert prices.status_code == 200, prices.text[:300]
            assert "BTC" in prices.text, prices.text[:300]
        # Ctrl-C (SIGINT to the process group, as a terminal sends it): honcho stops every process.
        members = _children(proc.pid)
        assert len(members) >= 9, members  # runner, honcho and the Procfile's processes
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=60)
        deadline = time.monotonic() + 15
        while _children(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _children(proc.pid), f"left running: {_children(proc.pid)}"
    finally:
        if proc.poll() is None or _children(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        redis.Redis.from_url(redis_url).flushdb()
        with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        log.unlink(missing_ok=True)
