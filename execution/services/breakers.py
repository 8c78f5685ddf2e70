"""Circuit breakers (bot guide): per user where the cause is the user's own trading, global where it is the
venue's or the market feed's — so one user can never halt trading for the others.

* consecutive_losses (user): the last N closing trades lost, net of fees (what the fills table shows);
  cooldown BREAKER_LOSS_COOLDOWN_SEC.
* daily_loss (user): today's realised PnL net of fees <= -max daily loss; half-opens at the next 00:00 UTC.
* drawdown (user): equity fell max_drawdown_pct below its high-water mark; BREAKER_DRAWDOWN_COOLDOWN_SEC.
* error_rate (global): >= BREAKER_ERROR_RATE of the venue's answers to orders failed on the venue's side
  (timeouts, 5xx, broken connections); BREAKER_ERROR_COOLDOWN_SEC.
* rate_budget (global): BREAKER_RATE_LIMIT_COUNT venue 429s in the window; BREAKER_RATE_BUDGET_COOLDOWN_SEC.
* stale_data (global): an order meets data BREAKER_STALE_DATA_SEC old while the whole market feed is down;
  BREAKER_STALE_DATA_COOLDOWN_SEC.

Open: new orders that add risk are refused (`circuit_breaker_open`); reduce-only closes, stops and cancels pass.
Half-open (the cooldown passed): orders pass; the next evidence closes it (a venue success, fresh data, a winning
trade, equity back within the limit) or trips it again with a fresh cooldown. Our own budget refusals are not
venue answers and never count; user errors (`err` answers such as insufficient margin) never count. An admin can
reset any breaker at any time, with a reason. Every trip, close and reset is audited and published.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import User
from execution.audit import audit_append
from execution.models import GLOBAL_BREAKERS, USER_BREAKERS, BreakerKind, CircuitBreaker
from execution.pnl import trailing_losses
from execution.services.controls import actor_name
from execution.services.equity_peaks import peak_rebase
from execution.services.events import publish_private
from kernel.cache_safe import cache_call
from kernel.errors import PermissionDenied, ValidationFailed
from kernel.venue.client import counter_add

logger = logging.getLogger(__name__)

_GLOBAL_FLAG = "exec:breakers:global-tripped"


# --- reading ----------------------------------------------------------------------------------------------------
def breakers_open(*, user: User | None, now: datetime | None = None) -> tuple[str, ...]:
    """Kinds that block new risk for `user` right now: global ones and the user's own, tripped and cooling down."""
    now = now or timezone.now()
    scope = Q(user__isnull=True) | (Q(user=user) if user is not None else Q(pk__in=[]))
    cooling = Q(cooldown_until__isnull=True) | Q(cooldown_until__gt=now)
    return tuple(
        CircuitBreaker.objects.filter(scope, cooling, tripped=True).order_by("kind").values_list("kind", flat=True)
    )


def breaker_rows(*, user: User | None, staff: bool = False) -> list[dict[str, Any]]:
    """Tripped breakers visible to `user` (global + own; staff see everyone's), for the banner and the API."""
    now = timezone.now()
    rows = CircuitBreaker.objects.filter(tripped=True).select_related("user")
    out = []
    for b in rows:
        if not (b.user_id is None or staff or (user is not None and b.user_id == user.pk)):
            continue
        out.append(
            {
                "kind": b.kind,
                "scope": "global" if b.user_id is None else "user",
                "user": None if b.user is None else b.user.address,
                "state": b.state_at(now),
                "reason": b.reason,
                "tripped_at_ms": _ms(b.tripped_at),
                "cooldown_until_ms": _ms(b.cooldown_until),
                "trips": b.trips,
            }
        )
    return out


def _ms(value: datetime | None) -> int | None:
    return None if value is None else int(value.timestamp() * 1000)


def _row(kind: str, user: User | None) -> CircuitBreaker:
    row = CircuitBreaker.objects.filter(kind=kind, user=user).first()
    if row is not None:
        return row
    try:
        with transaction.atomic():
            return CircuitBreaker.objects.create(kind=kind, user=user)
    except IntegrityError:
        return CircuitBreaker.objects.get(kind=kind, user=user)


def _check_scope(kind: str, user: User | None) -> None:
    if kind not in BreakerKind.values:
        raise ValidationFailed(
            f"unknown breaker {kind!r}; one of {', '.join(BreakerKind.values)}", code="unknown_breaker"
        )
    if kind in USER_BREAKERS and user is None:
        raise ValidationFailed(f"{kind} is a per-user breaker: name the user", code="breaker_needs_user")
    if kind in GLOBAL_BREAKERS and user is not None:
        raise ValidationFailed(f"{kind} is a global breaker: it has no user", code="breaker_is_global")


def cooldown_until(kind: str, now: datetime) -> datetime:
    if kind == BreakerKind.DAILY_LOSS:
        return (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    seconds = {
        BreakerKind.CONSECUTIVE_LOSSES: settings.BREAKER_LOSS_COOLDOWN_SEC,
        BreakerKind.DRAWDOWN: settings.BREAKER_DRAWDOWN_COOLDOWN_SEC,
        BreakerKind.ERROR_RATE: settings.BREAKER_ERROR_COOLDOWN_SEC,
        BreakerKind.RATE_BUDGET: settings.BREAKER_RATE_BUDGET_COOLDOWN_SEC,
        BreakerKind.STALE_DATA: settings.BREAKER_STALE_DATA_COOLDOWN_SEC,
    }[BreakerKind(kind)]
    return now + timedelta(seconds=float(seconds))


# --- state changes ----------------------------------------------------------------------------------------------
def breaker_trip(*, kind: str, user: User | None = None, reason: str, details: dict[str, Any] | None = None) -> bool:
    """Trip a closed or half-open breaker (an open one keeps its cooldown); True when this call tripped it."""
    _check_scope(kind, user)
    row = _row(kind, user)
    now = timezone.now()
    reopened = row.tripped
    until = cooldown_until(kind, now)
    updated = (
        CircuitBreaker.objects.filter(pk=row.pk)
        .filter(Q(tripped=False) | Q(cooldown_until__isnull=False, cooldown_until__lte=now))
        .update(tripped=True, reason=reason[:300], details=details or {}, tripped_at=now, cooldown_until=until)
    )
    if not updated:
        return False
    CircuitBreaker.objects.filter(pk=row.pk).update(trips=row.trips + 1)
    if user is None:
        cache_call(lambda: cache.set(_GLOBAL_FLAG, 1, None), fallback=None, what="breakers")
    data = {
        "kind": kind,
        "reason": reason,
        "details": details or {},
        "scope": "user" if user else "global",
        "cooldown_until": until.isoformat(),
        "reopened_from_half_open": reopened,
    }
    audit_append(event="breaker.tripped", user_id=user.pk if user else None, actor="system", data=data)
    logger.warning("circuit breaker tripped", extra={"kind": kind, "user_id": user.pk if user else None})
    _notify(user=user, data={"breaker": kind, "tripped": True, "reason": reason, "cooldown_until_ms": _ms(until)})
    return True


def breaker_close(*, kind: str, user: User | None = None, evidence: str) -> bool:
    """Close a HALF-OPEN breaker on good evidence (an open one stays open until its cooldown)."""
    now = timezone.now()
    updated = CircuitBreaker.objects.filter(
        kind=kind, user=user, tripped=True, cooldown_until__isnull=False, cooldown_until__lte=now
    ).update(tripped=False, reset_by="system", reset_reason=f"half-open: {evidence}"[:300], reset_at=now)
    if not updated:
        return False
    _after_clear(kind=kind, user=user, actor="system", reason=f"half-open: {evidence}")
    return True


def breaker_reset(*, actor: User, kind: str, user: User | None = None, reason: str) -> CircuitBreaker:
    """The admin override: close a breaker now, with a reason (audited)."""
    if not actor.is_admin:
        raise PermissionDenied("only admins reset circuit breakers")
    if not reason.strip():
        raise ValidationFailed("a reason is required to reset a breaker", code="reason_required")
    _check_scope(kind, user)
    row = _row(kind, user)
    CircuitBreaker.objects.filter(pk=row.pk).update(
        tripped=False, reset_by=actor_name(actor), reset_reason=reason[:300], reset_at=timezone.now()
    )
    _after_clear(kind=kind, user=user, actor=actor_name(actor), reason=reason, actor_id=actor.pk)
    row.refresh_from_db()
    return row


def breaker_reset_for(*, actor: User, kind: str, user_id: int | None, reason: str) -> CircuitBreaker:
    """The API's reset: the breaker's user by id (refused naming the id when there is none), then breaker_reset."""
    if not actor.is_admin:
        raise PermissionDenied("only admins reset circuit breakers")
    scope = User.objects.filter(pk=user_id).first() if user_id else None
    if user_id and scope is None:
        raise ValidationFailed(f"user_id: no user {user_id}", extra={"field": "user_id"})
    return breaker_reset(actor=actor, kind=kind, user=scope, reason=reason)


def _after_clear(*, kind: str, user: User | None, actor: str, reason: str, actor_id: int | None = None) -> None:
    if kind == BreakerKind.ERROR_RATE:
        _window_clear("err")
        _window_clear("tot")
    if kind == BreakerKind.RATE_BUDGET:
        _window_clear("429")
    if kind == BreakerKind.DRAWDOWN and user is not None:
        peak_rebase(user=user, reason=reason)
    if user is None and not CircuitBreaker.objects.filter(user__isnull=True, tripped=True).exists():
        cache_call(lambda: cache.delete(_GLOBAL_FLAG), fallback=False, what="breakers")
    audit_append(
        event="breaker.reset" if actor != "system" else "breaker.closed",
        user_id=actor_id if actor_id is not None else (user.pk if user else None),
        actor=actor,
        data={"kind": kind, "scope_user_id": user.pk if user else None, "reason": reason},
    )
    _notify(user=user, data={"breaker": kind, "tripped": False, "reason": reason})


def _notify(*, user: User | None, data: dict[str, Any]) -> None:

    if user is not None:
        publish_private(user_id=user.pk, event_type="risk_update", data=data)
    else:
        cache_call(lambda: cache.set("exec:controls:version", time.time(), None), fallback=None, what="breakers")


# --- evidence: the venue ----------------------------------------------------------------------------------------
# Sliding windows in the shared cache (10 s buckets) so every process counts towards the same breaker.
_BUCKET = 10


def _bucket_keys(name: str, window: int, now: float) -> list[str]:
    start = int(now // _BUCKET)
    return [f"exec:win:{name}:{b}" for b in range(start - window // _BUCKET, start + 1)]


def _window_add(name: str, now: float) -> None:

    key = f"exec:win:{name}:{int(now // _BUCKET)}"
    cache_call(lambda: counter_add(key, 1, settings.BREAKER_ERROR_WINDOW_SEC + 60), fallback=0, what="breakers")


def _window_sum(name: str, window: int, now: float) -> int:
    keys = _bucket_keys(name, window, now)
    empty: dict[str, Any] = {}
    counts: dict[str, Any] = cache_call(lambda: cache.get_many(keys), fallback=empty, what="breakers")
    return sum(int(v) for v in counts.values())


def _window_clear(name: str) -> None:
    keys = _bucket_keys(name, settings.BREAKER_ERROR_WINDOW_SEC, time.time())
    cache_call(lambda: cache.delete_many(keys), fallback=None, what="breakers")


def _global_tripped() -> bool:
    """A cheap hint that some global breaker is tripped; unknown (cache down) counts as yes — the DB decides."""
    return bool(cache_call(lambda: cache.get(_GLOBAL_FLAG), fallback=True, what="breakers"))


def _half_open(kind: str) -> bool:
    now = timezone.now()
    return CircuitBreaker.objects.filter(
        kind=kind, user__isnull=True, tripped=True, cooldown_until__isnull=False, cooldown_until__lte=now
    ).exists()


def venue_outcome_record(*, ok: bool) -> None:
    """One answer (or none) from the venue to an order action. Failures here are the VENUE's: timeouts, 5xx, a
    broken connection — never a user's refused order and never our own budget refusals."""
    now = time.time()
    window = settings.BREAKER_ERROR_WINDOW_SEC
    _window_add("tot", now)
    if ok:
        if _global_tripped():
            breaker_close(kind=BreakerKind.ERROR_RATE, evidence="the venue answered")
            breaker_close(kind=BreakerKind.RATE_BUDGET, evidence="the venue answered")
        return
    _window_add("err", now)
    if _half_open(BreakerKind.ERROR_RATE):
        breaker_trip(kind=BreakerKind.ERROR_RATE, reason="the venue failed again after the cooldown")
        return
    total = _window_sum("tot", window, now)
    errors = _window_sum("err", window, now)
    if total >= settings.BREAKER_ERROR_MIN_SAMPLES and errors / total >= settings.BREAKER_ERROR_RATE:
        breaker_trip(
            kind=BreakerKind.ERROR_RATE,
            reason=f"{errors}/{total} venue answers failed in {window}s",
            details={"errors": errors, "total": total, "window_s": window},
        )


def rate_limited_record() -> None:
    """A 429 from the venue (the IP's budget is spent — by someone else, since ours keeps us under it)."""
    now = time.time()
    _window_add("429", now)
    if _half_open(BreakerKind.RATE_BUDGET):
        breaker_trip(kind=BreakerKind.RATE_BUDGET, reason="the venue answered 429 again after the cooldown")
        return
    n = _window_sum("429", settings.BREAKER_ERROR_WINDOW_SEC, now)
    if n >= settings.BREAKER_RATE_LIMIT_COUNT:
        breaker_trip(kind=BreakerKind.RATE_BUDGET, reason=f"{n} venue 429 answers in the window", details={"count": n})


def stale_data_record(*, symbol: str, age_ms: int | None, feed_down: bool) -> None:
    """An order met market data this old. Only a feed that is down as a whole trips the global breaker: one stale
    symbol refuses that symbol's orders (stale_market_data) and nothing else."""
    limit_ms = int(settings.BREAKER_STALE_DATA_SEC * 1000)
    if feed_down and age_ms is not None and age_ms > limit_ms:
        breaker_trip(
            kind=BreakerKind.STALE_DATA,
            reason=f"market feed down: {symbol} data {age_ms // 1000}s old",
            details={"symbol": symbol, "age_ms": age_ms},
        )


def fresh_data_record() -> None:
    if _global_tripped():
        breaker_close(kind=BreakerKind.STALE_DATA, evidence="an order met fresh market data")


# --- evidence: the user's own trading ------------------------------------------------------------------------
def pnl_breakers_evaluate(
    *,
    user: User,
    trades: Sequence[tuple[datetime, Decimal]],
    daily_pnl: Decimal,
    streak_limit: int,
    daily_limit: Decimal,
) -> None:
    """`trades`: (time, net PnL) of the user's closing trades, oldest first."""

    now = timezone.now()
    row = _row(BreakerKind.CONSECUTIVE_LOSSES, user)
    since = row.reset_at
    if row.tripped and row.cooldown_until is not None and row.cooldown_until <= now:
        after = [pnl for t, pnl in trades if t >= row.cooldown_until]
        if after and after[-1] < 0:
            breaker_trip(kind=BreakerKind.CONSECUTIVE_LOSSES, user=user, reason="a losing trade after the cooldown")
        elif after:
            breaker_close(kind=BreakerKind.CONSECUTIVE_LOSSES, user=user, evidence="a winning trade")
    elif not row.tripped:
        counted = [pnl for t, pnl in trades if since is None or t > since]
        streak = trailing_losses(counted)
        if streak >= streak_limit:
            breaker_trip(
                kind=BreakerKind.CONSECUTIVE_LOSSES,
                user=user,
                reason=f"{streak} consecutive losing trades (net of fees)",
                details={"streak": streak},
            )
    if daily_pnl <= -daily_limit:
        breaker_trip(
            kind=BreakerKind.DAILY_LOSS,
            user=user,
            reason=f"daily loss {daily_pnl} USD reached the {daily_limit} USD limit",
            details={"daily_pnl": str(daily_pnl)},
        )
    else:
        breaker_close(kind=BreakerKind.DAILY_LOSS, user=user, evidence="a new day within the daily loss limit")
