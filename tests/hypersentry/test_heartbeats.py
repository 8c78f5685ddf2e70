"""Heartbeats per process: what a row carries, fresh/stale/gone, the index that lists processes, and every writer
in this process (the beating helpers, the worker shell, serve's jobs, the ASGI lifespan, Celery beat and worker
signals). Real processes in both topologies: test_heartbeats_topologies.py."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from celery.beat import Scheduler
from celery.signals import task_failure, worker_ready, worker_shutdown
from channels.testing import ApplicationCommunicator, HttpCommunicator
from django.core.cache import cache

from hypersentry import topology
from hypersentry.asgi import build_application
from hypersentry.celery import JobScheduler
from hypersentry.celery import app as celery_app
from hypersentry.checks import websocket_origin_problems
from kernel import components
from kernel.schedule import PeriodicJob
from tests.kernel.quick_workers import QuickAsyncWorker, QuickWorker

HOST = socket.gethostname()
ME = f"{HOST}:{os.getpid()}"


@pytest.fixture(autouse=True)
def _fresh_process_state(monkeypatch: pytest.MonkeyPatch) -> None:
    """This test process's heartbeat memory (start times, throttles) starts empty, as a new process's does."""
    monkeypatch.setattr(components, "_state", components._ProcessState())


def _status(name: str, now: float | None = None) -> components.ComponentRow:
    [row] = components.component_status(names=[name], now=now)
    return row


def _mine(name: str, now: float | None = None) -> components.ProcessRow | None:
    return next((p for p in _status(name, now)["processes"] if p["instance"] == ME), None)


async def _eventually_mine(name: str) -> components.ProcessRow:
    """This process's row once its first beat (written from a task) has landed."""
    deadline = time.monotonic() + 5
    while (proc := await asyncio.to_thread(_mine, name)) is None:
        assert time.monotonic() < deadline, f"no {name} heartbeat from this process"
        await asyncio.sleep(0.02)
    return proc


# --- rows and readers ----------------------------------------------------------------------------------------------


def test_a_beat_names_the_component_and_the_process() -> None:
    before = time.time()
    components.heartbeat("ingest", detail="12 symbols", min_interval=0)
    row = _status("ingest")
    assert row["state"] == components.RUNNING and row["running"] and row["detail"] == "12 symbols"
    [proc] = row["processes"]
    assert (proc["host"], proc["pid"], proc["instance"]) == (HOST, os.getpid(), ME)
    assert proc["state"] == components.RUNNING and proc["age_s"] < 5 and proc["uptime_s"] < 5
    stored = cache.get(f"component:beat:ingest:{ME}")
    assert stored["component"] == "ingest" and before <= stored["started_at"] <= stored["last_beat"] <= time.time()


def test_uptime_counts_from_the_first_beat_and_the_age_from_the_last() -> None:
    components.heartbeat("alpha", min_interval=0)
    started = cache.get(f"component:beat:alpha:{ME}")["started_at"]
    time.sleep(0.3)
    components.heartbeat("alpha", min_interval=0)
    proc = _mine("alpha", now=time.time() + 1)
    assert proc is not None
    assert proc["uptime_s"] >= 1.3 and proc["age_s"] < proc["uptime_s"]
    assert cache.get(f"component:beat:alpha:{ME}")["started_at"] == started


def test_a_process_past_its_bound_is_stale_and_the_component_too() -> None:
    components.heartbeat("execution", min_interval=0)
    bound = components.COMPONENTS["execution"].fresh_within_sec
    fresh = _status("execution", now=time.time() + bound - 2)
    stale = _status("execution", now=time.time() + bound + 2)
    assert fresh["state"] == components.RUNNING
    assert stale["state"] == components.STALE and not stale["running"]
    assert stale["processes"][0]["state"] == components.STALE and stale["processes"][0]["age_s"] > bound


def test_a_component_without_a_process_is_not_running() -> None:
    row = _status("hlsim")
    assert row == {**row, "state": components.NOT_RUNNING, "running": False, "age_s": None, "processes": []}


def test_every_component_is_listed_with_its_bound() -> None:
    rows = components.component_status()
    assert [r["name"] for r in rows] == list(components.COMPONENTS)
    assert {"web", "ingest", "alpha", "execution", "celery", "beat", "hlsim", "jobs"} <= set(components.COMPONENTS)
    assert all(r["fresh_within_sec"] > components.BEAT_EVERY_SEC * 2 for r in rows)


def test_a_clean_stop_removes_the_row_and_the_index_entry() -> None:
    components.heartbeat("celery", min_interval=0)
    components.error_seen("celery", "boom")
    components.heartbeat_remove("celery")
    assert _status("celery")["processes"] == []
    assert ME not in (cache.get("component:procs:celery") or {})
    assert cache.get(f"component:error:celery:{ME}") is None


def test_a_lost_index_update_is_healed_by_the_next_beat() -> None:
    components.heartbeat("web", min_interval=0)
    # Another process rewrote the index from a read taken before ours was added.
    cache.set("component:procs:web", {"otherhost:1": time.time()}, components.ROW_TTL_SEC)
    components.heartbeat("web", min_interval=0)
    assert set(cache.get("component:procs:web")) == {"otherhost:1", ME}
    assert [p["instance"] for p in _status("web")["processes"]] == [ME]  # the other one has no row: not shown


def test_a_forked_child_beats_as_a_process_of_its_own() -> None:
    components.heartbeat("web", min_interval=0)
    pid = os.fork()
    if pid == 0:  # the child: beat, then leave without exit hooks, as a killed process would
        try:
            components.heartbeat("web", detail="child", min_interval=0)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    procs = {p["pid"]: p for p in _status("web")["processes"]}
    assert set(procs) == {os.getpid(), pid}
    assert procs[pid]["detail"] == "child" and procs[pid]["instance"] == f"{HOST}:{pid}"


def test_the_last_error_shows_on_the_process_row() -> None:
    components.heartbeat("alpha", min_interval=0)
    components.error_seen("alpha", RuntimeError("venue timed out"))
    proc = _mine("alpha")
    assert proc is not None and proc["error"] == "RuntimeError: venue timed out" and proc["error_age_s"] is not None


def test_a_process_is_alive_while_it_beats_anywhere_and_dead_once_stale_or_unknown() -> None:
    assert components.instance_alive(ME) is True  # this process, beating or not
    pid = os.fork()
    if pid == 0:
        try:
            components.heartbeat("celery", min_interval=0)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    child = f"{HOST}:{pid}"
    assert components.instance_alive(child) is True  # its beat is fresh (it died a moment ago)
    bound = components.COMPONENTS["celery"].fresh_within_sec
    assert components.instance_alive(child, now=time.time() + bound + 1) is False
    assert components.instance_alive("gone-host:999999") is False  # nothing on record from another host
    sleeper = subprocess.Popen(["sleep", "30"])
    try:  # on this host, a process that never beats (a management command) counts while its pid runs
        assert components.instance_alive(f"{HOST}:{sleeper.pid}") is True
    finally:
        sleeper.kill()
        sleeper.wait()
    assert components.instance_alive(f"{HOST}:{sleeper.pid}") is False


class _BrokenCache:
    def __getattr__(self, name: str) -> Any:
        def fail(*args: Any, **kwargs: Any) -> Any:
            raise ConnectionError("cache down")

        return fail


def test_a_cache_outage_is_logged_once_and_never_raised_into_the_beating_process(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(components, "cache", _BrokenCache())
    writer = components.BeatWriter("ingest")
    for _ in range(3):
        writer.beat()
    components.error_seen_safely("ingest", "boom")
    assert [r.message for r in caplog.records].count("heartbeat not recorded") == 1
    assert components.instance_alive("otherhost:1") is None  # unknown, not dead
    monkeypatch.undo()
    writer.beat()
    assert "heartbeat recorded again" in [r.message for r in caplog.records]


# --- the beating helpers -------------------------------------------------------------------------------------------


async def test_the_async_heartbeat_beats_until_stopped_then_removes_its_row() -> None:
    beats = 0

    def detail() -> str:
        nonlocal beats
        beats += 1
        return f"beat {beats}"

    heart = components.AsyncHeartbeat("web", detail=detail, every=0.05)
    heart.start()
    heart.start()  # idempotent: one task
    await asyncio.sleep(0.4)
    assert beats >= 3
    proc = await asyncio.to_thread(_mine, "web")
    assert proc is not None and proc["detail"].startswith("beat ")
    await heart.stop()
    assert await asyncio.to_thread(_mine, "web") is None
    heart.start()  # stopped for good: a late request does not bring the row back
    await asyncio.sleep(0.1)
    assert not heart.running and await asyncio.to_thread(_mine, "web") is None


def test_the_thread_heartbeat_beats_until_stopped_then_removes_its_row() -> None:
    heart = components.ThreadHeartbeat("celery", detail=lambda: "w1@host", every=0.05)
    heart.start()
    deadline = time.monotonic() + 5
    while _mine("celery") is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert (_mine("celery") or {}).get("detail") == "w1@host"
    heart.stop()
    assert _mine("celery") is None


# --- the worker shell ---------------------------------------------------------------------------------------------


class FailsOnce(QuickAsyncWorker):
    name = "alpha"

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[components.ProcessRow | None] = []

    async def run_once(self) -> None:
        if self.rounds == 0:
            raise RuntimeError("first round fails")
        self.seen.append(await asyncio.to_thread(_mine, "alpha"))
        self.stop()


@pytest.mark.django_db(transaction=True)
async def test_an_async_worker_beats_while_it_runs_shows_its_loop_error_and_leaves_cleanly() -> None:
    worker = FailsOnce()
    await asyncio.wait_for(worker.run(), 10)
    [row] = worker.seen
    assert row is not None and row["running"] and row["error"] == "RuntimeError: first round fails"
    assert await asyncio.to_thread(_mine, "alpha") is None


class BlockingFailsOnce(QuickWorker):
    name = "execution"
    seen: components.ProcessRow | None = None

    def run_once(self) -> None:
        self.calls += 1
        if self.calls == 1:
            raise ValueError("bad row")
        deadline = time.monotonic() + 5
        while self.seen is None or not self.seen["error"]:
            self.seen = _mine("execution")
            assert time.monotonic() < deadline, "no heartbeat with the error"
            time.sleep(0.02)
        self.stop()


@pytest.mark.django_db(transaction=True)
def test_a_blocking_worker_beats_from_a_thread_and_leaves_cleanly() -> None:
    worker = BlockingFailsOnce()
    thread = threading.Thread(target=worker.run_forever)  # not the main thread: no signal handlers
    thread.start()
    thread.join(15)
    assert not thread.is_alive()
    assert worker.seen is not None and worker.seen["error"] == "ValueError: bad row"
    assert _mine("execution") is None


# --- serve's jobs ---------------------------------------------------------------------------------------------------


async def test_serves_job_loop_beats_and_shows_the_last_failed_job(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom() -> None:
        raise RuntimeError("venue down")

    monkeypatch.setattr(topology, "periodic_jobs", lambda: (PeriodicJob("test.boom", boom, 60, run_at_start=True),))
    stop = asyncio.Event()
    runner = asyncio.create_task(topology.run_jobs(stop))
    try:
        deadline = time.monotonic() + 10
        proc = None
        while (proc is None or not proc["error"]) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            proc = await asyncio.to_thread(_mine, "jobs")
        assert proc is not None and proc["running"] and proc["error"] == "test.boom: RuntimeError: venue down"
    finally:
        stop.set()
        await asyncio.wait_for(runner, 10)
    assert await asyncio.to_thread(_mine, "jobs") is None


# --- the web: ASGI lifespan ---------------------------------------------------------------------------------------


async def test_the_asgi_lifespan_runs_the_web_heartbeat_from_startup_to_shutdown() -> None:
    app = build_application(["http://testserver"])
    assert websocket_origin_problems(app) == []  # hypersentry.E002 still sees the guard
    life = ApplicationCommunicator(app, {"type": "lifespan", "asgi": {"version": "3.0"}})
    await life.send_input({"type": "lifespan.startup"})
    assert await life.receive_output(5) == {"type": "lifespan.startup.complete"}
    proc = await _eventually_mine("web")
    assert proc["running"] and proc["detail"] == "0 sockets open"
    await life.send_input({"type": "lifespan.shutdown"})
    assert await life.receive_output(5) == {"type": "lifespan.shutdown.complete"}
    assert await asyncio.to_thread(_mine, "web") is None
    await life.wait(5)


async def test_without_lifespan_the_first_request_starts_the_web_heartbeat() -> None:
    app = build_application(["http://testserver"])
    response = await HttpCommunicator(app, "GET", "/healthz", headers=[(b"host", b"testserver")]).get_response(
        timeout=10
    )
    assert response["status"] == 200
    try:
        await _eventually_mine("web")
    finally:
        await app.heart.stop()


# --- Celery ----------------------------------------------------------------------------------------------------------


def test_beat_beats_on_its_tick_shows_a_job_it_could_not_send_and_leaves_on_close(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def broker_down(self: Any, entry: Any, producer: Any = None, advance: bool = True, **kwargs: Any) -> Any:
        raise ConnectionRefusedError("broker down")

    monkeypatch.setattr(Scheduler, "apply_async", broker_down)
    scheduler = JobScheduler(app=celery_app, schedule_filename=str(tmp_path / "beat"))
    try:
        assert scheduler.max_interval <= components.COMPONENTS["beat"].fresh_within_sec / 3
        with caplog.at_level(logging.ERROR, logger="celery.beat"):
            scheduler.tick()  # run_at_start jobs are due now: sending them fails, beat logs it and goes on
        proc = _mine("beat")
        assert proc is not None and proc["running"] and proc["detail"].endswith("jobs scheduled")
        assert proc["error"] == "ConnectionRefusedError: broker down"
        assert any("Message Error" in r.getMessage() for r in caplog.records)
    finally:
        scheduler.close()
    assert _mine("beat") is None


def test_a_failed_task_shows_on_the_worker_row() -> None:
    components.heartbeat("celery", min_interval=0)
    task = celery_app.tasks["execution.reconcile"]
    task_failure.send(sender=task, task_id="t1", exception=KeyError("user 7"), args=(), kwargs={})
    proc = _mine("celery")
    assert proc is not None and proc["error"] == "execution.reconcile: KeyError: 'user 7'"


def test_the_celery_worker_beats_between_ready_and_shutdown() -> None:
    class Consumer:
        hostname = "w1@test"

    worker_ready.send(sender=Consumer())
    try:
        deadline = time.monotonic() + 5
        while _mine("celery") is None:
            assert time.monotonic() < deadline, "no celery heartbeat after worker_ready"
            time.sleep(0.02)
        assert (_mine("celery") or {}).get("detail") == "w1@test"
    finally:
        worker_shutdown.send(sender=None)
    assert _mine("celery") is None
