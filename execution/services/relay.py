"""The execution relay: pre-trade checks under the user's lock, persistence before sending, signing with the user's
agent, a hard timeout, venue answers applied, every step audited with the correlation id.

Invariants:
* Checks and the order row are serialised per user (execution.services.locks): the checks see every live order of
  the user — in any process — and the worst case of all of them filling is what the limits bound.
* The Order row (with its cloid, derived from (user, idempotency key)) is stored before anything is sent.
* A timeout, broken connection or 5xx after sending leaves the order `unknown`; it is never re-sent — the
  reconciliation resolves it by cloid under the master address. A late answer never overwrites a newer state.
* Once the venue accepted an order, what follows (fills, positions, breakers, audit) is best effort: logged and
  reconciled later, never turned into an error for the accepted order.
* Audit rows are written in their own transaction (execution.audit), so rejected attempts stay recorded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import User
from execution import metrics, risk
from execution.audit import audit_append
from execution.models import Order, OrderState
from execution.outcomes import Outcome, Refusal, Result, order_outcome
from execution.services import breakers
from execution.services import controls as ctl
from execution.services.events import publish_private
from execution.services.locks import user_serialized
from execution.services.orders import (
    cloid_for,
    cloid_reusable,
    new_correlation_id,
    order_dict,
)
from execution.services.risk_inputs import intent_dict, market_feed_down, risk_context, without_gates
from execution.services.sending import best_effort, send_orders
from kernel.errors import Conflict
from kernel.venue.rounding import AssetSpec, round_price

logger = logging.getLogger(__name__)
ZERO = Decimal(0)


# --- rows -------------------------------------------------------------------------------------------------------
def _order_row(*, user: User, key: str, **fields: Any) -> Order:
    """Insert the order row for (user, key); a retry of a key whose first attempt never sent anything takes over
    that row (same cloid)."""
    cloid = cloid_for(user_id=user.pk, key=key)
    try:
        with transaction.atomic():
            return Order.objects.create(user=user, idempotency_key=key, cloid=cloid, **fields)
    except IntegrityError:
        existing = Order.objects.filter(cloid=cloid).first()
        if existing is None or existing.user_id != user.pk or not cloid_reusable(existing):
            raise Conflict("this Idempotency-Key already produced an order", code="order_exists") from None
        for name, value in {"venue_status": "", "reject_reason": "", "created_at": timezone.now(), **fields}.items():
            setattr(existing, name, value)
        existing.save()
        return existing


def _reject_row(
    *, user: User, key: str, intent: risk.OrderIntent, verdict: risk.Verdict, cid: str, source: str
) -> Order:
    metrics.REJECTIONS.labels(reason=verdict.reason).inc()
    order = _order_row(
        user=user,
        key=key or cid,
        correlation_id=cid,
        symbol=intent.symbol,
        side="buy" if intent.is_buy else "sell",
        order_type=intent.order_type,
        size=intent.size or ZERO,
        price=intent.price,
        trigger_price=intent.trigger_price,
        tif=intent.tif,
        reduce_only=intent.reduce_only,
        leverage=intent.leverage,
        source=source,
        state=OrderState.REJECTED,
        reject_reason=verdict.reason,
    )
    metrics.ORDERS.labels(state=OrderState.REJECTED).inc()
    publish_private(user_id=user.pk, event_type="order_update", data=order_dict(order), symbol=order.symbol)
    return order


def _entry_rows(
    *, user: User, key: str, n: risk.NormalizedOrder, intent: risk.OrderIntent, spec: AssetSpec, cid: str, **extra: Any
) -> list[Order]:
    attached = intent.tp_price is not None or intent.sl_price is not None
    parent = _order_row(
        user=user,
        key=key,
        correlation_id=cid,
        symbol=n.symbol,
        side="buy" if n.is_buy else "sell",
        order_type=n.order_type,
        size=n.size,
        price=n.price,
        trigger_price=n.trigger_price,
        tif=n.tif,
        reduce_only=n.reduce_only,
        leverage=n.leverage,
        state=OrderState.PENDING,
        **{**extra, "grouping": "normalTpsl" if attached else extra.get("grouping", "na")},
    )
    children = []
    for tpsl, px in (("tp", intent.tp_price), ("sl", intent.sl_price)):
        if px is None:
            continue
        long = parent.side == "buy"
        limit = round_price(
            px=px * (Decimal("0.9") if long else Decimal("1.1")), spec=spec, mode="up" if long else "down"
        )
        children.append(
            _order_row(
                user=user,
                key=f"{key}:{tpsl}",
                correlation_id=cid,
                symbol=parent.symbol,
                side="sell" if long else "buy",
                order_type=tpsl,
                size=parent.size,
                price=limit,
                trigger_price=px,
                tif="Gtc",
                reduce_only=True,
                grouping="normalTpsl",
                parent=parent,
                source=parent.source,
                state=OrderState.PENDING,
            )
        )
    return [parent, *children]


# --- submit -----------------------------------------------------------------------------------------------------
def order_submit(
    *,
    user: User,
    key: str,
    intent: risk.OrderIntent,
    session_authenticated: bool = True,
    correlation_id: str | None = None,
    source: str = "manual",
    bypass_gates: bool = False,
    replaces: Order | None = None,
    exclude_orders: Iterable[int] = (),
    grouping: str = "na",
) -> Outcome:
    """Check (under the user's lock), persist, sign, send. `bypass_gates` is for the
    kill switch's own reduce-only flatten orders only; `exclude_orders` are live orders a modify replaces;
    `grouping` positionTpsl for a trigger that follows the position's size."""
    started = time.perf_counter()
    cid = correlation_id or new_correlation_id()
    data = {"key": key, "source": source, "intent": intent_dict(intent)}
    audit_append(event="order.request", correlation_id=cid, user_id=user.pk, actor=ctl.actor_name(user), data=data)
    with user_serialized(user.pk):
        ctx, spec = risk_context(
            user=user,
            symbol=intent.symbol,
            session_authenticated=session_authenticated,
            emergency=bypass_gates,
            exclude_orders=exclude_orders,
        )
        if bypass_gates:
            ctx = without_gates(ctx)
        verdict = risk.evaluate(intent, ctx)
        if verdict.ok:
            assert verdict.order is not None and spec is not None
            extra = {"source": source, "replaces": replaces, "grouping": grouping}
            orders = _entry_rows(user=user, key=key, n=verdict.order, intent=intent, spec=spec, cid=cid, **extra)
        else:
            rejected = _reject_row(user=user, key=key, intent=intent, verdict=verdict, cid=cid, source=source)
    audit_append(event="risk.decision", correlation_id=cid, user_id=user.pk, actor="risk", data=verdict.as_dict())
    if not verdict.ok:
        _stale_data_evidence(verdict=verdict, ctx=ctx, symbol=intent.symbol)
        refusal = Refusal(verdict.reason, verdict.message)
        return Outcome(Result.REFUSED, refusal=refusal, verdict=verdict, order=rejected, correlation_id=cid)
    if ctx.book is not None:
        best_effort("stale-data breaker close", breakers.fresh_data_record)
    metrics.ORDERS.labels(state=OrderState.PENDING).inc()
    assert spec is not None  # a passing verdict needs the venue's spec
    send_orders(user=user, orders=orders, spec=spec, grouping=orders[0].grouping, correlation_id=cid, started=started)
    return order_outcome(orders[0], correlation_id=cid, verdict=verdict)


def _stale_data_evidence(*, verdict: risk.Verdict, ctx: risk.RiskContext, symbol: str) -> None:
    if verdict.reason != risk.STALE_MARKET_DATA or ctx.book is None or ctx.book.ts_ms is None:
        return
    age = ctx.now_ms - ctx.book.ts_ms
    best_effort(
        "stale-data breaker",
        lambda: breakers.stale_data_record(symbol=symbol, age_ms=age, feed_down=market_feed_down()),
    )
