from __future__ import annotations

import logging

from celery import shared_task

from hypersentry.schedule import PeriodicJob, register

logger = logging.getLogger(__name__)


@shared_task(name="accounts.tasks.sessions_purge_expired")
def sessions_purge_expired() -> None:
    """End tracked sessions that expired (closing their sockets), then delete expired server-side sessions."""
    from django.contrib.sessions.backends.db import SessionStore

    from accounts.models import SiweNonce
    from accounts.services import sessions_expire

    ended = sessions_expire()
    SessionStore.clear_expired()
    from django.utils import timezone

    SiweNonce.objects.filter(expires_at__lt=timezone.now()).delete()
    logger.info("expired sessions purged", extra={"ended": ended})


@shared_task(name="accounts.tasks.sessions_expire")
def sessions_expire_task() -> None:
    from accounts.services import sessions_expire

    sessions_expire()


@shared_task(name="accounts.tasks.agents_expire")
def agents_expire_task() -> None:
    from accounts.services.agents import agents_expire

    count = agents_expire()
    if count:
        logger.info("expired agents destroyed", extra={"count": count})


register(PeriodicJob(name="accounts-sessions-expire", task="accounts.tasks.sessions_expire", every_sec=60))
register(PeriodicJob(name="accounts-agents-expire", task="accounts.tasks.agents_expire", every_sec=600))
