"""Periodic jobs, declared once, by callable.

`@periodic(name=..., every_sec=...)` on a plain function registers it as the Celery task `name` and adds it to
the one registry that both schedulers read: Celery beat (`hypersentry.celery`, split topologies) and the
one-process loop (`hypersentry.topology.run_jobs`, `manage.py serve`). Both end up calling the very same function
object, which records its last run in the cache under the job's name, whichever topology ran it (`job_status()`).

Why by callable: the jobs used to be listed as dotted strings that meant a Python path to one topology and a
Celery task name to the other, so half of them failed every round in one topology or the other, silently. Here
there is one name per job (the Celery task name, the beat entry, the cache key, the log field and the metric
label) and nothing is looked up by string in the one-process topology.
"""

from __future__ import annotations

import collections
import functools
import logging
import socket
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict, TypeVar

from celery import shared_task
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import autodiscover_modules

from kernel.metrics import Counter

logger = logging.getLogger(__name__)

T = TypeVar("T")

JOB_RUNS = Counter("hs_periodic_job_runs_total", "Periodic job runs by job and outcome (ok/error)", ["job", "outcome"])

_STATUS_KEY = "periodic:last_run:{}"
# Long enough to outlive any interval; short enough that a renamed job's record does not linger in Redis forever.
STATUS_TTL_SEC = 7 * 24 * 3600
# A job is overdue when its last start is older than two intervals plus this (a beat tick, a busy worker).
OVERDUE_SLACK_SEC = 60.0
_ERROR_MAX_CHARS = 500


@dataclass(frozen=True, slots=True)
class PeriodicJob:
    name: str
    func: Callable[[], object]  # the recording function both topologies call (the Celery task's body)
    every_sec: float
    run_at_start: bool = False


# Filled at import of each app's `tasks` module; read through `periodic_jobs()`.
PERIODIC_JOBS: list[PeriodicJob] = []


class JobRun(TypedDict):
    """The last run of a job, as stored in the cache (a plain dict, so records survive code changes)."""

    started_at: float  # epoch seconds
    duration_ms: int
    ok: bool
    error_type: str  # exception class name, "" when ok
    error: str  # exception message (truncated), "" when ok
    last_ok_at: float | None  # epoch seconds of the last successful run, if any is on record
    failures_in_row: int
    host: str  # which machine ran it (a Celery worker or the `serve` process)


@dataclass(frozen=True, slots=True)
class JobStatus:
    name: str
    every_sec: float
    run_at_start: bool
    last_run: JobRun | None  # None: never ran since the record expired or the cache was emptied
    overdue: bool  # the last start is older than two intervals: no scheduler or worker is running this job


def periodic(
    *,
    name: str,
    every_sec: float,
    run_at_start: bool = False,
    retry_on: tuple[type[BaseException], ...] = (),
    max_retries: int = 3,
) -> Callable[[Callable[[], T]], Any]:
    """Declare a periodic job: the Celery task `name`, scheduled every `every_sec` seconds in both topologies.

    `run_at_start` also runs it as soon as the scheduler starts. `retry_on` is the task's own retry policy under
    Celery (exponential back-off, at most `max_retries`); in the one-process topology the next interval is the
    retry. Returns the Celery task, so callers may still `.delay()` it.
    """
    if not every_sec > 0:
        raise ImproperlyConfigured(f"periodic job {name!r}: every_sec must be > 0, got {every_sec!r}")

    def declare(func: Callable[[], T]) -> Any:
        recorded = _recording(name, func)
        _add(PeriodicJob(name=name, func=recorded, every_sec=float(every_sec), run_at_start=run_at_start))
        return shared_task(
            name=name,
            autoretry_for=retry_on,
            max_retries=max_retries,
            retry_backoff=True,
            retry_backoff_max=60,
            retry_jitter=True,
        )(recorded)

    return declare


def _add(job: PeriodicJob) -> None:
    for i, other in enumerate(PERIODIC_JOBS):
        if other.name != job.name:
            continue
        if _origin(other.func) == _origin(job.func):
            PERIODIC_JOBS[i] = job  # the same module imported again (reload): the newer function wins
            return
        # Celery would keep the first function under this name and silently drop the second.
        raise ImproperlyConfigured(
            f"periodic job {job.name!r} is declared twice: by {_origin(other.func)} and by {_origin(job.func)}"
        )
    PERIODIC_JOBS.append(job)


def _origin(func: Callable[..., object]) -> str:
    return f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', repr(func))}"


def periodic_jobs() -> tuple[PeriodicJob, ...]:
    """Every declared job, after importing each installed app's `tasks` module.

    Celery's autodiscovery imports those modules in workers and beat; doing the same here means `serve` and the
    system check see exactly the jobs Celery sees, even for an app whose `ready()` does not import its tasks.
    """
    _discover_tasks_modules()
    return tuple(PERIODIC_JOBS)


@functools.cache
def _discover_tasks_modules() -> None:
    # Once per process: later calls (the /system page) would only repeat the same imports' file-system probes.
    autodiscover_modules("tasks")


def job_problems(jobs: Sequence[PeriodicJob], celery_tasks: Mapping[str, Any]) -> list[str]:
    """What keeps a job from running in both topologies (pure: takes the registry and Celery's task registry)."""
    problems = [
        f"periodic job {name!r} is declared {count} times"
        for name, count in collections.Counter(j.name for j in jobs).items()
        if count > 1
    ]
    for job in jobs:
        if not callable(job.func):
            problems.append(f"periodic job {job.name!r} has no callable to run (got {job.func!r})")
        task = celery_tasks.get(job.name)
        if task is None:
            problems.append(
                f"periodic job {job.name!r} is not a registered Celery task: beat would send it and every "
                "worker would drop it as unregistered"
            )
        # `__wrapped__` is the function the task was built from (autoretry replaces `run`, not this).
        elif getattr(task, "__wrapped__", None) is not job.func:
            problems.append(
                f"Celery task {job.name!r} runs {_origin(getattr(task, '__wrapped__', task))}, not the periodic "
                f"job's function {_origin(job.func)}: the two topologies would run different code"
            )
        if not job.every_sec > 0:
            problems.append(f"periodic job {job.name!r} has interval {job.every_sec!r}; it must be > 0 seconds")
    return problems


# A run holds this lock in the shared cache so two runs of one job never overlap, whichever topology, worker or
# beat tick started them: reconcile, trailing stops or kill-switch upkeep running twice at once would send the same
# venue action twice. It outlives Celery's hard time limit so a crashed holder cannot keep the job off for long.
_LOCK_KEY = "periodic:lock:{}"
LOCK_TTL_SEC = 130


def _recording(name: str, func: Callable[[], T]) -> Callable[[], T | None]:
    @functools.wraps(func)
    def run() -> T | None:
        token = uuid.uuid4().hex
        if not _lock_take(name, token):
            JOB_RUNS.labels(job=name, outcome="skipped").inc()
            logger.info("periodic job still running elsewhere: this run is skipped", extra={"job": name})
            return None
        started, t0 = time.time(), time.perf_counter()
        try:
            result = func()
        except Exception as exc:
            _record(name, started=started, seconds=time.perf_counter() - t0, error=exc)
            raise
        finally:
            _lock_release(name, token)
        _record(name, started=started, seconds=time.perf_counter() - t0, error=None)
        return result

    return run


def _lock_take(name: str, token: str) -> bool:
    try:
        return bool(cache.add(_LOCK_KEY.format(name), token, LOCK_TTL_SEC))
    except Exception:
        # No shared cache, no lock: running unguarded beats not running a safety job at all.
        logger.warning("periodic job lock unavailable; running without it", extra={"job": name}, exc_info=True)
        return True


def _lock_release(name: str, token: str) -> None:
    try:
        if cache.get(_LOCK_KEY.format(name)) == token:
            cache.delete(_LOCK_KEY.format(name))
    except Exception:
        logger.warning("periodic job lock not released (expires by itself)", extra={"job": name}, exc_info=True)


def _record(name: str, *, started: float, seconds: float, error: Exception | None) -> None:
    JOB_RUNS.labels(job=name, outcome="ok" if error is None else "error").inc()
    key = _STATUS_KEY.format(name)
    try:
        # Read as a plain dict: a record written by an older version may lack fields.
        previous: dict[str, Any] = cache.get(key) or {}
        ok = error is None
        run: JobRun = {
            "started_at": started,
            "duration_ms": int(seconds * 1000),
            "ok": ok,
            "error_type": "" if error is None else type(error).__name__,
            "error": "" if error is None else str(error)[:_ERROR_MAX_CHARS],
            "last_ok_at": started if ok else previous.get("last_ok_at"),
            "failures_in_row": 0 if ok else int(previous.get("failures_in_row", 0)) + 1,
            "host": socket.gethostname(),
        }
        cache.set(key, run, STATUS_TTL_SEC)
    except Exception:
        # The record is for the operator: a cache outage must neither fail a run that did its work (and make
        # Celery retry it) nor hide the job's own exception, which the caller re-raises.
        logger.warning("periodic job status not recorded", extra={"job": name}, exc_info=True)


def job_status(*, now: float | None = None) -> list[JobStatus]:
    """Every registered job with its last recorded run (from whichever topology ran it), for the /system page."""
    now = time.time() if now is None else now
    jobs = periodic_jobs()
    runs: dict[str, JobRun] = cache.get_many([_STATUS_KEY.format(j.name) for j in jobs])
    statuses = []
    for job in jobs:
        last = runs.get(_STATUS_KEY.format(job.name))
        overdue = last is not None and now - last["started_at"] > 2 * job.every_sec + OVERDUE_SLACK_SEC
        statuses.append(
            JobStatus(
                name=job.name, every_sec=job.every_sec, run_at_start=job.run_at_start, last_run=last, overdue=overdue
            )
        )
    return statuses


def job_rows(*, now: float | None = None) -> list[dict[str, Any]]:
    """`job_status()` shaped for the /system page: seconds since the last run, outcome, error, overdue."""
    now = time.time() if now is None else now
    rows = []
    for st in job_status(now=now):
        last = st.last_run
        rows.append(
            {
                "name": st.name,
                "every_sec": st.every_sec,
                "ran": last is not None,
                "ago_s": None if last is None else round(now - last["started_at"], 1),
                "ok": None if last is None else last["ok"],
                "duration_ms": None if last is None else last["duration_ms"],
                "error": "" if last is None or last["ok"] else f"{last['error_type']}: {last['error']}",
                "failures_in_row": 0 if last is None else last["failures_in_row"],
                "host": "" if last is None else last["host"],
                "overdue": st.overdue,
            }
        )
    return rows
