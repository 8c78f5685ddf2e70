"""Order rows: identity (cloid from (user, key)), monotonic state transitions, presentation.

Transitions only move FORWARD. Several writers race on one order — the relay's answer (or its timeout), the venue
user feed, reconciliation, cancels — and a late writer must never undo what an earlier one learnt: a relay timeout
(`unknown`) arriving after the feed set `resting` is dropped. Each transition is one conditional UPDATE
(`WHERE state IN <allowed predecessors>`), so the rule holds across processes without locks.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from decimal import Decimal
from typing import Any, Final

from django.utils import timezone

from accounts.models import User
from execution import metrics
from execution.models import Order, OrderState
from execution.services.account import account_invalidate
from execution.services.events import publish_private
from kernel.errors import NotFound
from kernel.venue.rounding import to_wire

logger = logging.getLogger(__name__)
S = OrderState

# The states each state may be reached from. Same-state entries allow field updates (more filled, an oid).
ALLOWED_FROM: Final[dict[str, frozenset[str]]] = {
    S.SUBMITTED: frozenset({S.PENDING}),
    S.UNKNOWN: frozenset({S.PENDING, S.SUBMITTED}),
    S.RESTING: frozenset({S.PENDING, S.SUBMITTED, S.UNKNOWN, S.RESTING}),
    S.PARTIALLY_FILLED: frozenset({S.SUBMITTED, S.UNKNOWN, S.RESTING, S.PARTIALLY_FILLED}),
    S.FILLED: frozenset({S.PENDING, S.SUBMITTED, S.UNKNOWN, S.RESTING, S.PARTIALLY_FILLED, S.FILLED}),
    S.CANCELLED: frozenset({S.PENDING, S.SUBMITTED, S.UNKNOWN, S.RESTING, S.PARTIALLY_FILLED, S.CANCELLED}),
    S.REJECTED: frozenset({S.PENDING, S.SUBMITTED, S.UNKNOWN, S.REJECTED}),
}
# The venue's own final word (orderStatus / its order feed) may correct one final state into another — an order
# we marked cancelled that in fact filled first — but never turn a final state back into a live one.
VENUE_CORRECTIONS: Final[dict[str, frozenset[str]]] = {
    S.FILLED: frozenset({S.CANCELLED, S.REJECTED}),
    S.CANCELLED: frozenset({S.REJECTED}),
}


def cloid_for(*, user_id: int, key: str) -> str:
    """16 bytes of sha256(user_id|key) as the venue client order id: the same key always maps to the same cloid."""
    return "0x" + hashlib.sha256(f"{user_id}|{key}".encode()).hexdigest()[:32]


def new_correlation_id() -> str:
    return uuid.uuid4().hex


def order_dict(order: Order) -> dict[str, Any]:
    def d(v: Decimal | None) -> str | None:
        return None if v is None else to_wire(v)

    return {
        "id": order.pk,
        "cloid": order.cloid,
        "correlation_id": order.correlation_id,
        "symbol": order.symbol,
        "side": order.side,
        "type": order.order_type,
        "size": d(order.size),
        "price": d(order.price),
        "trigger_price": d(order.trigger_price),
        "tif": order.tif,
        "reduce_only": order.reduce_only,
        "leverage": order.leverage,
        "state": order.state,
        "venue_oid": order.venue_oid,
        "venue_status": order.venue_status,
        "reject_reason": order.reject_reason,
        "filled_size": d(order.filled_size),
        "avg_fill_price": d(order.avg_fill_price),
        "source": order.source,
        "parent_id": order.parent_id,
        "replaces_id": order.replaces_id,
        "created_at_ms": int(order.created_at.timestamp() * 1000),
        "updated_at_ms": int((order.updated_at or order.created_at).timestamp() * 1000),
    }


def order_transition(order: Order, state: str, *, venue_correction: bool = False, **fields: Any) -> bool:
    """Move `order` to `state` (with `fields`) if that is forward from its CURRENT state in the database; refresh
    `order` either way. False when the transition was refused (a newer state is already recorded)."""
    allowed = set(ALLOWED_FROM[state])
    if venue_correction:
        allowed |= VENUE_CORRECTIONS.get(state, frozenset())
    filled = fields.get("filled_size")
    if state == S.FILLED or (filled is not None and filled != order.filled_size):
        # The position changes: account states fetched before this moment must not be used after it.
        account_invalidate(user=order.user)
    qs = Order.objects.filter(pk=order.pk, state__in=allowed)
    if filled is not None:
        qs = qs.filter(filled_size__lte=filled)  # filled size never shrinks
    updated = qs.update(state=state, updated_at=timezone.now(), **fields)
    order.refresh_from_db()
    if not updated:
        logger.info(
            "order transition refused (newer state recorded)",
            extra={"order_id": order.pk, "to": state, "current": order.state},
        )
        return False
    metrics.ORDERS.labels(state=state).inc()
    publish_private(user_id=order.user_id, event_type="order_update", data=order_dict(order), symbol=order.symbol)
    return True


def order_find(*, user: User, order_id: int | None, cloid: str | None) -> Order:
    qs = Order.objects.filter(user=user)
    order = qs.filter(pk=order_id).first() if order_id is not None else qs.filter(cloid=(cloid or "").lower()).first()
    if order is None:
        raise NotFound("no such order", code="order_not_found")
    return order


def orders_reached_venue(*, user: User, key: str) -> list[Order]:
    """Orders of this idempotency key that were (or may have been) sent: their outcome belongs to the venue."""
    cloids = [cloid_for(user_id=user.pk, key=k) for k in (key, f"{key}:tp", f"{key}:sl")]
    return list(Order.objects.filter(user=user, cloid__in=cloids, submitted_at__isnull=False).order_by("pk"))


def orders_abandon_unsent(*, user: User, key: str, reason: str) -> int:
    """Orders of this key stored but never sent (the request failed before sending): rejected, so the key can be
    retried — `cloid_reuse` lets the retry take the same cloid over."""
    cloids = [cloid_for(user_id=user.pk, key=k) for k in (key, f"{key}:tp", f"{key}:sl")]
    return Order.objects.filter(user=user, cloid__in=cloids, submitted_at__isnull=True, state=S.PENDING).update(
        state=S.REJECTED, reject_reason=reason[:300], venue_status="never sent", updated_at=timezone.now()
    )


def cloid_reusable(order: Order) -> bool:
    """A row may be taken over by a retry of its key only if nothing was ever sent with its cloid."""
    return order.submitted_at is None and order.state in (S.REJECTED, S.CANCELLED) and order.venue_oid is None
