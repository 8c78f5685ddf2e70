"""Position protection: stop-loss / take-profit as venue trigger orders attached to a position (grouping
positionTpsl), trailing stops kept by a periodic job, and protection that follows the position.

* Prices are checked like any order (execution.risk): positive, on a valid tick, a take-profit beyond the price in
  the position's favour and a stop-loss against it — a stop on the wrong side would fill at once.
* A trailing stop follows the MARK price (what the venue triggers on and liquidates at), never a stale mid, and is
  moved by placing the new stop first and cancelling the old one after: the position is never without its stop.
* When a position is flat (closed from its row, stopped out, liquidated, closed at the venue) its TP/SL orders
  are cancelled and its trailing stop ends — a leftover reduce-only trigger would act on the NEXT position.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from django.db.models import Q

from accounts.models import User
from execution import risk
from execution.audit import audit_append
from execution.models import UNSETTLED_STATES, Order, OrderState, PositionProtection
from execution.outcomes import Outcome, Result
from execution.services import controls as ctl
from execution.services.account import account_read
from execution.services.cancels import order_cancel
from execution.services.orders import new_correlation_id
from execution.services.relay import order_submit
from kernel import clock
from kernel.contracts.snapshot import FRESHNESS_MS
from kernel.errors import ApplicationError
from kernel.venue import client as vc
from kernel.venue import meta
from kernel.venue.market_data import get_upstream
from kernel.venue.rounding import AssetSpec, round_price
from markets.hotstate import get_hot_state

logger = logging.getLogger(__name__)
TRIGGER_TYPES = ("tp", "sl")


def _position(user: User, symbol: str) -> Decimal:
    acct = account_read(user=user, fresh=True, priority=vc.ORDER, quota=False)
    pos = acct.positions.get(symbol)
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
) -> list[Outcome]:
    """TP and/or SL triggers for the whole position (positionTpsl), each checked and sent like any order."""
    cid = cid or new_correlation_id()
    if meta.asset_spec(symbol) is None:
        raise ApplicationError("symbol not on the venue", code=risk.SYMBOL_NOT_TRADABLE, status=422)
    szi = _position(user, symbol)
    results: list[Outcome] = []
    for kind, px in (("tp", tp_price), ("sl", sl_price)):
        if px is None:
            continue
        intent = risk.OrderIntent(
            symbol=symbol, is_buy=szi < 0, order_type=kind, size=abs(szi), trigger_price=px, reduce_only=True
        )
        placed = order_submit(
            user=user, key=f"{key}:{kind}", intent=intent, correlation_id=cid, source=source, grouping="positionTpsl"
        )
        results.append(placed)
    return results


def protection_set(
    *,
    user: User,
    key: str,
    symbol: str,
    tp_price: Decimal | None,
    sl_price: Decimal | None,
    trailing_pct: Decimal | None,
) -> Outcome:
    if tp_price is None and sl_price is None and trailing_pct is None:
        raise ApplicationError("give tp_price, sl_price or trailing_pct", code="invalid_input", status=400)
    cid = new_correlation_id()
    audit_append(
        event="protection.request",
        correlation_id=cid,
        user_id=user.pk,
        actor=ctl.actor_name(user),
        data={"symbol": symbol, "tp": tp_price, "sl": sl_price, "trailing_pct": trailing_pct},
    )
    results = tpsl_place(user=user, key=key, symbol=symbol, tp_price=tp_price, sl_price=sl_price, cid=cid)
    orders = tuple(r.order for r in results if r.order is not None)
    refused = [r for r in results if not r.placed]
    if refused:
        first = refused[0]
        return Outcome(first.result, orders=orders, refusal=first.refusal, correlation_id=cid)
    trailing = None
    if trailing_pct is not None:
        _position(user, symbol)  # a trailing stop needs a position (also when given alone)
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
        trailing = prot
    return Outcome(Result.DONE, orders=orders, correlation_id=cid, trailing=trailing)


# --- trailing stops -----------------------------------------------------------------------------------------------
def mark_price(symbol: str) -> Decimal | None:
    """The venue's mark price: the hot state's (fresh within the funding/context freshness rule), else the venue's
    metaAndAssetCtxs (weight 20, cached briefly in the market data layer)."""

    now_ms = clock.now_ms()
    try:
        snap = get_hot_state().get_sync(symbol)
    except Exception:  # noqa: BLE001 - an unreadable hot state: fall back to the venue
        snap = None
    if snap is not None and snap.mark_px and snap.funding_ts and now_ms - snap.funding_ts <= FRESHNESS_MS["funding"]:
        try:
            return Decimal(str(snap.mark_px))
        except ArithmeticError:
            pass
    return _venue_mark(symbol)


def _venue_mark(symbol: str) -> Decimal | None:

    try:
        result = get_upstream().info({"type": "metaAndAssetCtxs"}, ttl_sec=2.0)
        meta, ctxs = result.data[0], result.data[1]
    except (ApplicationError, IndexError, KeyError, TypeError):
        return None
    if not result.fresh:
        return None  # a stale mark must not move a stop
    for asset, ctx in zip(meta.get("universe", []), ctxs, strict=False):
        if asset.get("name") == symbol and ctx.get("markPx") is not None:
            return Decimal(str(ctx["markPx"]))
    return None


def trailing_stop_for(*, best: Decimal, long: bool, pct: Decimal, spec: AssetSpec) -> Decimal:
    """Pure: the stop `pct` % behind the best mark, rounded away from the price onto a valid tick."""
    raw = best * (1 - pct / 100) if long else best * (1 + pct / 100)
    return round_price(px=raw, spec=spec, mode="down" if long else "up")


def trailing_tick(*, protection: PositionProtection) -> None:
    """Move one trailing stop: track the best mark since activation; when the stop improves, place the new venue
    stop first, then cancel the old one."""
    user = protection.user
    spec = meta.asset_spec(protection.symbol)
    mark = mark_price(protection.symbol)
    if mark is None or spec is None:
        return
    try:
        szi = _position(user, protection.symbol)
    except ApplicationError:
        _protection_end(protection=protection, why="position closed")
        return
    long = szi > 0
    best = protection.best_price
    if best is None or (long and mark > best) or (not long and mark < best):
        best = mark
    stop = trailing_stop_for(best=best, long=long, pct=protection.trail_pct, spec=spec)
    improves = protection.stop_price is None or (stop > protection.stop_price if long else stop < protection.stop_price)
    PositionProtection.objects.filter(pk=protection.pk).update(best_price=best)
    if not improves:
        return
    old = protection.stop_order
    results = tpsl_place(
        user=user,
        key=f"trail-{protection.pk}-{stop}",
        symbol=protection.symbol,
        tp_price=None,
        sl_price=stop,
        source="trailing",
    )
    placed = results[0].order if results else None
    new_id = placed.pk if placed is not None else None
    new_state = placed.state if placed is not None else None
    if new_state not in (OrderState.RESTING, OrderState.FILLED):
        logger.warning("trailing stop not moved: the new stop was not accepted", extra={"protection_id": protection.pk})
        return
    PositionProtection.objects.filter(pk=protection.pk).update(stop_price=stop, stop_order_id=new_id)
    if old is not None and old.pk != new_id and old.state in UNSETTLED_STATES:
        order_cancel(user=user, order_id=old.pk, actor="trailing")


def trailing_run() -> int:
    moved = 0
    for prot in PositionProtection.objects.filter(active=True).select_related("user", "stop_order"):
        try:
            trailing_tick(protection=prot)
            moved += 1
        except (vc.VenueError, vc.VenueTimeout, ApplicationError):
            logger.warning("trailing stop update failed", extra={"protection_id": prot.pk}, exc_info=True)
    return moved


# --- protection follows the position --------------------------------------------------------------------------
def _protects(order: Order, positions: dict[str, dict[str, Any]]) -> bool:
    """Does this reduce-only trigger still protect an open position (a sell protects a long, a buy a short)?"""
    pos = positions.get(order.symbol)
    if pos is None:
        return False
    size = Decimal(str(pos.get("szi", "0")))
    return (size > 0 and order.side == "sell") or (size < 0 and order.side == "buy")


def protection_follow_on_sync(
    sender: object, *, user: User, positions: dict[str, dict[str, Any]], correlation_id: str, **_: Any
) -> None:
    """Receiver of execution.signals.positions_synced."""
    protection_follow(user=user, positions=positions, correlation_id=correlation_id)


def protection_follow(*, user: User, positions: dict[str, dict[str, Any]], correlation_id: str | None = None) -> int:
    """Cancel TP/SL orders (and end trailing stops) of positions that are flat or flipped. Children of an entry
    order that has not filled yet are left alone: the venue arms them when their parent fills."""
    cid = correlation_id or new_correlation_id()
    parent_live = Q(parent__isnull=False, parent__state__in=UNSETTLED_STATES)
    stale = [
        o
        for o in Order.objects.filter(user=user, order_type__in=TRIGGER_TYPES, state__in=UNSETTLED_STATES)
        .exclude(parent_live)
        .select_related("user")
        if not _protects(o, positions)
    ]
    for order in stale:
        try:
            order_cancel(user=user, order_id=order.pk, correlation_id=cid, actor="protection")
            audit_append(
                event="protection.cancelled",
                correlation_id=cid,
                user_id=user.pk,
                actor="protection",
                data={"order_id": order.pk, "symbol": order.symbol, "why": "position flat or flipped"},
            )
        except ApplicationError:
            logger.warning("leftover protection not cancelled yet", extra={"order_id": order.pk}, exc_info=True)
    for prot in PositionProtection.objects.filter(user=user, active=True).exclude(symbol__in=list(positions)):
        _protection_end(protection=prot, why="position closed", cid=cid)
    return len(stale)


def _protection_end(*, protection: PositionProtection, why: str, cid: str | None = None) -> None:
    if PositionProtection.objects.filter(pk=protection.pk, active=True).update(active=False):
        audit_append(
            event="protection.ended",
            correlation_id=cid or new_correlation_id(),
            user_id=protection.user_id,
            actor="protection",
            data={"protection_id": protection.pk, "symbol": protection.symbol, "why": why},
        )
