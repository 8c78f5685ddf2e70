"""The Celery app for split topologies (worker + beat). Beat's schedule is the periodic-job registry
(`kernel.schedule`), checked when beat starts.

Both processes beat (`/system`, `manage.py healthcheck celery|beat`): the worker from a thread between its
`worker_ready` and `worker_shutdown` signals, beat on every scheduler tick. Each records the last error it saw (a
failed task; a due job that could not be sent) and deletes its row on a clean stop. Pool children mark their
Prometheus files dead when they exit (the main processes do it at exit: kernel.metrics).
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from celery import Celery
from celery.beat import PersistentScheduler
from celery.signals import task_failure, worker_process_init, worker_process_shutdown, worker_ready, worker_shutdown
from django.core.exceptions import ImproperlyConfigured

from kernel import components
from kernel.metrics import mark_process_dead
from kernel.schedule import PeriodicJob, job_problems, periodic_jobs

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hypersentry.settings")

app = Celery("hypersentry")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def beat_schedule(jobs: Sequence[PeriodicJob], celery_tasks: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Beat entries for the jobs, each sent under the job's registered name; refuses a job no worker would run."""
    if not jobs:
        raise ImproperlyConfigured("no periodic jobs are registered: beat would schedule nothing (apps not loaded?)")
    problems = job_problems(jobs, celery_tasks)
    if problems:
        raise ImproperlyConfigured("periodic jobs cannot be scheduled: " + "; ".join(problems))
    # `expires`: a run still queued when the next one is due is dropped instead of stacking up behind it.
    return {
        job.name: {"task": job.name, "schedule": job.every_sec, "options": {"expires": job.every_sec}} for job in jobs
    }


# Beat sleeps between ticks until the next job is due, up to this: the `beat` heartbeat is written on each tick.
BEAT_TICK_MAX_SEC = 5.0
_BEAT_WRITER = components.BeatWriter("beat")


class JobScheduler(PersistentScheduler):  # type: ignore[misc]  # celery is untyped
    """Beat's scheduler: the schedule is built from the registry when beat starts (after Django has loaded every
    app's tasks), an unregistered job stops beat naming it, and `run_at_start` jobs are due at once."""

    # The class default wins unless beat_max_loop_interval is configured (Celery's own default is 300 s).
    max_interval = BEAT_TICK_MAX_SEC

    def setup_schedule(self) -> None:
        jobs = periodic_jobs()
        self.app.conf.beat_schedule = beat_schedule(jobs, self.app.tasks)
        super().setup_schedule()
        # Beat's own start-up rule is "first run one interval from now"; the reconcile and the kill-switch upkeep
        # must not wait that long after a deploy, as `serve` does not.
        for job in jobs:
            if job.run_at_start:
                self.schedule[job.name].last_run_at = self.app.now() - datetime.timedelta(seconds=job.every_sec)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        _BEAT_WRITER.beat(f"{len(self.schedule)} jobs scheduled", min_interval=1.0)
        return super().tick(*args, **kwargs)  # type: ignore[no-any-return]

    def apply_async(self, entry: Any, producer: Any = None, advance: bool = True, **kwargs: Any) -> Any:
        try:
            return super().apply_async(entry, producer=producer, advance=advance, **kwargs)
        except Exception as exc:
            # Celery logs it and goes on with the next job (Scheduler.apply_entry); the heartbeat shows it too.
            components.error_seen_safely("beat", exc)
            raise

    def close(self) -> None:
        try:
            super().close()
        finally:
            _BEAT_WRITER.remove()


# Signal handlers cannot stop beat (Celery logs and swallows their exceptions); a scheduler can.
app.conf.beat_scheduler = JobScheduler


# --- heartbeats and per-process metrics --------------------------------------------------------------------------


@dataclass
class _WorkerProcess:
    heart: components.ThreadHeartbeat | None = None
    pid: int | None = None  # the worker's main process, once it is ready (pool children inherit it when forked)
    pool_parent: int | None = None  # in a pool child: the worker that forked it


_worker = _WorkerProcess()


@worker_ready.connect
def _worker_ready(sender: Any = None, **kwargs: Any) -> None:
    # A thread rather than the consumer's timer: Celery clears that timer when it reconnects to the broker, and
    # worker_ready is not sent again.
    hostname = str(getattr(sender, "hostname", ""))
    _worker.pid = os.getpid()
    _worker.heart = components.ThreadHeartbeat("celery", detail=lambda: hostname)
    _worker.heart.start()


@worker_shutdown.connect
def _worker_shutdown(sender: Any = None, **kwargs: Any) -> None:
    heart, _worker.heart = _worker.heart, None
    if heart is not None:
        heart.stop()


@worker_process_init.connect
def _pool_child_started(**kwargs: Any) -> None:
    _worker.pool_parent = os.getppid()


@worker_process_shutdown.connect
def _pool_child_exited(pid: int | None = None, **kwargs: Any) -> None:
    # Pool children leave through os._exit: no atexit hook runs, so the child marks its own files dead here.
    mark_process_dead(pid if pid is not None else os.getpid())


@task_failure.connect
def _task_failed(sender: Any = None, exception: BaseException | None = None, **kwargs: Any) -> None:
    message = f"{getattr(sender, 'name', 'task')}: {type(exception).__name__}: {exception}"
    # A prefork child reports to the worker process that beats for it (solo and thread pools run tasks in the
    # worker process itself, which also sends worker_process_init for the solo pool).
    in_pool_child = _worker.pool_parent is not None and os.getpid() != _worker.pid
    components.error_seen_safely("celery", message, pid=_worker.pool_parent if in_pool_child else None)
