"""Every periodic job runs, under the name it is registered with, in both topologies: on a real Celery worker
(split) and in `serve`'s scheduler (one process); and what cannot run is refused by beat and `manage.py check`."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import pytest
from asgiref.sync import sync_to_async
from celery import Celery
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from prometheus_client import REGISTRY

import accounts.services
from deploy.servers import stop_process
from hypersentry import topology
from hypersentry.celery import JobScheduler, beat_schedule
from hypersentry.celery import app as celery_app
from hypersentry.checks import check_periodic_jobs
from kernel.schedule import PeriodicJob, job_problems, job_status, periodic, periodic_jobs

ROOT = Path(__file__).resolve().parents[2]

# Every job the product declares, by the name beat sends. Listed here so that dropping or renaming a job is a
# visible decision; intervals from settings are checked against the settings below.
EXPECTED_JOBS = {
    "accounts.sessions_expire",
    "accounts.agents_expire",
    "accounts.sessions_purge_expired",
    "execution.reconcile",
    "execution.killswitch_maintain",
    "execution.trailing_stops",
    "execution.idempotency_purge",
    "execution.private_events_redeliver",
    "execution.private_events_purge",
}


def _runs_since(started: float) -> dict[str, dict[str, object]]:
    """The last-run record of every registered job that started at or after `started`."""
    return {
        s.name: dict(s.last_run) for s in job_status() if s.last_run is not None and s.last_run["started_at"] >= started
    }


def test_the_registry_holds_every_job_once_with_settings_intervals() -> None:
    jobs = {job.name: job for job in periodic_jobs()}
    assert set(jobs) == EXPECTED_JOBS
    assert len(periodic_jobs()) == len(EXPECTED_JOBS)
    assert jobs["execution.reconcile"].every_sec == settings.EXECUTION_RECONCILE_SEC
    assert jobs["execution.reconcile"].run_at_start and jobs["execution.killswitch_maintain"].run_at_start


# --- split topology: a real Celery worker on Redis ---------------------------------------------------------------


def _test_database_url() -> str:
    db = connection.settings_dict
    auth = quote(db["USER"] or "", safe="") + (f":{quote(db['PASSWORD'], safe='')}" if db["PASSWORD"] else "")
    return f"postgresql://{auth}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_every_job_completes_on_a_real_celery_worker(redis_url: str, tmp_path: Path) -> None:
    # Broker and results on their own Redis databases: the suite empties database 0 (the cache) between tests.
    base = redis_url.rsplit("/", 1)[0]
    broker, backend = f"{base}/1", f"{base}/2"
    env = {
        **os.environ,
        "DATABASE_URL": _test_database_url(),
        "CELERY_BROKER_URL": broker,
        "CELERY_RESULT_BACKEND": backend,
    }
    log_path = tmp_path / "worker.log"
    started = time.time()
    with open(log_path, "wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "hypersentry", "worker", "--pool=solo", "--loglevel=INFO"]
            + ["--without-heartbeat", "--without-mingle", "--without-gossip", "-n", f"jobs-{uuid.uuid4().hex[:8]}@%h"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    # A client that knows none of the tasks: each one is sent by its registered name only, as beat does.
    client = Celery("probe", broker=broker, backend=backend)
    try:
        results = {job.name: client.send_task(job.name) for job in periodic_jobs()}
        deadline = time.monotonic() + 45
        while not all(r.ready() for r in results.values()):
            output = log_path.read_text(errors="replace")
            if "unregistered task" in output.lower():
                pytest.fail(f"the worker does not know a job's name:\n{output[-3000:]}")
            if worker.poll() is not None:
                pytest.fail(f"the worker exited with code {worker.returncode}:\n{output[-3000:]}")
            if time.monotonic() > deadline:
                pending = sorted(n for n, r in results.items() if not r.ready())
                pytest.fail(f"jobs never completed: {pending}\n{output[-3000:]}")
            time.sleep(0.2)
        outcomes = {name: (r.status, repr(r.result)) for name, r in results.items()}
        assert {n: o for n, o in outcomes.items() if o[0] != "SUCCESS"} == {}
    finally:
        client.close()
        stop_process(worker, timeout=15)
    # The worker recorded every run where an operator looks (the shared cache).
    runs = _runs_since(started)
    assert set(runs) == EXPECTED_JOBS
    assert {n: r for n, r in runs.items() if not r["ok"]} == {}


# --- one-process topology: serve's scheduler ----------------------------------------------------------------------


async def _run_jobs_until(stop_when: Callable[[], bool], timeout: float) -> None:
    stop = asyncio.Event()
    runner = asyncio.create_task(topology.run_jobs(stop))
    try:
        deadline = time.monotonic() + timeout
        while not await sync_to_async(stop_when)() and time.monotonic() < deadline:
            assert not runner.done(), "run_jobs ended before it was stopped"
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await asyncio.wait_for(runner, 30)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
async def test_every_job_runs_ok_in_serves_scheduler(monkeypatch: pytest.MonkeyPatch) -> None:
    # One pass of every job at once: the real jobs, each forced to run at start.
    jobs = tuple(dataclasses.replace(job, run_at_start=True) for job in periodic_jobs())
    monkeypatch.setattr(topology, "periodic_jobs", lambda: jobs)
    started = time.time()
    await _run_jobs_until(lambda: set(_runs_since(started)) == EXPECTED_JOBS, timeout=30)
    runs = await sync_to_async(_runs_since)(started)
    assert set(runs) == EXPECTED_JOBS
    assert {n: (r["error_type"], r["error"]) for n, r in runs.items() if not r["ok"]} == {}


async def test_a_failing_job_is_logged_counted_and_the_others_go_on(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    calls: collections.Counter[str] = collections.Counter()

    def boom() -> None:
        calls["boom"] += 1
        raise RuntimeError("venue down")

    def fine() -> None:
        calls["fine"] += 1

    _serve_only(monkeypatch, boom, fine)
    errors_before = _job_loop_errors()
    with caplog.at_level(logging.ERROR, logger="hypersentry.topology"):
        await _run_jobs_until(lambda: calls["boom"] >= 2 and calls["fine"] >= 2, timeout=10)
    assert calls["boom"] >= 2 and calls["fine"] >= 2
    failures = [r for r in caplog.records if r.getMessage() == "periodic job failed"]
    assert len(failures) == calls["boom"]
    assert {getattr(r, "job", None) for r in failures} == {"test.boom"}
    assert all(r.exc_info and isinstance(r.exc_info[1], RuntimeError) for r in failures)
    assert _job_loop_errors() - errors_before == calls["boom"]


def _serve_only(monkeypatch: pytest.MonkeyPatch, *funcs: Callable[[], None]) -> None:
    """Serve's job loop runs just these, as `test.<function name>`, every 10 ms from the start."""
    jobs = tuple(PeriodicJob(name=f"test.{f.__name__}", func=f, every_sec=0.01, run_at_start=True) for f in funcs)
    monkeypatch.setattr(topology, "periodic_jobs", lambda: jobs)


def _job_loop_errors() -> float:
    return REGISTRY.get_sample_value("hs_component_errors_total", {"component": "jobs"}) or 0.0


async def test_a_slow_job_delays_no_other_and_is_not_started_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    calls: collections.Counter[str] = collections.Counter()

    def slow() -> None:
        calls["slow"] += 1
        release.wait(10)

    def fast() -> None:
        calls["fast"] += 1

    _serve_only(monkeypatch, slow, fast)

    def fast_ran_thrice() -> bool:
        if calls["fast"] < 3:
            return False
        # Count before letting the slow run end, then release it so that run_jobs can finish its stop.
        slow_runs.append(calls["slow"])
        release.set()
        return True

    slow_runs: list[int] = []
    try:
        await _run_jobs_until(fast_ran_thrice, timeout=10)
    finally:
        release.set()
    assert calls["fast"] >= 3
    assert slow_runs == [1]


# --- the last-run record -------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_job_records_errors_with_type_and_message_and_keeps_the_last_success(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    job = next(j for j in periodic_jobs() if j.name == "accounts.sessions_expire")
    job.func()
    first_ok = cache.get("periodic:last_run:accounts.sessions_expire")
    assert first_ok["ok"] and first_ok["error_type"] == "" and first_ok["failures_in_row"] == 0

    def broken(**kwargs: object) -> int:
        raise RuntimeError("database is gone")

    monkeypatch.setattr(accounts.services, "sessions_expire", broken)
    for _ in range(2):
        with pytest.raises(RuntimeError):
            job.func()
    status = next(s for s in job_status() if s.name == "accounts.sessions_expire")
    assert status.last_run is not None
    assert (status.last_run["ok"], status.last_run["error_type"], status.last_run["error"]) == (
        False,
        "RuntimeError",
        "database is gone",
    )
    assert status.last_run["failures_in_row"] == 2
    assert status.last_run["last_ok_at"] == first_ok["started_at"]
    assert not status.overdue


def test_a_job_whose_last_start_is_older_than_two_intervals_is_overdue() -> None:
    job = next(j for j in periodic_jobs() if j.name == "execution.trailing_stops")
    job_start = time.time()
    cache.set(
        "periodic:last_run:execution.trailing_stops",
        {"started_at": job_start, "duration_ms": 1, "ok": True, "error_type": "", "error": ""},
    )
    by_name = {s.name: s for s in job_status(now=job_start + 2 * job.every_sec + 61)}
    assert by_name["execution.trailing_stops"].overdue
    assert by_name["execution.reconcile"].last_run is None and not by_name["execution.reconcile"].overdue
    assert not {s.name: s for s in job_status(now=job_start + 1)}["execution.trailing_stops"].overdue


# --- refusing what would not run ----------------------------------------------------------------------------------


def _noop() -> None:
    return None


def test_the_declared_jobs_pass_the_system_check() -> None:
    assert check_periodic_jobs() == []


def test_an_unresolved_job_fails_the_system_check_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # What the old registry did: a job whose name is a Python path, not a registered task name.
    stray = PeriodicJob(name="execution.tasks.reconcile", func=_noop, every_sec=15)
    monkeypatch.setattr("hypersentry.checks.periodic_jobs", lambda: (*periodic_jobs(), stray))
    errors = check_periodic_jobs()
    assert [e.id for e in errors] == ["hypersentry.E003"]
    assert "'execution.tasks.reconcile' is not a registered Celery task" in errors[0].msg


def test_a_duplicate_job_name_fails_the_system_check(monkeypatch: pytest.MonkeyPatch) -> None:
    reconcile = next(j for j in periodic_jobs() if j.name == "execution.reconcile")
    twin = dataclasses.replace(reconcile, func=_noop)
    monkeypatch.setattr("hypersentry.checks.periodic_jobs", lambda: (*periodic_jobs(), twin))
    messages = [e.msg for e in check_periodic_jobs()]
    assert "periodic job 'execution.reconcile' is declared 2 times" in messages
    # ...and the twin's function is not what the Celery task runs.
    assert any(m.startswith("Celery task 'execution.reconcile' runs execution.tasks.reconcile") for m in messages)


def test_job_problems_flags_no_callable_and_a_bad_interval() -> None:
    job = PeriodicJob(name="accounts.sessions_expire", func=None, every_sec=0)  # type: ignore[arg-type]
    problems = job_problems([job], celery_app.tasks)
    assert any("has no callable" in p for p in problems)
    assert any("must be > 0 seconds" in p for p in problems)


def test_declaring_a_second_function_under_a_taken_name_is_refused() -> None:
    count = len(periodic_jobs())
    with pytest.raises(ImproperlyConfigured, match="'execution.reconcile' is declared twice"):
        periodic(name="execution.reconcile", every_sec=15)(_noop)
    assert len(periodic_jobs()) == count
    assert celery_app.tasks["execution.reconcile"].__module__ == "execution.tasks"


# --- Celery beat ---------------------------------------------------------------------------------------------------


def test_beat_schedules_every_job_under_its_name_and_run_at_start_jobs_at_once(tmp_path: Path) -> None:
    scheduler = JobScheduler(app=celery_app, schedule_filename=str(tmp_path / "beat"))
    try:
        entries = {name: e for name, e in scheduler.schedule.items() if not name.startswith("celery.")}
        assert set(entries) == EXPECTED_JOBS
        assert all(e.task == name for name, e in entries.items())
        due_now = {name for name, e in entries.items() if e.is_due()[0]}
        assert due_now == {"execution.reconcile", "execution.killswitch_maintain"}
    finally:
        scheduler.close()


def test_beat_refuses_to_start_with_a_job_no_worker_knows(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    stray = PeriodicJob(name="accounts.tasks.agents_expire", func=_noop, every_sec=600)
    monkeypatch.setattr("hypersentry.celery.periodic_jobs", lambda: (*periodic_jobs(), stray))
    with pytest.raises(ImproperlyConfigured, match="'accounts.tasks.agents_expire' is not a registered Celery task"):
        JobScheduler(app=celery_app, schedule_filename=str(tmp_path / "beat"))


def test_beat_refuses_an_empty_registry() -> None:
    with pytest.raises(ImproperlyConfigured, match="no periodic jobs"):
        beat_schedule([], celery_app.tasks)


@pytest.mark.django_db(transaction=True)
def test_two_runs_of_one_job_never_overlap_wherever_they_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two workers (or beat ticks) running reconcile at once would send the same venue actions twice."""
    import threading

    from execution.services import sync

    job = next(j for j in periodic_jobs() if j.name == "execution.reconcile")
    inside = threading.Event()
    release = threading.Event()
    ran: list[str] = []

    def slow_reconcile() -> dict[str, int]:
        ran.append("run")
        inside.set()
        release.wait(10)
        return {}

    monkeypatch.setattr(sync, "reconcile_all", slow_reconcile)
    first = threading.Thread(target=job.func)
    first.start()
    assert inside.wait(10)
    assert job.func() is None  # skipped: the first run holds the job's lock
    release.set()
    first.join(10)
    assert ran == ["run"]
    release.clear()
    release.set()
    job.func()  # the lock was released: the next run goes ahead
    assert ran == ["run", "run"]
