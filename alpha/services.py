"""Writes: the reading store, presence, auto mode, the per-user trading context, and autonomous trades.

`autotrade_attempt` is the one path from a signal to an order, used by the pipeline worker (users with auto
mode on) and by POST /alpha/autonomous/trigger. Gates are evaluated on the server from the stored reading;
cooldown, concurrency and the once-per-signal rule are re-checked under a per-user row lock so the worker and
the API (in any process) cannot both trade the same signal. The order goes through the execution relay
(`order_submit` inside the idempotency wrapper, key derived from the signal), with an audit record naming the
signal under the order's correlation id.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from accounts.selectors import agent_current
from alpha import gates as g
from alpha import metrics, selectors
from alpha.engine import AlphaConfig, SizingLimits, size_position, win_probability
from alpha.models import ACTIVE_STATUSES, AutoTrade, AutoTradeSettings, AutoTradeStatus
from alpha.readings import Reading
from execution import risk
from execution.audit import audit_append
from execution.models import Order, OrderState
from execution.outcomes import Result
from execution.services.account import account_read
from execution.services.breakers import breakers_open
from execution.services.controls import controls_get, limits_for
from execution.services.idempotency import idempotent
from execution.services.relay import order_submit
from kernel import clock
from kernel.contracts.envelope import dumps_text
from kernel.errors import ApplicationError, ValidationFailed
from kernel.venue import client as vc

logger = logging.getLogger(__name__)
ZERO = Decimal(0)
_KEY_SAFE = re.compile(r"[^A-Za-z0-9_\-.]")


# --- store ----------------------------------------------------------------------------------------------------
def conviction_store_many(*, envelopes: dict[str, str], index: dict[str, dict[str, Any]]) -> None:
    """Latest alpha_conviction envelope per symbol (text, encoded once by the pipeline) + a small index."""

    values: dict[str, Any] = {selectors.CONVICTION_KEY.format(s): t for s, t in envelopes.items()}
    values[selectors.INDEX_KEY] = dumps_text(index)
    cache.set_many(values, timeout=selectors.STORE_TTL_SEC)


def presence_touch(*, user_id: int) -> None:
    """Mark the user as watching the alpha page (the worker then sends them risk_update / exec_plan)."""
    now = time.time()
    raw = cache.get(selectors.PRESENCE_KEY) or {}
    live = {k: v for k, v in raw.items() if v > now}
    live[str(user_id)] = now + selectors.PRESENCE_TTL_SEC
    cache.set(selectors.PRESENCE_KEY, live, timeout=selectors.PRESENCE_TTL_SEC * 2)


def auto_mode_set(*, user: User, enabled: bool) -> AutoTradeSettings:

    row, _ = AutoTradeSettings.objects.get_or_create(user=user)
    row.auto_mode = enabled
    row.save()
    audit_append(
        event="alpha.auto_mode",
        correlation_id=f"auto-mode-{user.pk}-{clock.now_ms()}",
        user_id=user.pk,
        actor=f"{user.role}:{user.address}",
        data={"auto_mode": enabled},
    )
    return row


# --- per-user context ----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class UserContext:
    user_id: int
    equity_usd: Decimal | None
    exposure_usd: Decimal
    positions: dict[str, Decimal]  # symbol -> signed size
    limits: SizingLimits
    auto_mode: bool
    agent_ready: bool
    open_auto_trades: int
    fetched_ms: int
    error: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "equity_usd": self.equity_usd,
            "exposure_usd": self.exposure_usd,
            "positions": self.positions,
            "limits": {
                "max_position_usd": self.limits.max_position_usd,
                "max_total_exposure_usd": self.limits.max_total_exposure_usd,
                "max_leverage": self.limits.max_leverage,
            },
            "auto_mode": self.auto_mode,
            "agent_ready": self.agent_ready,
            "open_auto_trades": self.open_auto_trades,
            "fetched_ms": self.fetched_ms,
            "error": self.error,
        }


def user_context_get(*, user: User) -> UserContext:
    """Equity and positions from the venue under the master address (execution.account_state, briefly cached),
    limits from execution's risk limits, auto mode, agent readiness and open auto trades."""

    lim = limits_for(user=user)
    limits = SizingLimits(
        max_position_usd=lim.max_position_usd,
        max_total_exposure_usd=lim.max_total_exposure_usd,
        max_leverage=Decimal(lim.max_leverage),
    )
    equity: Decimal | None = None
    exposure, positions, error = ZERO, {}, ""
    try:
        acct = account_read(user=user, max_age=2.0)
        if acct.stale:
            raise vc.VenueError(f"account state stale ({acct.reason})", kind="error")
        equity = acct.equity
        for coin, pos in acct.positions.items():
            positions[coin.upper()] = Decimal(str(pos.get("szi", "0")))
            exposure += abs(Decimal(str(pos.get("positionValue", "0"))))
    except (vc.VenueError, vc.VenueTimeout, ApplicationError) as exc:
        error = f"venue: {exc}"
    autotrades_reconcile(user=user, positions=positions if not error else None)
    return UserContext(
        extra=_recent_trades(user=user),
        user_id=user.pk,
        equity_usd=equity,
        exposure_usd=exposure,
        positions=positions,
        limits=limits,
        auto_mode=selectors.auto_mode_get(user=user),
        agent_ready=agent_current(user=user) is not None,
        open_auto_trades=selectors.auto_trades_open_count(user=user),
        fetched_ms=clock.now_ms(),
        error=error,
    )


def _recent_trades(*, user: User) -> dict[str, Any]:
    """What the pipeline's in-memory gate view needs: newest auto trade per symbol, signals already traded,
    and the user's own open breakers."""

    since = timezone.now() - timedelta(hours=6)
    last: dict[str, int] = {}
    keys: set[str] = set()
    for row in AutoTrade.objects.filter(user=user, created_at__gte=since).order_by("created_at"):
        last[row.symbol] = int(row.created_at.timestamp() * 1000)
        keys.add(f"{row.symbol}:{row.signal_ts_ms}:{row.side}")
    return {"last_trade_ms": last, "traded_keys": keys, "user_breakers": breakers_open(user=user)}


def autotrades_reconcile(*, user: User, positions: dict[str, Decimal] | None) -> int:
    """Close auto trades whose order ended without a fill or whose position is gone; returns how many."""

    closed = 0
    grace = timezone.now() - timedelta(seconds=10)  # account_state is cached ~2 s; fills land async
    for row in AutoTrade.objects.filter(user=user, status__in=ACTIVE_STATUSES, created_at__lt=grace):
        order = Order.objects.filter(pk=row.order_id).only("state", "filled_size").first() if row.order_id else None
        ended_unfilled = (
            order is not None and order.state in (OrderState.CANCELLED, OrderState.REJECTED) and not (order.filled_size)
        )
        flat = positions is not None and row.symbol not in positions and row.status != AutoTradeStatus.PENDING
        if ended_unfilled or flat or (row.status == AutoTradeStatus.PENDING and order is None):
            row.status = AutoTradeStatus.CLOSED
            row.closed_at = timezone.now()
            row.save(update_fields=["status", "closed_at"])
            closed += 1
    return closed


# --- autonomous trades ----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class AttemptOutcome:
    """An autonomous attempt: blocked by a gate, or the order's outcome (body = the serialised outcome, as the
    idempotency key stored it; `status` = the HTTP answer stored with it, for the API)."""

    status: int
    body: dict[str, Any]

    @property
    def placed(self) -> bool:
        return bool(self.body.get("placed"))


def signal_key(*, reading: Reading, side: str) -> str:
    """Idempotency key of a signal: symbol, when its same-side streak started, side. The worker and the API
    derive the same key for the same signal, so a signal trades at most once."""
    return f"auto:{_KEY_SAFE.sub('_', reading.symbol)}:{reading.streak_start_ms}:{side}"


def _size(*, reading: Reading, side: str, ctx: UserContext, config: AlphaConfig) -> Decimal:
    if side == g.NONE or ctx.equity_usd is None or not reading.price:
        return ZERO
    p = win_probability(score=reading.score, side=side, config=config)
    limits = ctx.limits
    held = ctx.positions.get(reading.symbol.upper(), ZERO)
    if held != 0 and (held > 0) == (side == g.LONG):
        # Adding to a position: only the room left under the per-position limit is available.
        room = max(ZERO, limits.max_position_usd - abs(held) * Decimal(str(reading.price)))
        limits = SizingLimits(room, limits.max_total_exposure_usd, limits.max_leverage)
    sizing = size_position(
        side=side,
        win_probability=p,
        rr=reading.rr,
        equity_usd=float(ctx.equity_usd),
        price=reading.price,
        realised_vol_annual=reading.rv_annual,
        current_exposure_usd=float(ctx.exposure_usd),
        limits=limits,
        config=config,
    )
    return sizing.size_usd


def _gate_inputs(
    *, user: User, reading: Reading | None, ctx: UserContext, side: str, size: Decimal | None, now_ms: int
) -> g.GateInputs:

    controls = controls_get()
    last = None
    already = False
    if reading is not None:
        newest = AutoTrade.objects.filter(user=user, symbol=reading.symbol).order_by("-created_at").first()
        last = int(newest.created_at.timestamp() * 1000) if newest is not None else None
        already = (
            side != g.NONE
            and AutoTrade.objects.filter(user=user, idempotency_key=signal_key(reading=reading, side=side)).exists()
        )
    return g.GateInputs(
        now_ms=now_ms,
        kill_switch=controls.kill_switch_engaged,
        auto_halted=controls.auto_trading_halted,
        trading_enabled=controls.server_trading_enabled,
        breakers=breakers_open(user=user),
        auto_mode=ctx.auto_mode,
        agent_ready=ctx.agent_ready,
        reading_ts_ms=None if reading is None else reading.ts_ms,
        score=None if reading is None else reading.score,
        streak_side=g.NONE if reading is None else reading.streak_side,
        streak=0 if reading is None else reading.streak,
        last_trade_ms=last,
        open_trades=AutoTrade.objects.filter(user=user, status__in=ACTIVE_STATUSES).count(),
        already_traded=already,
        size_usd=size,
    )


def autotrade_gates(
    *, user: User, reading: Reading | None, ctx: UserContext | None = None, now_ms: int | None = None
) -> tuple[g.GateResult, Decimal | None, UserContext]:
    """Evaluate every gate for `user` on `reading` (read-only)."""
    row = selectors.alpha_settings_get()
    thresholds = selectors.thresholds_from(row)
    ctx = ctx or user_context_get(user=user)
    now_ms = now_ms if now_ms is not None else clock.now_ms()
    side = g.side_for(None if reading is None else reading.score, thresholds)
    size = (
        _size(reading=reading, side=side, ctx=ctx, config=selectors.engine_config_from(row))
        if reading is not None
        else None
    )
    inputs = _gate_inputs(user=user, reading=reading, ctx=ctx, side=side, size=size, now_ms=now_ms)
    return g.gates_evaluate(inputs, thresholds), size, ctx


def _blocked(result: g.GateResult, reading: Reading | None) -> AttemptOutcome:
    code = result.blocked_by or "blocked"
    metrics.AUTO_TRADES.labels(outcome=f"blocked:{code}").inc()
    body = {"type": "error", "code": code, "message": g.MESSAGES.get(code, ""), "placed": False}
    body.update(
        {"blocked_by": code, "gates": result.as_dict(), "reading_ts": None if reading is None else reading.ts_ms}
    )
    return AttemptOutcome(422, body)


def autotrade_attempt(
    *, user: User, reading: Reading | None, trigger: str, now_ms: int | None = None
) -> AttemptOutcome:
    """Evaluate the gates and, when all pass, place one market order for the signal through the relay."""
    result, size, ctx = autotrade_gates(user=user, reading=reading, now_ms=now_ms)
    if not result.ok or reading is None or size is None:
        return _blocked(result, reading)
    key = signal_key(reading=reading, side=result.side)
    AutoTradeSettings.objects.get_or_create(user=user)
    with transaction.atomic():
        # Serialise attempts per user (worker and API, any process): re-check the counting gates under the lock.
        AutoTradeSettings.objects.select_for_update().get(user=user)
        locked = g.gates_evaluate(
            _gate_inputs(
                user=user, reading=reading, ctx=ctx, side=result.side, size=size, now_ms=now_ms or clock.now_ms()
            ),
            selectors.thresholds_from(selectors.alpha_settings_get()),
        )
        if not locked.ok:
            return _blocked(locked, reading)
        trade = AutoTrade.objects.create(
            user=user,
            symbol=reading.symbol,
            side=result.side,
            signal_ts_ms=reading.streak_start_ms,
            reading_ts_ms=reading.ts_ms,
            score=reading.score,
            streak=reading.streak,
            size_usd=size,
            idempotency_key=key,
            correlation_id=f"alpha-{user.pk}-{reading.symbol}-{reading.ts_ms}"[:64],
            trigger=trigger,
        )
    return _place(user=user, trade=trade, reading=reading, result=locked)


def _signal(trade: AutoTrade, reading: Reading) -> dict[str, Any]:
    """The signal an auto trade acts on, as audited and hashed into its idempotency key's payload."""
    return {
        "symbol": reading.symbol,
        "side": trade.side,
        "score": reading.score,
        "bias": reading.bias,
        "streak": reading.streak,
        "streak_start_ms": reading.streak_start_ms,
        "reading_ts_ms": reading.ts_ms,
        "rolling_avg": reading.rolling_avg,
        "rr": reading.rr,
        "price": reading.price,
    }


def _place(*, user: User, trade: AutoTrade, reading: Reading, result: g.GateResult) -> AttemptOutcome:
    signal = _signal(trade, reading)
    audit_data = {"signal": signal, "key": trade.idempotency_key, "size_usd": trade.size_usd, "trigger": trade.trigger}
    audit_data["gates"] = result.as_dict()
    audit_append(
        event="alpha.auto_trade", correlation_id=trade.correlation_id, user_id=user.pk, actor="alpha", data=audit_data
    )
    intent = risk.OrderIntent(
        symbol=reading.symbol, is_buy=trade.side == g.LONG, order_type="market", size_usd=trade.size_usd
    )
    try:
        status, body = idempotent(
            user=user,
            key=trade.idempotency_key,
            endpoint="alpha.auto",
            payload={"signal": signal, "size_usd": trade.size_usd},
            run=lambda k: order_submit(
                user=user,
                key=k,
                intent=intent,
                session_authenticated=True,
                correlation_id=trade.correlation_id,
                source="alpha_auto",
            ),
        )
    except Exception as exc:
        AutoTrade.objects.filter(pk=trade.pk).update(status=AutoTradeStatus.FAILED, reason=str(exc)[:300])
        metrics.AUTO_TRADES.labels(outcome="failed").inc()
        raise
    return AttemptOutcome(status, _record(trade=trade, body=body, result=result))


def _record(*, trade: AutoTrade, body: dict[str, Any], result: g.GateResult) -> dict[str, Any]:
    """The auto trade's state from the order's serialised outcome (also on a replay of the key); the answer."""
    order = body.get("order") or {}
    answered = str(body.get("result"))
    states: dict[str, str] = {Result.DONE: AutoTradeStatus.OPEN, Result.PENDING: AutoTradeStatus.UNKNOWN}
    state = states.get(answered, AutoTradeStatus.REJECTED)
    AutoTrade.objects.filter(pk=trade.pk).update(
        status=state, order_id=order.get("id"), reason=str(body.get("code") or body.get("message") or "")[:300]
    )
    trade.refresh_from_db()
    metrics.AUTO_TRADES.labels(outcome=state).inc()
    placed = answered in (Result.DONE, Result.PENDING)
    out = {
        "placed": placed,
        "auto_trade": selectors.auto_trade_dict(trade),
        "order": order,
        "gates": result.as_dict(),
        "correlation_id": trade.correlation_id,
    }
    if not placed:
        out.update({"type": "error", "code": body.get("code", "order_rejected"), "message": body.get("message", "")})
    return out


def autotrade_trigger(*, user: User, symbol: str) -> AttemptOutcome:
    """POST /alpha/autonomous/trigger: read the latest server-side reading, then the same path as the worker."""
    sym = symbol.upper()
    if not selectors.known_symbol(symbol=sym):
        raise ValidationFailed(f"symbol: unknown symbol {symbol!r}", code="unknown_symbol", extra={"field": "symbol"})
    env = selectors.conviction_envelope_get(symbol=sym)
    reading = Reading.from_payload(env["data"]) if env is not None else None
    return autotrade_attempt(user=user, reading=reading, trigger="api")


def auto_mode_global() -> bool:
    return bool(settings.RISK_AUTO_MODE_ENABLED)
