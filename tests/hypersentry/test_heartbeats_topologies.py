"""Heartbeats from real processes, read where an operator reads them (/system as an admin) and where the compose
file reads them (`manage.py healthcheck`): the split topology with two web processes (one under `serve`, one under
plain uvicorn as the compose file runs it), hlsim, ingest, user feeds, Celery worker and beat; and `serve` alone."""

from __future__ import annotations

import re
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from eth_account import Account

from deploy.servers import free_port
from tests.e2e.live import Deployment, Trader, one_process, split, start, wait_http

pytestmark = pytest.mark.slow

ADMIN = Account.create()
HOST = socket.gethostname()

Processes = dict[str, dict[str, str]]  # component -> {host:pid -> state}

_COMPONENT = re.compile(r'<tbody data-component="([^"]+)" data-state="[^"]+">(.*?)</tbody>', re.S)
_PROCESS = re.compile(r'data-process="([^"]+)" data-state="([^"]+)"')


def _processes(html: str) -> Processes:
    return {name: dict(_PROCESS.findall(body)) for name, body in _COMPONENT.findall(html)}


def _wait_system(admin: Trader, until: Callable[[Processes], bool], *, timeout: float, what: str) -> Processes:
    deadline = time.monotonic() + timeout
    while True:
        response = admin.get("/system")
        assert response.status_code == 200, response.text[:500]
        seen = _processes(response.text)
        if until(seen):
            return seen
        assert time.monotonic() < deadline, f"{what} within {timeout:.0f}s; /system shows {seen}"
        time.sleep(0.5)


def _instance(dep: Deployment, name: str) -> str:
    return f"{HOST}:{next(proc.pid for n, proc, _ in dep.procs if n == name)}"


def _all_running(expected: set[tuple[str, str]]) -> Callable[[Processes], bool]:
    return lambda seen: all(seen.get(c, {}).get(inst) == "running" for c, inst in expected)


def test_split_processes_each_beat_a_killed_one_goes_stale_and_stopped_ones_disappear(tmp_path: Path) -> None:
    with split(admin=ADMIN.address, webs=1, celery=True) as dep:
        port = free_port()
        uvicorn = [sys.executable, "-m", "uvicorn", "hypersentry.asgi:application", "--port", str(port)]
        start(dep, "web-uvicorn", [*uvicorn, "--ws-per-message-deflate", "false", "--log-level", "warning"], tmp_path)
        wait_http(dep, f"http://127.0.0.1:{port}/healthz")
        admin = Trader(dep.web[0], ADMIN).sign_in()
        roles = {"web0": "web", "web-uvicorn": "web", "hlsim": "hlsim", "ingest": "ingest"}
        roles |= {"userfeed": "execution", "worker": "celery", "beat": "beat"}
        expected = {(component, _instance(dep, name)) for name, component in roles.items()}
        seen = _wait_system(admin, _all_running(expected), timeout=60, what="every process running")
        assert len(seen["web"]) == 2, seen["web"]  # two replicas, two rows

        assert dep.manage("healthcheck", "web").returncode == 0
        absent = dep.manage("healthcheck", "alpha")  # not started in this deployment
        assert absent.returncode == 1 and absent.stdout.startswith("alpha: not running"), absent.stdout

        # Clean stops delete their rows: uvicorn's lifespan shutdown, Celery's worker_shutdown, beat's close.
        stopped = {"web-uvicorn": "web", "worker": "celery", "beat": "beat"}
        gone = {(c, _instance(dep, n)) for n, c in stopped.items()}
        procs = {n: p for n, p, _ in dep.procs}
        for name in stopped:
            procs[name].send_signal(signal.SIGTERM)
        for name in stopped:
            # uvicorn ends a graceful shutdown by re-raising the SIGTERM it caught.
            assert procs[name].wait(timeout=30) in (0, -signal.SIGTERM), dep.logs()
        _wait_system(
            admin, lambda s: all(inst not in s.get(c, {}) for c, inst in gone), timeout=10, what="stopped rows gone"
        )

        # A killed process cannot clean up: its row stays and goes stale past the bound; the healthcheck fails.
        ingest = _instance(dep, "ingest")
        procs["ingest"].kill()
        procs["ingest"].wait(timeout=10)
        seen = _wait_system(
            admin, lambda s: s["ingest"].get(ingest) == "stale", timeout=40, what="the killed ingest's row stale"
        )
        assert seen["web"] == {_instance(dep, "web0"): "running"}
        down = dep.manage("healthcheck", "ingest")
        assert down.returncode == 1 and down.stdout.startswith("ingest: stale — newest beat "), down.stdout


def test_serve_beats_for_every_component_it_runs_from_its_one_process() -> None:
    with one_process(admin=ADMIN.address) as dep:
        admin = Trader(dep.web[0], ADMIN).sign_in()
        serve = _instance(dep, "serve")
        expected = {(c, serve) for c in ("web", "hlsim", "ingest", "alpha", "execution", "jobs")}
        seen = _wait_system(admin, _all_running(expected), timeout=30, what="every component of serve running")
        assert {c for c, procs in seen.items() if procs} == {c for c, _ in expected}  # no Celery in one process
