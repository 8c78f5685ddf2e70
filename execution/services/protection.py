"""Position protection: stop-loss / take-profit as venue trigger orders attached to a position (grouping
positionTpsl), and trailing stops kept by a worker that moves the venue stop behind the best price seen."""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from django.db import transaction

from accounts.models import User
from execution import risk, venue
from execution.audit import audit_append
from execution.models import Order, OrderState, PositionProtection
from execution.rounding import AssetSpec, is_valid_price, round_price
from execution.services import controls as ctl
from execution.services.relay import (
    _book,
    _positions_from_state,
    _send,
    account_invalidate,
    account_state,
    cloid_for,
    new_correlation_id,
    order_cancel,
    order_dict,
)
from hypersentry.errors import ApplicationError

logger = logging.getLogger(__name__)


def _trigger_order(
    *,
    user: User,
    key: str,
    symbol: str,
    tpsl: str,
    trigger: Decimal,
    size: Decimal,
    long: bool,
    spec: AssetSpec,
    cid: str,
    source: str,
) -> Order:
    limit = round_price(
        px=trigger * (Decimal("0.9") if long else Decimal("1.1")), spec=spec, mode="up" if long else "down"
    )
    return Order.objects.create(
        user=user,
        idempotency_key=f"{key}:{tpsl}",
        cloid=cloid_for(user_id=user.pk, key=f"{key}:{tpsl}"),
        correlation_id=cid,
        symbol=symbol,
        side="sell" if long else "buy",
        order_type=tpsl,
        size=size,
        price=limit,
        trigger_price=trigger,
        tif="Gtc",
        reduce_only=True,
        grouping="positionTpsl",
        source=source,
    )


def _position(user: User, symbol: str) -> Decimal:
    account_invalidate(user=user)
    pos = _positions_from_state(account_state(user=user, max_age=0)).get(symbol)
    if pos is None:
        raise ApplicationError("no open position for this symbol", code="no_position", status=422)
    return Decimal(str(pos["szi"]))


def tpsl_place(
    *,
    user: User,
    key: str,
    symbol: str,
    tp_price: Decimal | None,
    sl_price: Decimal | None,
    source: str = "manual",
    cid: str | None = None,
) -> list[Order]:
    """Send TP and/or SL triggers for the whole position (positionTpsl)."""
    cid = cid or new_correlation_id()
    spec = venue.asset_spec(symbol)
    if spec is None:
        raise ApplicationError("symbol not on the venue", code=risk.SYMBOL_NOT_TRADABLE, status=422)
    szi = _position(user, symbol)
    long = szi > 0
    for name, px in (("tp", tp_price), ("sl", sl_price)):
        if px is not None and not is_valid_price(px=px, spec=spec):
            raise ApplicationError(f"{name} price violates the tick rule", code=risk.INVALID_PRICE, status=422)
    with transaction.atomic():
        orders = [
            _trigger_order(
                user=user,
                key=key,
                symbol=symbol,
                tpsl=name,
                trigger=px,
                size=abs(szi),
                long=long,
                spec=spec,
                cid=cid,
                source=source,
            )
            for name, px in (("tp", tp_price), ("sl", sl_price))
            if px is not None
        ]
    if orders:
        import time

        audit_append(
            event="protection.request",
            correlation_id=cid,
            user_id=user.pk,
            actor=ctl.actor_name(user),
            data={"symbol": symbol, "tp": tp_price, "sl": sl_price, "size": szi},
        )
        _send(
            user=user,
            orders=orders,
            spec=spec,
            grouping="positionTpsl",
            correlation_id=cid,
            started=time.perf_counter(),
        )
    for o in orders:
        o.refresh_from_db()
    return orders


def protection_set(
    *,
    user: User,
    key: str,
    symbol: str,
    tp_price: Decimal | None,
    sl_price: Decimal | None,
    trailing_pct: Decimal | None,
) -> tuple[int, dict[str, Any]]:
    cid = new_correlation_id()
    orders = tpsl_place(user=user, key=key, symbol=symbol, tp_price=tp_price, sl_price=sl_price, cid=cid)
    body: dict[str, Any] = {"orders": [order_dict(o) for o in orders], "correlation_id": cid}
    if trailing_pct is not None:
        PositionProtection.objects.filter(user=user, symbol=symbol, active=True).update(active=False)
        prot = PositionProtection.objects.create(user=user, symbol=symbol, trail_pct=trailing_pct)
        audit_append(
            event="protection.trailing",
            correlation_id=cid,
            user_id=user.pk,
            actor=ctl.actor_name(user),
            data={"symbol": symbol, "trail_pct": trailing_pct},
        )
        trailing_tick(protection=prot)
        prot.refresh_from_db()
        body["trailing"] = {
            "id": prot.pk,
            "trail_pct": str(prot.trail_pct),
            "stop_price": None if prot.stop_price is None else str(prot.stop_price),
        }
    status = 422 if any(o.state == OrderState.REJECTED for o in orders) else 201
    return status, body


def trailing_tick(*, protection: PositionProtection) -> None:
    """Move one trailing stop: track the best mid since activation; re-place the venue SL when it improves."""
    user = protection.user
    book = _book(protection.symbol)
    spec = venue.asset_spec(protection.symbol)
    if book is None or book.mid is None or spec is None:
        return
    try:
        szi = _position(user, protection.symbol)
    except ApplicationError:
        PositionProtection.objects.filter(pk=protection.pk).update(active=False)  # position closed
        return
    long = szi > 0
    mid = book.mid
    best = protection.best_price
    if best is None or (long and mid > best) or (not long and mid < best):
        best = mid
    pct = protection.trail_pct / 100
    stop = round_price(px=best * (1 - pct) if long else best * (1 + pct), spec=spec, mode="down" if long else "up")
    improves = protection.stop_price is None or (stop > protection.stop_price if long else stop < protection.stop_price)
    PositionProtection.objects.filter(pk=protection.pk).update(best_price=best)
    if not improves:
        return
    old = protection.stop_order
    if old is not None and old.state in (OrderState.RESTING, OrderState.SUBMITTED):
        order_cancel(user=user, order_id=old.pk, actor="trailing")
    key = f"trail-{protection.pk}-{stop}"
    orders = tpsl_place(user=user, key=key, symbol=protection.symbol, tp_price=None, sl_price=stop, source="trailing")
    PositionProtection.objects.filter(pk=protection.pk).update(
        stop_price=stop, stop_order=orders[0] if orders else None
    )


def trailing_run() -> int:
    moved = 0
    for prot in PositionProtection.objects.filter(active=True).select_related("user", "stop_order"):
        try:
            trailing_tick(protection=prot)
            moved += 1
        except (venue.VenueError, venue.VenueTimeout, ApplicationError):
            logger.warning("trailing stop update failed", extra={"protection_id": prot.pk}, exc_info=True)
    return moved
