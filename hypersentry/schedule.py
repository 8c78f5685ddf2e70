"""Periodic jobs, declared once: Celery beat schedules them in split topologies, and the one-process topology
runs the same task functions from its own loop (`hypersentry.topology.JobScheduler`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PeriodicJob:
    name: str
    task: str  # dotted path of a Celery task (a plain function decorated with @shared_task)
    every_sec: float
    run_at_start: bool = False


PERIODIC_JOBS: list[PeriodicJob] = [
    PeriodicJob(name="purge-expired-sessions", task="accounts.tasks.sessions_purge_expired", every_sec=3600),
]


def register(job: PeriodicJob) -> None:
    """Apps add their jobs at import time of their `tasks` module."""
    if any(j.name == job.name for j in PERIODIC_JOBS):
        return
    PERIODIC_JOBS.append(job)
