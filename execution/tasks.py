"""Periodic jobs of the execution app: Celery tasks in split topologies, run by `serve` in the one-process one.

Each task imports its service inside (style §7): loading the apps — which every process does, beat included —
then never imports the venue client, and a service being rewritten cannot break app loading.

The short-interval jobs have no retry policy on purpose: their next round (seconds away) is the retry, and a
retried round would race the next scheduled one. Venue errors are handled per user inside the services.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import InterfaceError, OperationalError

from kernel.schedule import periodic


@periodic(name="execution.reconcile", every_sec=settings.EXECUTION_RECONCILE_SEC, run_at_start=True)
def reconcile() -> dict[str, int]:
    """Compare every user's orders, fills and positions with the venue (the source of truth); fix and audit."""
    from execution.services.sync import reconcile_all

    return reconcile_all()


@periodic(name="execution.killswitch_maintain", every_sec=15, run_at_start=True)
def killswitch_maintain() -> dict[str, Any]:
    """While the kill switch is engaged: re-arm the venue dead-man switch (KILLSWITCH_DEADMAN_SEC ahead) and
    cancel whatever could add risk that appeared meanwhile."""
    from execution.services.killswitch import killswitch_maintain as maintain

    return maintain()


@periodic(name="execution.trailing_stops", every_sec=5)
def trailing_stops() -> int:
    """Move every active trailing stop behind the best mark since activation."""
    from execution.services.protection import trailing_run

    return trailing_run()


@periodic(name="execution.idempotency_purge", every_sec=3600, retry_on=(OperationalError, InterfaceError))
def idempotency_purge() -> int:
    """Delete idempotency records older than EXECUTION_IDEMPOTENCY_TTL_HOURS."""
    from execution.services.idempotency import idempotency_purge as purge

    return purge()


@periodic(name="execution.private_events_redeliver", every_sec=5)
def private_events_redeliver() -> int:
    """The private-stream outbox: deliver events the broadcaster could not take (Redis was down), in order."""
    from execution.services.events import private_events_redeliver as redeliver

    return redeliver()


@periodic(name="execution.private_events_purge", every_sec=3600, retry_on=(OperationalError, InterfaceError))
def private_events_purge() -> int:
    """Delete private stream events older than EXECUTION_PRIVATE_EVENTS_KEEP_HOURS."""
    from execution.services.events import private_events_purge as purge

    return purge()
