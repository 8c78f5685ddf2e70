"""Server-side sessions: tracked per login so they can be listed, rotated, revoked and their sockets closed."""

from __future__ import annotations

import inspect
import ipaddress
import logging
import secrets
from datetime import datetime, timedelta
from importlib import import_module

from asgiref.sync import async_to_sync
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.metrics import SESSION_ENDS
from accounts.models import User, UserSession
from kernel.errors import NotFound

logger = logging.getLogger(__name__)

TOUCH_EVERY = timedelta(seconds=60)


def _close_now(session_key: str, reason: str) -> None:
    try:
        from kernel.realtime import get_broadcaster
    except ImportError:
        logger.warning("kernel.realtime is not available; sockets of an ended session stay until re-validation")
        return
    try:
        result = get_broadcaster().close_session_sockets(session_key, reason)
        if inspect.isawaitable(result):

            async def _await() -> None:
                await result

            async_to_sync(_await)()
    except Exception:
        logger.exception("closing the sockets of an ended session failed", extra={"reason": reason})


def close_session_sockets(*, session_key: str, reason: str) -> None:
    """Ask the gateway to close every socket opened with this session (after the surrounding commit)."""
    transaction.on_commit(lambda: _close_now(session_key, reason))


def _session_store(session_key: str):  # type: ignore[no-untyped-def]
    return import_module(settings.SESSION_ENGINE).SessionStore(session_key=session_key)


def valid_ip(value: str | None) -> str | None:
    """An address the IP column accepts, or None (a unix-socket peer has none; a proxy hop may be garbage)."""
    try:
        return str(ipaddress.ip_address((value or "").strip()))
    except ValueError:
        return None


def session_start(
    *, user: User, session_key: str, expires_at: datetime, ip: str | None, user_agent: str, is_demo: bool
) -> UserSession:
    now = timezone.now()
    return UserSession.objects.create(
        public_id=secrets.token_urlsafe(12),
        user=user,
        session_key=session_key,
        created_at=now,
        last_seen=now,
        rotated_at=now,
        expires_at=expires_at,
        ip=valid_ip(ip),
        user_agent=(user_agent or "")[:256],
        is_demo=is_demo,
    )


def session_rotate(*, old_key: str, new_key: str, expires_at: datetime) -> None:
    """The session key was cycled: follow it, and close sockets that still hold the old key."""
    now = timezone.now()
    UserSession.objects.filter(session_key=old_key, revoked_at__isnull=True).update(
        session_key=new_key, rotated_at=now, last_seen=now, expires_at=expires_at
    )
    close_session_sockets(session_key=old_key, reason="session_rotated")


def session_touch(*, tracked: UserSession, expires_at: datetime) -> None:
    now = timezone.now()
    if now - tracked.last_seen >= TOUCH_EVERY:
        UserSession.objects.filter(pk=tracked.pk).update(last_seen=now, expires_at=expires_at)


def _end(tracked: UserSession, *, reason: str, delete_store: bool) -> None:
    updated = UserSession.objects.filter(pk=tracked.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now(), end_reason=reason
    )
    if delete_store:
        _session_store(tracked.session_key).delete()
    if updated:
        SESSION_ENDS.labels(reason=reason).inc()
    close_session_sockets(session_key=tracked.session_key, reason=reason)


def session_end(*, session_key: str, reason: str) -> None:
    """Logout (or a session found invalid): the caller flushes the Django session itself."""
    tracked = UserSession.objects.filter(session_key=session_key).first()
    if tracked is not None:
        _end(tracked, reason=reason, delete_store=False)
    else:
        close_session_sockets(session_key=session_key, reason=reason)


def session_revoke(*, actor: User, public_id: str) -> UserSession:
    """Users revoke their own sessions; admins any. Someone else's session looks like a missing one."""
    tracked = UserSession.objects.select_related("user").filter(public_id=public_id).first()
    if tracked is None or (tracked.user_id != actor.pk and not actor.is_admin):
        raise NotFound("no such session", code="session_not_found")
    _end(tracked, reason="revoked", delete_store=True)
    tracked.refresh_from_db()
    return tracked


def sessions_expire(*, now: datetime | None = None) -> int:
    """Periodic: end tracked sessions whose server-side session has expired, closing their sockets."""
    now = now or timezone.now()
    expired = list(UserSession.objects.filter(revoked_at__isnull=True, expires_at__lte=now)[:1000])
    for tracked in expired:
        _end(tracked, reason="expired", delete_store=True)
    return len(expired)
