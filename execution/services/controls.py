"""Trading controls (switches, admin-only mode), risk limits and circuit breakers.

Controls are read from the database on every submit — no in-process copy — so a kill switch engaged by any
process (admin action, management command, operator button) blocks new orders everywhere at once.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import User
from execution import metrics
from execution.audit import audit_append
from execution.models import BreakerKind, CircuitBreaker, RiskLimits, TradingControls
from execution.risk import Limits
from hypersentry.errors import PermissionDenied, ValidationFailed

logger = logging.getLogger(__name__)

# Bot guide "Risk Limits (Default)": testnet column for sim/testnet, production column for mainnet.
DEFAULT_LIMITS: dict[str, dict[str, Any]] = {
    "sim": {
        "max_position_usd": Decimal(1000),
        "max_total_exposure_usd": Decimal(5000),
        "max_daily_loss_usd": Decimal(100),
        "stop_loss_pct": Decimal(5),
        "max_drawdown_pct": Decimal(15),
        "max_leverage": 10,
        "max_slippage_bps": 100,
    },
    "testnet": {
        "max_position_usd": Decimal(1000),
        "max_total_exposure_usd": Decimal(5000),
        "max_daily_loss_usd": Decimal(100),
        "stop_loss_pct": Decimal(5),
        "max_drawdown_pct": Decimal(15),
        "max_leverage": 10,
        "max_slippage_bps": 100,
    },
    "mainnet": {
        "max_position_usd": Decimal(500),
        "max_total_exposure_usd": Decimal(2500),
        "max_daily_loss_usd": Decimal(50),
        "stop_loss_pct": Decimal(3),
        "max_drawdown_pct": Decimal(10),
        "max_leverage": 5,
        "max_slippage_bps": 50,
    },
}


def actor_name(user: User | None, fallback: str = "system") -> str:
    return f"{user.role}:{user.address}" if user is not None else fallback


# --- controls ---------------------------------------------------------------------------------------------
def controls_get() -> TradingControls:
    """The one controls row, created with the settings' defaults on first use."""
    row = TradingControls.objects.filter(pk=1).first()
    if row is not None:
        return row
    try:
        with transaction.atomic():
            return TradingControls.objects.create(
                pk=1,
                server_trading_enabled=settings.ENABLE_SERVER_SIDE_TRADING,
                admin_only=settings.REQUIRE_ADMIN_FOR_SERVER_TRADING,
            )
    except IntegrityError:
        return TradingControls.objects.get(pk=1)


def trading_configure(
    *, actor: User, server_trading_enabled: bool | None = None, admin_only: bool | None = None, reason: str = ""
) -> TradingControls:
    """Admin only: switch server-side trading or admin-only mode at runtime (audited)."""
    if not actor.is_admin:
        raise PermissionDenied("only admins change trading controls")
    controls_get()
    with transaction.atomic():
        row = TradingControls.objects.select_for_update().get(pk=1)
        before = {"server_trading_enabled": row.server_trading_enabled, "admin_only": row.admin_only}
        if server_trading_enabled is not None:
            row.server_trading_enabled = server_trading_enabled
        if admin_only is not None:
            row.admin_only = admin_only
        row.updated_by = actor_name(actor)
        row.save()
    audit_append(
        event="controls.changed",
        user_id=actor.pk,
        actor=actor_name(actor),
        data={
            "before": before,
            "after": {"server_trading_enabled": row.server_trading_enabled, "admin_only": row.admin_only},
            "reason": reason,
        },
    )
    return row


# --- limits -----------------------------------------------------------------------------------------------
def _default_limits_row(environment: str) -> RiskLimits:
    row = RiskLimits.objects.filter(user__isnull=True, environment=environment).first()
    if row is not None:
        return row
    try:
        with transaction.atomic():
            return RiskLimits.objects.create(user=None, environment=environment, **DEFAULT_LIMITS[environment])
    except IntegrityError:
        return RiskLimits.objects.get(user__isnull=True, environment=environment)


def limits_row_for(*, user: User) -> RiskLimits:
    env = settings.HYPERSENTRY_VENUE
    return RiskLimits.objects.filter(user=user, environment=env).first() or _default_limits_row(env)


def limits_for(*, user: User) -> Limits:
    row = limits_row_for(user=user)
    return Limits(
        max_position_usd=row.max_position_usd,
        max_total_exposure_usd=row.max_total_exposure_usd,
        max_daily_loss_usd=row.max_daily_loss_usd,
        max_leverage=row.max_leverage,
        max_slippage_bps=row.max_slippage_bps,
    )


# --- breakers ---------------------------------------------------------------------------------------------
def breakers_open(*, user: User | None) -> tuple[str, ...]:
    q = Q(user__isnull=True) | (Q(user=user) if user is not None else Q(pk__in=[]))
    return tuple(CircuitBreaker.objects.filter(q, tripped=True).order_by("kind").values_list("kind", flat=True))


def _breaker_row(kind: str, user: User | None) -> CircuitBreaker:
    row = CircuitBreaker.objects.filter(kind=kind, user=user).first()
    if row is not None:
        return row
    try:
        with transaction.atomic():
            return CircuitBreaker.objects.create(kind=kind, user=user)
    except IntegrityError:
        return CircuitBreaker.objects.get(kind=kind, user=user)


def breaker_gauges_refresh() -> None:
    """Gauges follow the DB (a breaker tripped in another process shows here too)."""
    tripped = set(CircuitBreaker.objects.filter(tripped=True).values_list("kind", flat=True))
    for kind in BreakerKind.values:
        metrics.BREAKER_STATE.labels(kind=kind).set(1 if kind in tripped else 0)


def breaker_trip(*, kind: str, user: User | None = None, reason: str, details: dict[str, Any] | None = None) -> bool:
    """Trip a breaker (idempotent); True when this call tripped it."""
    _breaker_row(kind, user)
    updated = CircuitBreaker.objects.filter(kind=kind, user=user, tripped=False).update(
        tripped=True, reason=reason[:300], details=details or {}, tripped_at=timezone.now()
    )
    if not updated:
        return False
    metrics.BREAKER_STATE.labels(kind=kind).set(1)
    audit_append(
        event="breaker.tripped",
        user_id=user.pk if user else None,
        actor="system",
        data={"kind": kind, "reason": reason, "details": details or {}, "scope": "user" if user else "global"},
    )
    logger.warning("circuit breaker tripped", extra={"kind": kind, "user_id": user.pk if user else None})
    _notify_risk(user=user, data={"breaker": kind, "tripped": True, "reason": reason})
    return True


def breaker_reset(*, actor: User, kind: str, user: User | None = None, reason: str) -> CircuitBreaker:
    """Admin only, with a reason (audited)."""
    if not actor.is_admin:
        raise PermissionDenied("only admins reset circuit breakers")
    if not reason.strip():
        raise ValidationFailed("a reason is required to reset a breaker", code="reason_required")
    if kind not in BreakerKind.values:
        raise ValidationFailed(f"unknown breaker {kind!r}", code="unknown_breaker")
    row = _breaker_row(kind, user)
    CircuitBreaker.objects.filter(pk=row.pk).update(
        tripped=False, reset_by=actor_name(actor), reset_reason=reason[:300], reset_at=timezone.now()
    )
    if kind == BreakerKind.ERROR_RATE:
        _window_clear("err")
    if kind == BreakerKind.RATE_BUDGET:
        _window_clear("429")
    if not CircuitBreaker.objects.filter(kind=kind, tripped=True).exists():
        metrics.BREAKER_STATE.labels(kind=kind).set(0)
    audit_append(
        event="breaker.reset",
        user_id=actor.pk,
        actor=actor_name(actor),
        data={"kind": kind, "scope_user_id": user.pk if user else None, "reason": reason},
    )
    _notify_risk(user=user, data={"breaker": kind, "tripped": False, "reason": reason})
    row.refresh_from_db()
    return row


def _notify_risk(*, user: User | None, data: dict[str, Any]) -> None:
    from execution.services.events import publish_private

    if user is not None:
        publish_private(user_id=user.pk, event_type="risk_update", data=data)
    else:
        cache.set("exec:controls:version", time.time(), None)


# Sliding windows in the shared cache (10 s buckets) so every process counts towards the same breaker.
_BUCKET = 10


def _bucket_keys(name: str, window: int, now: float) -> list[str]:
    start = int(now // _BUCKET)
    return [f"exec:win:{name}:{b}" for b in range(start - window // _BUCKET, start + 1)]


def _window_add(name: str, now: float) -> None:
    key = f"exec:win:{name}:{int(now // _BUCKET)}"
    cache.add(key, 0, timeout=settings.BREAKER_ERROR_WINDOW_SEC + 60)
    try:
        cache.incr(key)
    except ValueError:
        cache.set(key, 1, timeout=settings.BREAKER_ERROR_WINDOW_SEC + 60)


def _window_sum(name: str, window: int, now: float) -> int:
    return sum(int(v) for v in cache.get_many(_bucket_keys(name, window, now)).values())


def _window_clear(name: str) -> None:
    cache.delete_many(_bucket_keys(name, settings.BREAKER_ERROR_WINDOW_SEC, time.time()))


def venue_outcome_record(*, ok: bool) -> None:
    """Count one venue call for the error-rate breaker (timeouts, 5xx, 429 and `err` answers are errors)."""
    now = time.time()
    window = settings.BREAKER_ERROR_WINDOW_SEC
    _window_add("tot", now)
    if not ok:
        _window_add("err", now)
    total = _window_sum("tot", window, now)
    errors = _window_sum("err", window, now)
    if total >= settings.BREAKER_ERROR_MIN_SAMPLES and errors / total >= settings.BREAKER_ERROR_RATE:
        breaker_trip(
            kind=BreakerKind.ERROR_RATE,
            reason=f"{errors}/{total} venue calls failed in {window}s",
            details={"errors": errors, "total": total, "window_s": window},
        )


def rate_limited_record() -> None:
    """A 429 from the venue; enough of them in the window trips the rate-budget breaker."""
    now = time.time()
    _window_add("429", now)
    n = _window_sum("429", settings.BREAKER_ERROR_WINDOW_SEC, now)
    if n >= settings.BREAKER_RATE_LIMIT_COUNT:
        breaker_trip(kind=BreakerKind.RATE_BUDGET, reason=f"{n} venue 429 answers in the window", details={"count": n})


def stale_data_record(*, symbol: str, age_ms: int | None) -> None:
    """Market data much older than the freshness rule (or none at all while a user trades) trips the breaker."""
    limit_ms = int(settings.BREAKER_STALE_DATA_SEC * 1000)
    if age_ms is not None and age_ms > limit_ms:
        breaker_trip(
            kind=BreakerKind.STALE_DATA,
            reason=f"{symbol} market data {age_ms // 1000}s old",
            details={"symbol": symbol, "age_ms": age_ms},
        )


def pnl_breakers_evaluate(*, user: User, closing_pnls: list[Decimal], daily_pnl: Decimal) -> None:
    from execution.pnl import trailing_losses

    row = limits_row_for(user=user)
    streak = trailing_losses(closing_pnls)
    if streak >= row.consecutive_losses:
        breaker_trip(
            kind=BreakerKind.CONSECUTIVE_LOSSES,
            user=user,
            reason=f"{streak} consecutive losing trades",
            details={"streak": streak},
        )
    if daily_pnl <= -row.max_daily_loss_usd:
        breaker_trip(
            kind=BreakerKind.DAILY_LOSS,
            user=user,
            reason=f"daily loss {daily_pnl} USD reached the {row.max_daily_loss_usd} USD limit",
            details={"daily_pnl": str(daily_pnl)},
        )


@dataclass(frozen=True, slots=True)
class ControlsView:
    server_trading_enabled: bool
    admin_only: bool
    kill_switch_engaged: bool
    kill_reason: str
    kill_by: str
    kill_at: datetime | None
    breakers: list[dict[str, Any]]
