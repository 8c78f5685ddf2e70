"""The Celery app for split topologies (worker + beat). Beat's schedule comes from hypersentry.schedule."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hypersentry.settings")

app = Celery("hypersentry")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_finalize.connect
def _install_beat_schedule(sender: Celery, **kwargs: object) -> None:
    from hypersentry.schedule import PERIODIC_JOBS

    sender.conf.beat_schedule = {
        job.name: {"task": job.task, "schedule": job.every_sec, "options": {"expires": job.every_sec}}
        for job in PERIODIC_JOBS
    }
