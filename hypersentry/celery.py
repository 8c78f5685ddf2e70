"""The Celery app for split topologies (worker + beat). Beat's schedule is the periodic-job registry
(`hypersentry.schedule`), checked when beat starts."""

from __future__ import annotations

import datetime
import os
from collections.abc import Mapping, Sequence
from typing import Any

from celery import Celery
from celery.beat import PersistentScheduler
from django.core.exceptions import ImproperlyConfigured

from hypersentry.schedule import PeriodicJob, job_problems, periodic_jobs

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


class JobScheduler(PersistentScheduler):  # type: ignore[misc]  # celery is untyped
    """Beat's scheduler: the schedule is built from the registry when beat starts (after Django has loaded every
    app's tasks), an unregistered job stops beat naming it, and `run_at_start` jobs are due at once."""

    def setup_schedule(self) -> None:
        jobs = periodic_jobs()
        self.app.conf.beat_schedule = beat_schedule(jobs, self.app.tasks)
        super().setup_schedule()
        # Beat's own start-up rule is "first run one interval from now"; the reconcile and the kill-switch upkeep
        # must not wait that long after a deploy, as `serve` does not.
        for job in jobs:
            if job.run_at_start:
                self.schedule[job.name].last_run_at = self.app.now() - datetime.timedelta(seconds=job.every_sec)


# Signal handlers cannot stop beat (Celery logs and swallows their exceptions); a scheduler can.
app.conf.beat_scheduler = JobScheduler
