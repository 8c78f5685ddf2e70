"""Reads of the accounts app: session validity (for the gateway), session state and lists, agent status."""

from __future__ import annotations

from datetime import datetime, timedelta
from importlib import import_module
from typing import Any

from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.utils import timezone

from accounts.models import AgentStatus, AgentWallet, Role, User, UserSession


def _ms(dt: datetime | None) -> int | None:
    return None if dt is None else int(dt.timestamp() * 1000)


def _stored_user_id(session_key: str) -> str | None:
    """The user id inside the server-side session, or None when it is missing or expired."""
    store = import_module(settings.SESSION_ENGINE).SessionStore(session_key=session_key)
    value = store.load().get(SESSION_KEY)
    return None if value is None else str(value)


def session_is_valid(*, session_key: str) -> bool:
    """For the gateway's periodic re-validation: the session still exists, is unexpired, unrevoked, and its user
    is active. Cheap enough to call every minute per socket (two indexed lookups)."""
    if not session_key or len(session_key) > 64:
        return False
    user_id = _stored_user_id(session_key)
    if user_id is None:
        return False
    tracked = UserSession.objects.filter(session_key=session_key).select_related("user").first()
    if tracked is not None:
        return (
            tracked.revoked_at is None
            and tracked.expires_at > timezone.now()
            and str(tracked.user_id) == user_id
            and tracked.user.is_active
        )
    return User.objects.filter(pk=user_id, is_active=True).exists()


def agent_current(*, user: User) -> AgentWallet | None:
    return (
        AgentWallet.objects.filter(user=user, status=AgentStatus.APPROVED, valid_until__gt=timezone.now())
        .order_by("-approved_at")
        .first()
    )


def agent_describe(row: AgentWallet | None) -> dict[str, Any] | None:
    """Public fields only: never the key, its ciphertext or key id."""
    if row is None:
        return None
    return {
        "address": row.agent_address,
        "name": row.agent_name,
        "status": row.status,
        "valid_until_ms": _ms(row.valid_until),
        "approved_at_ms": _ms(row.approved_at),
    }


def _warnings(agent: AgentWallet | None, now: datetime) -> list[dict[str, str]]:
    warnings: list[dict[str, str]] = []
    if agent is not None and agent.valid_until - now <= timedelta(days=settings.AGENT_EXPIRY_WARN_DAYS):
        days = max(0, (agent.valid_until - now).days)
        warnings.append(
            {"code": "agent_expiring_soon", "message": f"The trading agent expires in {days} day(s); replace it."}
        )
    return warnings


def auth_state(*, user: User | None, session_key: str | None) -> dict[str, Any]:
    """What GET /auth/session returns: identity, capabilities (design §10), expiry, agent status, warnings."""
    base: dict[str, Any] = {
        "venue": settings.HYPERSENTRY_VENUE,
        "demo_wallet_allowed": settings.VENUE_IS_SIMULATOR,
    }
    if user is None or not user.is_authenticated:
        return {
            **base,
            "authenticated": False,
            "capabilities": {"session_authenticated": False, "execution_agent_ready": False},
        }
    now = timezone.now()
    tracked = UserSession.objects.filter(session_key=session_key or "").first()
    agent = agent_current(user=user)
    return {
        **base,
        "authenticated": True,
        "address": user.address,
        "role": user.role,
        "is_demo": bool(tracked and tracked.is_demo),
        "permissions": {
            "read_all": user.role in (Role.ADMIN, Role.OPERATOR),
            "emergency_stop": user.role in (Role.ADMIN, Role.OPERATOR),
            "configure": user.role == Role.ADMIN,
        },
        "capabilities": {"session_authenticated": True, "execution_agent_ready": agent is not None},
        "session": {
            "id": tracked.public_id if tracked else None,
            "created_at_ms": _ms(tracked.created_at) if tracked else None,
            "expires_at_ms": _ms(tracked.expires_at) if tracked else None,
        },
        "agent": agent_describe(agent),
        "warnings": _warnings(agent, now),
    }


def session_list(*, actor: User, everyone: bool, current_key: str | None) -> list[dict[str, Any]]:
    """The actor's sessions; admins may ask for everyone's. Keys are never listed."""
    rows = UserSession.objects.select_related("user").filter(revoked_at__isnull=True, expires_at__gt=timezone.now())
    if not (everyone and actor.is_admin):
        rows = rows.filter(user=actor)
    return [
        {
            "id": s.public_id,
            "address": s.user.address,
            "created_at_ms": _ms(s.created_at),
            "last_seen_ms": _ms(s.last_seen),
            "expires_at_ms": _ms(s.expires_at),
            "ip": s.ip,
            "user_agent": s.user_agent,
            "is_demo": s.is_demo,
            "current": s.session_key == current_key,
        }
        for s in rows[:500]
    ]
