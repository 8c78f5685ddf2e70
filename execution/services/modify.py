"""Modify and close: the two ways a trader changes a live order or a position.

Modify = a new order + the old one cancelled (the venue gives the new order a new oid; local state follows it).
The replacement is checked BEFORE anything is cancelled, and the order of the two steps depends on what the order
is for:
* a protective order (reduce-only: stops, take-profits, closing limits) — the replacement is placed first and the
  old one cancelled only once the new one stands. Two reduce-only orders at once can never add risk; a position
  left without its stop can lose everything.
* an order that can add risk — the old one is cancelled first (both live at once could exceed a limit), then the
  already-checked replacement is sent.
A trigger stays a trigger with its tp/sl kind and grouping.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from accounts.models import User
from execution import risk
from execution.models import Order, OrderState
from execution.outcomes import Outcome, Refusal, Result
from execution.services import relay, risk_inputs
from execution.services.account import account_read
from execution.services.cancels import order_cancel
from execution.services.orders import new_correlation_id, order_find
from kernel.errors import ApplicationError, Conflict
from kernel.venue import client as vc

logger = logging.getLogger(__name__)
MODIFIABLE = (OrderState.RESTING, OrderState.PARTIALLY_FILLED)


def _replacement(
    old: Order, *, price: Decimal | None, trigger_price: Decimal | None, size: Decimal | None
) -> risk.OrderIntent:
    remaining = old.size - old.filled_size
    new_size = size if size is not None else remaining
    if old.order_type in ("tp", "sl"):
        # For a trigger the price the trader moves is the trigger price (`price` accepted as its alias).
        trigger = trigger_price if trigger_price is not None else (price if price is not None else old.trigger_price)
        return risk.OrderIntent(
            symbol=old.symbol,
            is_buy=old.side == "buy",
            order_type=old.order_type,
            size=new_size,
            trigger_price=trigger,
            tif="Gtc",
            reduce_only=True,
        )
    if trigger_price is not None:
        raise ApplicationError("only triggers have a trigger price", code="invalid_input", status=400)
    return risk.OrderIntent(
        symbol=old.symbol,
        is_buy=old.side == "buy",
        order_type="limit",
        size=new_size,
        price=price if price is not None else old.price,
        tif=old.tif,
        reduce_only=old.reduce_only,
    )


def order_modify(
    *,
    user: User,
    key: str,
    order_id: int,
    price: Decimal | None,
    size: Decimal | None,
    trigger_price: Decimal | None = None,
    session_authenticated: bool = True,
) -> Outcome:
    old = order_find(user=user, order_id=order_id, cloid=None)
    if old.state not in MODIFIABLE:
        raise Conflict(f"only resting orders can be modified (this one is {old.state})", code="not_modifiable")
    intent = _replacement(old, price=price, trigger_price=trigger_price, size=size)
    cid = new_correlation_id()
    verdict = risk_inputs.order_preview(
        user=user, intent=intent, session_authenticated=session_authenticated, exclude_orders=[old.pk]
    )
    if not verdict.ok:
        refusal = Refusal(verdict.reason, verdict.message + " The original order is unchanged.")
        return Outcome(Result.REFUSED, refusal=refusal, verdict=verdict, order=old)
    if intent.closes_only:
        return _place_then_cancel(user=user, key=key, old=old, intent=intent, cid=cid, auth=session_authenticated)
    return _cancel_then_place(user=user, key=key, old=old, intent=intent, cid=cid, auth=session_authenticated)


def _place_then_cancel(*, user: User, key: str, old: Order, intent: risk.OrderIntent, cid: str, auth: bool) -> Outcome:
    placed = relay.order_submit(
        user=user,
        key=key,
        intent=intent,
        session_authenticated=auth,
        correlation_id=cid,
        replaces=old,
        exclude_orders=[old.pk],
        grouping="positionTpsl" if old.grouping == "positionTpsl" else "na",
    )
    state = placed.order.state if placed.order is not None else None
    if state not in (OrderState.RESTING, OrderState.FILLED, OrderState.PARTIALLY_FILLED):
        # Refused, or its outcome is unknown: the original protection stays in place.
        return placed.with_(original=old, note="the replacement is not confirmed; the original order is unchanged")
    note = None
    try:
        order_cancel(user=user, order_id=old.pk, correlation_id=cid, actor="modify")
    except ApplicationError as exc:
        logger.warning("modify: the replaced order could not be cancelled", extra={"order_id": old.pk})
        note = f"the replacement stands; cancelling the original failed ({exc.code}): both are reduce-only"
    old.refresh_from_db()
    return placed.with_(original=old, note=note)


def _cancel_then_place(*, user: User, key: str, old: Order, intent: risk.OrderIntent, cid: str, auth: bool) -> Outcome:
    order_cancel(user=user, order_id=old.pk, correlation_id=cid, actor="modify")
    old.refresh_from_db()
    if old.state != OrderState.CANCELLED or old.filled_size > 0 and old.filled_size >= old.size:
        raise Conflict("the order could not be cancelled (filled?)", code="modify_cancel_failed")
    placed = relay.order_submit(
        user=user, key=key, intent=intent, session_authenticated=auth, correlation_id=cid, replaces=old
    )
    return placed.with_(original=old)


def position_close(
    *,
    user: User,
    key: str,
    symbol: str,
    correlation_id: str | None = None,
    bypass_gates: bool = False,
    source: str = "manual",
) -> Outcome:
    """Close a position with a reduce-only market (IOC) order sized to the venue's position. Reduce-only: the kill
    switch and breakers let it through. Its protective orders are cancelled once the position is flat
    (execution.services.protection.protection_follow)."""
    acct = account_read(user=user, fresh=True, priority=vc.ORDER, quota=False)
    pos = acct.positions.get(symbol)
    if pos is None:
        raise ApplicationError("no open position for this symbol", code="no_position", status=422)
    szi = Decimal(str(pos["szi"]))
    intent = risk.OrderIntent(symbol=symbol, is_buy=szi < 0, order_type="market", size=abs(szi), reduce_only=True)
    return relay.order_submit(
        user=user, key=key, intent=intent, correlation_id=correlation_id, source=source, bypass_gates=bypass_gates
    )


def positions_close_all(*, users: list[User], symbol: str | None, run: str, source: str) -> list[dict[str, Any]]:
    """Reduce-only market closes for every position of `users` (optionally one symbol), from the venue's view."""
    results: list[dict[str, Any]] = []
    for user in users:
        acct = account_read(user=user, fresh=True, priority=vc.CANCEL, quota=False)
        for sym in acct.positions:
            if symbol is not None and sym.lower() != symbol.lower():
                continue
            closed = position_close(
                user=user, key=f"close-all-{run}-{user.pk}-{sym}", symbol=sym, bypass_gates=True, source=source
            )
            state = closed.order.state if closed.order is not None else None
            results.append({"user": user.address, "symbol": sym, "result": closed.result.value, "state": state})
    return results
