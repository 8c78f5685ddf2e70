"""Celery tasks (also run by the one-process scheduler): reconciliation, idempotency purge, kill-switch upkeep,
trailing stops."""

from __future__ import annotations

from typing import Any

from celery import shared_task
from django.conf import settings

from hypersentry.schedule import PeriodicJob, register


@shared_task(name="execution.reconcile")  # type: ignore[untyped-decorator]
def reconcile() -> dict[str, Any]:
    from execution.services.sync import reconcile_all

    return reconcile_all()


@shared_task(name="execution.idempotency_purge")  # type: ignore[untyped-decorator]
def idempotency_purge() -> int:
    from execution.services.idempotency import idempotency_purge as purge

    return purge()


@shared_task(name="execution.killswitch_maintain")  # type: ignore[untyped-decorator]
def killswitch_maintain() -> dict[str, Any]:
    from execution.services.killswitch import killswitch_maintain as maintain

    return maintain()


@shared_task(name="execution.trailing_stops")  # type: ignore[untyped-decorator]
def trailing_stops() -> int:
    from execution.services.protection import trailing_run

    return trailing_run()


register(
    PeriodicJob(
        name="execution-reconcile",
        task="execution.tasks.reconcile",
        every_sec=settings.EXECUTION_RECONCILE_SEC,
        run_at_start=True,
    )
)
register(PeriodicJob(name="execution-idempotency-purge", task="execution.tasks.idempotency_purge", every_sec=3600))
register(
    PeriodicJob(
        name="execution-killswitch", task="execution.tasks.killswitch_maintain", every_sec=15, run_at_start=True
    )
)
register(PeriodicJob(name="execution-trailing-stops", task="execution.tasks.trailing_stops", every_sec=5))
