from __future__ import annotations

import logging

from celery import shared_task

logger = logging.getLogger(__name__)


@shared_task(name="accounts.tasks.sessions_purge_expired")
def sessions_purge_expired() -> None:
    """Delete expired server-side sessions (Django's clearsessions)."""
    from django.contrib.sessions.backends.db import SessionStore

    SessionStore.clear_expired()
    logger.info("expired sessions purged")
