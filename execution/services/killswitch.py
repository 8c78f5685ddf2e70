"""Kill switch (operations guide Part 8): block everything that adds risk everywhere, cancel every open order that
could add risk, optionally close all positions with reduce-only market orders, halt autonomous trading, and keep
the venue's dead-man switch (scheduleCancel) armed while engaged. Operators may engage it; only an admin
re-enables trading.

What it lets through: risk going DOWN. Cancels, reduce-only closes (a trader closing a position from its row) and
protective triggers (stops, take-profits) pass the kill switch, and the sweep leaves reduce-only orders and
triggers resting, so open positions keep their protection. If HyperSentry itself dies while engaged, the venue's
dead-man switch cancels everything at the venue.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from accounts.models import AgentStatus, AgentWallet, Role, User
from accounts.services import agent_signing_wallet
from execution.audit import audit_append
from execution.models import TradingControls
from execution.outcomes import Result
from execution.services import controls as ctl
from execution.services.account import account_read
from execution.services.cancels import orders_cancel_all
from execution.services.events import publish_private
from execution.services.modify import position_close
from execution.services.orders import new_correlation_id
from execution.services.sending import signed_post_audited
from kernel import clock
from kernel.errors import ApplicationError, PermissionDenied, ValidationFailed
from kernel.venue import client as vc

logger = logging.getLogger(__name__)
CACHE_KEY = "exec:killswitch"


def trading_users() -> list[User]:
    ids = AgentWallet.objects.filter(status=AgentStatus.APPROVED, valid_until__gt=timezone.now()).values_list(
        "user_id", flat=True
    )
    return list(User.objects.filter(pk__in=set(ids)))


def can_engage(user: User | None) -> bool:
    return user is not None and user.is_active and user.role in (Role.ADMIN, Role.OPERATOR)


def _schedule_cancel(*, user: User, at_ms: int | None, cid: str) -> Any:
    """Arm (or clear, with None) the venue's dead-man switch for one user."""

    wallet = agent_signing_wallet(user=user)
    action: dict[str, Any] = {"type": "scheduleCancel"}
    if at_ms is not None:
        action["time"] = at_ms
    return signed_post_audited(
        user=user,
        wallet=wallet,
        action=action,
        cid=cid,
        event="killswitch.deadman",
        actor="killswitch",
        priority=vc.CANCEL,
    )


def killswitch_engage(
    *, actor: User | None, actor_label: str = "", reason: str, flatten: bool = False
) -> dict[str, Any]:
    """Engage (idempotent). The DB flag flips first — every process reads it on each submit — then the venue work."""
    if actor is not None and not can_engage(actor):
        raise PermissionDenied("only admins and operators may engage the kill switch")
    who, cid = _who_and_cid(actor=actor, actor_label=actor_label, reason=reason)
    _controls_set(
        who=who,
        kill_switch_engaged=True,
        auto_trading_halted=True,
        kill_reason=reason[:300],
        kill_by=who[:64],
        kill_at=timezone.now(),
    )
    logger.warning("kill switch engaged", extra={"actor": who, "correlation_id": cid})
    _announce(engaged=True, actor=actor, who=who, cid=cid, reason=reason, data={"flatten": flatten})
    summary = killswitch_sweep(cid=cid, flatten=flatten)
    audit_append(event="killswitch.sweep", correlation_id=cid, actor=who, data=summary)
    return {"correlation_id": cid, **summary}


def killswitch_sweep(*, cid: str, flatten: bool) -> dict[str, Any]:
    """For every trading user: dead-man armed, orders that could add risk cancelled, positions closed if asked."""
    cancelled = closed = failures = 0
    deadman_ms = clock.now_ms() + settings.KILLSWITCH_DEADMAN_SEC * 1000
    for user in trading_users():
        try:
            _schedule_cancel(user=user, at_ms=deadman_ms, cid=cid)
        except (vc.VenueError, vc.VenueTimeout, ApplicationError):
            failures += 1
            logger.warning("dead-man switch not armed", extra={"user_id": user.pk}, exc_info=True)
        try:
            cancelled += orders_cancel_all(user=user, correlation_id=cid, actor="killswitch", risk_adding_only=True)
        except (vc.VenueError, vc.VenueTimeout, ApplicationError):
            failures += 1
            logger.exception("kill switch cancel failed", extra={"user_id": user.pk})
        if flatten:
            try:
                closed += _flatten(user=user, cid=cid)
            except (vc.VenueError, vc.VenueTimeout, ApplicationError):
                failures += 1
                logger.exception("kill switch could not flatten", extra={"user_id": user.pk})
    return {
        "users": len(trading_users()),
        "orders_cancelled": cancelled,
        "positions_closed": closed,
        "failures": failures,
    }


def _flatten(*, user: User, cid: str) -> int:
    acct = account_read(user=user, fresh=True, priority=vc.CANCEL, quota=False)
    if acct.stale:
        logger.warning("kill switch flattens from the last known positions", extra={"user_id": user.pk})
    positions = acct.positions
    closed = 0
    for symbol in positions:
        key = f"flatten-{cid}-{symbol}"
        outcome = position_close(
            user=user, key=key, symbol=symbol, correlation_id=cid, bypass_gates=True, source="killswitch"
        )
        closed += int(outcome.result == Result.DONE)
        audit_append(
            event="killswitch.flatten",
            correlation_id=cid,
            user_id=user.pk,
            actor="killswitch",
            data={"symbol": symbol, "result": outcome.result.value, "order": outcome.to_dict().get("order")},
        )
    return closed


def killswitch_disengage(*, actor: User | None, actor_label: str = "", reason: str) -> dict[str, Any]:
    """Only an explicit admin action lifts it (the CLI counts as an admin: it needs shell access to the host)."""
    if actor is not None and not actor.is_admin:
        raise PermissionDenied("only admins re-enable trading after a kill switch")
    who, cid = _who_and_cid(actor=actor, actor_label=actor_label, reason=reason)
    was = _controls_set(who=who, kill_switch_engaged=False, auto_trading_halted=False)
    _announce(engaged=False, actor=actor, who=who, cid=cid, reason=reason, data={"was_engaged": was})
    for user in trading_users():
        try:
            _schedule_cancel(user=user, at_ms=None, cid=cid)
        except (vc.VenueError, vc.VenueTimeout, ApplicationError):
            logger.warning("dead-man switch not cleared", extra={"user_id": user.pk}, exc_info=True)
    return {"correlation_id": cid, "was_engaged": was}


def _who_and_cid(*, actor: User | None, actor_label: str, reason: str) -> tuple[str, str]:
    """Who acts (a user, else the label, else the CLI) and a new correlation id; a reason is required."""
    if not reason.strip():
        raise ValidationFailed("a reason is required", code="reason_required")
    return ctl.actor_name(actor, actor_label or "cli"), new_correlation_id()


def _controls_set(*, who: str, **changes: Any) -> bool:
    """Apply `changes` to the controls row under its lock; returns whether the kill switch was engaged before."""
    ctl.controls_get()
    with transaction.atomic():
        row = TradingControls.objects.select_for_update().get(pk=1)
        was = row.kill_switch_engaged
        for name, value in changes.items():
            setattr(row, name, value)
        row.updated_by = who[:64]
        row.save()
    return was


def _announce(*, engaged: bool, actor: User | None, who: str, cid: str, reason: str, data: dict[str, Any]) -> None:
    """The switch moved: note it in the cache, audit it (`killswitch.engaged` / `.disengaged`) and tell the users."""
    state = {"engaged": True, "reason": reason} if engaged else {"engaged": False}
    cache.set(CACHE_KEY, {**state, "by": who, "at": time.time()}, None)
    audit_append(
        event="killswitch.engaged" if engaged else "killswitch.disengaged",
        correlation_id=cid,
        user_id=actor.pk if actor else None,
        actor=who,
        data={"reason": reason, **data},
    )
    _notify(engaged=engaged, reason=reason, who=who)


def _notify(*, engaged: bool, reason: str, who: str) -> None:
    """risk_update to every trading user so open terminals show (or clear) the banner at once."""

    for user in trading_users():
        publish_private(
            user_id=user.pk,
            event_type="risk_update",
            data={"kill_switch": {"engaged": engaged, "reason": reason, "by": who}},
        )


def killswitch_maintain() -> dict[str, Any]:
    """Periodic while engaged: re-arm the dead-man switch and cancel anything that appeared on the venue."""
    row = ctl.controls_get()
    if not row.kill_switch_engaged:
        return {"engaged": False}
    return {"engaged": True, **killswitch_sweep(cid=new_correlation_id(), flatten=False)}
