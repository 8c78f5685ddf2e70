"""Periodic jobs of the accounts app: Celery tasks in split topologies, run by `serve` in the one-process one.

Each task imports its service inside (style §7): loading the apps — which every process does, beat included —
then never imports the services' dependencies (key sealing, the venue client), and a service being rewritten
cannot break app loading.
"""

from __future__ import annotations

import logging

from django.db import InterfaceError, OperationalError

from kernel.schedule import periodic

logger = logging.getLogger(__name__)

# A database blip must not leave expired keys or sessions alive for another full interval: the long-interval
# jobs retry on it (under Celery; in `serve` the next interval is the retry).
_DB_TRANSIENT = (OperationalError, InterfaceError)


@periodic(name="accounts.sessions_expire", every_sec=60)
def sessions_expire() -> int:
    """End tracked sessions whose server-side session expired, closing their sockets."""
    from accounts.services import sessions_expire as expire

    return expire()


@periodic(name="accounts.agents_expire", every_sec=600, retry_on=_DB_TRANSIENT)
def agents_expire() -> int:
    """Destroy the keys of agent wallets past valid_until (signing already refuses them; this erases them)."""
    from accounts.services.agents import agents_expire as expire

    count = expire()
    if count:
        logger.info("expired agents destroyed", extra={"count": count})
    return count


@periodic(name="accounts.sessions_purge_expired", every_sec=3600, retry_on=_DB_TRANSIENT)
def sessions_purge_expired() -> int:
    """End tracked sessions that expired (closing their sockets) first, then delete expired server-side sessions
    and sign-in nonces."""
    from django.contrib.sessions.backends.db import SessionStore
    from django.utils import timezone

    from accounts.models import SiweNonce
    from accounts.services import sessions_expire as expire

    ended = expire()
    SessionStore.clear_expired()
    # Nonce purge has no service yet (accounts/services is being rewritten): one ORM statement stays here.
    nonces, _ = SiweNonce.objects.filter(expires_at__lt=timezone.now()).delete()
    logger.info("expired sessions purged", extra={"ended": ended, "nonces": nonces})
    return ended
