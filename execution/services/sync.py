"""Venue → local state: order statuses, fills, positions, and the reconciliation that compares them.

The venue is the source of truth. Every discrepancy is fixed here and audited ("reconcile.fix"), and counted in
hs_execution_reconcile_discrepancies_total. `unknown` orders are resolved by cloid (orderStatus under the master
address); they are never re-sent.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import AgentStatus, AgentWallet, User
from execution import metrics, pnl
from execution.answers import http_answer
from execution.audit import audit_append
from execution.models import (
    UNSETTLED_STATES,
    Fill,
    IdempotencyRecord,
    IdempotencyStatus,
    Order,
    OrderState,
    PositionSnapshot,
)
from execution.outcomes import order_outcome
from execution.selectors import closing_trades, daily_pnl
from execution.services import breakers
from execution.services import controls as ctl
from execution.services.account import AccountState, account_read, positions_from_state
from execution.services.events import publish_private
from execution.services.orders import (
    new_correlation_id,
    order_dict,
    order_transition,
    orders_abandon_unsent,
    orders_reached_venue,
)
from execution.signals import positions_synced
from kernel import clock
from kernel.cache_safe import cache_call
from kernel.components import instance_alive
from kernel.venue import client as vc

logger = logging.getLogger(__name__)
ZERO = Decimal(0)

CANCELLED_STATUSES = {"canceled", "scheduledCancel"}


def map_venue_status(status: str, *, sz: Decimal | None, orig_sz: Decimal | None) -> str:
    """Venue order status → our state."""
    if status == "open" or status == "triggered":
        if sz is not None and orig_sz is not None and sz < orig_sz:
            return OrderState.PARTIALLY_FILLED
        return OrderState.RESTING
    if status == "filled":
        return OrderState.FILLED
    if status in CANCELLED_STATUSES or status.endswith("Canceled"):
        return OrderState.CANCELLED
    if status == "rejected" or status.endswith("Rejected"):
        return OrderState.REJECTED
    return OrderState.UNKNOWN


def _fix(*, user: User, kind: str, cid: str, data: dict[str, Any]) -> None:
    metrics.RECONCILE_DISCREPANCIES.labels(kind=kind).inc()
    audit_append(
        event="reconcile.fix", correlation_id=cid, user_id=user.pk, actor="reconciler", data={"kind": kind, **data}
    )
    publish_private(
        user_id=user.pk,
        event_type="execution_event",
        data={"event": "reconcile.fix", "kind": kind, "correlation_id": cid, **data},
    )


def order_apply_venue(
    *, order: Order, status: str, venue_order: dict[str, Any], cid: str, reason: str = "", discrepancy: bool = True
) -> bool:
    """Bring one local order to the venue's state; True when something changed."""
    sz = Decimal(str(venue_order["sz"])) if venue_order.get("sz") is not None else None
    orig = Decimal(str(venue_order["origSz"])) if venue_order.get("origSz") is not None else None
    state = map_venue_status(status, sz=sz, orig_sz=orig)
    oid = venue_order.get("oid")
    changes: dict[str, Any] = {}
    if oid is not None and order.venue_oid != int(oid):
        changes["venue_oid"] = int(oid)
    if orig is not None and sz is not None and orig - sz != order.filled_size and orig - sz >= 0:
        changes["filled_size"] = orig - sz
    if state == OrderState.FILLED and order.filled_size < order.size and "filled_size" not in changes:
        changes["filled_size"] = order.size
    if state == OrderState.UNKNOWN:
        return False  # a status we cannot map teaches us nothing
    if state != order.state or changes:
        before = order.state
        if state == OrderState.REJECTED and not order.reject_reason:
            changes["reject_reason"] = status
        if not order_transition(order, state, venue_correction=True, venue_status=status, **changes):
            return False
        data = {"order_id": order.pk, "cloid": order.cloid, "from": before, "to": state, "venue_status": status}
        if discrepancy:
            _fix(user=order.user, kind=reason or "order_state", cid=cid, data=data)
        else:
            audit_append(
                event="order.venue_update", correlation_id=cid, user_id=order.user_id, actor="userfeed", data=data
            )
        return True
    return False


def order_resolve(*, order: Order, correlation_id: str | None = None, priority: str = vc.ACCOUNT) -> str:
    """Ask the venue for one order by cloid (master address) and apply it. `unknownOid` for an order we may have
    sent means the venue never took it: it becomes rejected (and is still never re-sent)."""
    cid = correlation_id or order.correlation_id
    reply = vc.info({"type": "orderStatus", "user": order.user.address, "oid": order.cloid}, priority=priority)
    if isinstance(reply, dict) and reply.get("status") == "order":
        wrapper = reply.get("order") or {}
        order_apply_venue(
            order=order,
            status=str(wrapper.get("status")),
            venue_order=wrapper.get("order") or {},
            cid=cid,
            reason="unknown_resolved" if order.state == OrderState.UNKNOWN else "order_state",
        )
    elif isinstance(reply, dict) and reply.get("status") == "unknownOid":
        if order.state in (OrderState.UNKNOWN, OrderState.SUBMITTED, OrderState.PENDING):
            age = timezone.now() - (order.submitted_at or order.created_at)
            if age > timedelta(seconds=5):  # give an in-flight request time to land before declaring it lost
                before = order.state
                if not order_transition(
                    order, OrderState.REJECTED, reject_reason="never reached the venue", venue_status="unknownOid"
                ):
                    return order.state
                _fix(
                    user=order.user,
                    kind="unknown_resolved",
                    cid=cid,
                    data={"order_id": order.pk, "from": before, "to": OrderState.REJECTED},
                )
        elif order.state in (OrderState.RESTING, OrderState.PARTIALLY_FILLED):
            before = order.state
            if order_transition(order, OrderState.CANCELLED, venue_status="unknownOid"):
                _fix(user=order.user, kind="order_state", cid=cid, data={"order_id": order.pk, "from": before})
    order.refresh_from_db()
    return order.state


def orders_sync(*, user: User, correlation_id: str | None = None, priority: str = vc.ACCOUNT) -> int:
    """Venue open orders vs ours: adopt untracked venue orders, settle ours that the venue no longer shows."""
    cid = correlation_id or new_correlation_id()
    fixes = 0
    venue_open = vc.info({"type": "frontendOpenOrders", "user": user.address, "dex": ""}, priority=priority) or []
    seen: set[int] = set()
    for vo in venue_open:
        oid = int(vo["oid"])
        seen.add(oid)
        cloid = (vo.get("cloid") or "").lower() or None
        order = Order.objects.filter(user=user).filter(venue_oid=oid).first()
        if order is None and cloid:
            order = Order.objects.filter(user=user, cloid=cloid).first()
        if order is None:
            order = _adopt(user=user, vo=vo, cid=cid)
            fixes += 1
            continue
        fixes += int(order_apply_venue(order=order, status="open", venue_order=vo, cid=cid))
    for order in Order.objects.filter(user=user, state__in=UNSETTLED_STATES).select_related("user"):
        if order.venue_oid is not None and order.venue_oid in seen:
            continue
        before = order.state
        if order_resolve(order=order, correlation_id=cid, priority=priority) != before:
            fixes += 1
    return fixes


def _adopt(*, user: User, vo: dict[str, Any], cid: str) -> Order:
    """An order open on the venue that we never recorded (placed elsewhere, or our record was lost)."""
    cloid = (vo.get("cloid") or "").lower() or f"0x{int(vo['oid']):032x}"
    trigger = vo.get("isTrigger")
    otype = "limit"
    if trigger:
        otype = "tp" if "Take Profit" in str(vo.get("orderType", "")) else "sl"
    try:
        with transaction.atomic():  # a savepoint: a concurrent adoption's duplicate leaves the caller's work intact
            order = Order.objects.create(
                user=user,
                cloid=cloid,
                correlation_id=cid,
                symbol=str(vo["coin"]),
                side="buy" if vo.get("side") == "B" else "sell",
                order_type=otype,
                size=Decimal(str(vo.get("origSz") or vo["sz"])),
                price=Decimal(str(vo["limitPx"])),
                trigger_price=Decimal(str(vo["triggerPx"])) if trigger and vo.get("triggerPx") else None,
                tif=str(vo.get("tif") or "Gtc"),
                reduce_only=bool(vo.get("reduceOnly")),
                source="venue",
                state=OrderState.RESTING,
                venue_oid=int(vo["oid"]),
                venue_status="open",
            )
    except IntegrityError:
        return Order.objects.get(cloid=cloid)  # adopted a moment ago by the feed or a concurrent round
    _fix(user=user, kind="untracked_order", cid=cid, data={"order_id": order.pk, "oid": vo["oid"]})
    publish_private(user_id=user.pk, event_type="order_update", data=order_dict(order), symbol=order.symbol)
    return order


def order_adopt_from_feed(*, user: User, venue_order: dict[str, Any]) -> Order | None:
    """An `open` order update from the user feed that matches none of ours: adopt it (as reconciliation would).
    A malformed venue payload is logged and left to reconciliation, which reads the full open-orders list."""
    try:
        return _adopt(user=user, vo=venue_order, cid=new_correlation_id())
    except (KeyError, TypeError, ValueError, ArithmeticError):
        logger.warning("unadoptable order update from the user feed", extra={"user_id": user.pk}, exc_info=True)
        return None


def fill_dict(fill: Fill) -> dict[str, Any]:
    return {
        "id": fill.pk,
        "symbol": fill.symbol,
        "side": fill.side,
        "price": fill.price,
        "size": fill.size,
        "fee": fill.fee,
        "closed_pnl": fill.closed_pnl,
        # What the fills table shows and the loss breakers count: closed PnL net of this fill's fee (closing only).
        "net_pnl": fill_net_pnl(fill),
        "direction": fill.direction,
        "oid": fill.venue_oid,
        "tid": fill.tid,
        "order_id": fill.order_id,
        "time_ms": int(fill.time.timestamp() * 1000),
        "crossed": fill.crossed,
    }


def fill_net_pnl(fill: Fill) -> Decimal | None:
    return pnl.fill_net_pnl(closed_pnl=fill.closed_pnl, fee=fill.fee, direction=fill.direction)


def fill_record(*, user: User, raw: dict[str, Any], cid: str, source: str) -> Fill | None:
    """Insert one venue fill (dedup on (user, tid, oid)); publish it to this user only. None if known."""
    tid, oid = int(raw["tid"]), int(raw["oid"]) if raw.get("oid") is not None else None
    if Fill.objects.filter(user=user, tid=tid, venue_oid=oid).exists():
        return None
    order = Order.objects.filter(user=user, venue_oid=oid).first() if oid is not None else None
    try:
        with transaction.atomic():
            fill = Fill.objects.create(
                user=user,
                order=order,
                symbol=str(raw["coin"]),
                side="buy" if raw.get("side") == "B" else "sell",
                price=Decimal(str(raw["px"])),
                size=Decimal(str(raw["sz"])),
                fee=Decimal(str(raw.get("fee", "0"))),
                closed_pnl=Decimal(str(raw.get("closedPnl", "0"))),
                start_position=Decimal(str(raw.get("startPosition", "0"))),
                direction=str(raw.get("dir", "")),
                venue_oid=oid,
                tid=tid,
                tx_hash=str(raw.get("hash", ""))[:80],
                crossed=bool(raw.get("crossed")),
                time=datetime.fromtimestamp(int(raw["time"]) / 1000, tz=UTC),
            )
    except IntegrityError:
        return None
    audit_append(
        event="fill",
        correlation_id=order.correlation_id if order else cid,
        user_id=user.pk,
        actor=source,
        data={"fill": raw, "order_id": order.pk if order else None},
    )
    publish_private(user_id=user.pk, event_type="fill_update", data=fill_dict(fill), symbol=fill.symbol)
    return fill


def fills_sync(
    *, user: User, correlation_id: str | None = None, source: str = "reconciler", priority: str = vc.ACCOUNT
) -> list[Fill]:
    """The venue's fills since `fills_since_ms` (master address); insert what we miss; evaluate the PnL breakers."""
    cid = correlation_id or new_correlation_id()
    body = {"type": "userFillsByTime", "user": user.address, "startTime": fills_since_ms(user=user)}
    raw = vc.info(body, priority=priority) or []
    raw = sorted(raw if isinstance(raw, list) else [], key=lambda r: int(r.get("time", 0)))
    new = [f for f in (fill_record(user=user, raw=r, cid=cid, source=source) for r in raw) if f]
    if new and source == "reconciler":
        for f in new:
            _fix(user=user, kind="missing_fill", cid=cid, data={"tid": f.tid, "oid": f.venue_oid})
    if new:
        pnl_breakers_check(user=user)
    return new


FILLS_OVERLAP_MS = 10 * 60 * 1000
FILLS_FIRST_LOOKBACK_MS = 24 * 3600 * 1000


def fills_since_ms(*, user: User) -> int:
    """Where a fills sync starts: shortly before the newest fill we hold (late fills and clock skew), or a day
    back for a user with none — a time-ranged read costs 20 weight instead of userFills' up to 120."""
    newest = Fill.objects.filter(user=user).order_by("-time").values_list("time", flat=True).first()
    now_ms = clock.now_ms()
    if newest is None:
        return now_ms - FILLS_FIRST_LOOKBACK_MS
    return int(newest.timestamp() * 1000) - FILLS_OVERLAP_MS


def pnl_breakers_check(*, user: User) -> None:
    """Consecutive losing trades and the daily loss, both net of fees — the figures the fills table shows."""
    row = ctl.limits_row_for(user=user)
    breakers.pnl_breakers_evaluate(
        user=user,
        trades=closing_trades(user=user),
        daily_pnl=daily_pnl(user=user),
        streak_limit=row.consecutive_losses,
        daily_limit=row.max_daily_loss_usd,
    )


def _d(v: Any) -> Decimal | None:
    return None if v is None else Decimal(str(v))


def _snapshot_fields(pos: dict[str, Any]) -> dict[str, Any]:
    lev = pos.get("leverage") or {}
    return {
        "size": Decimal(str(pos["szi"])),
        "entry_price": _d(pos.get("entryPx")),
        "position_value": _d(pos.get("positionValue")) or ZERO,
        "unrealized_pnl": _d(pos.get("unrealizedPnl")) or ZERO,
        "liquidation_price": _d(pos.get("liquidationPx")),
        "margin_used": _d(pos.get("marginUsed")) or ZERO,
        "leverage": lev.get("value"),
        "leverage_type": lev.get("type", ""),
        "updated_at": timezone.now(),
    }


def positions_sync(
    *, user: User, correlation_id: str | None = None, quiet: bool = False, priority: str = vc.ACCOUNT
) -> dict[str, Any]:
    """clearinghouseState → PositionSnapshot rows (venue wins); protection follows the positions (the
    `positions_synced` signal); publish account_update. Concurrent syncs of one user are safe (upsert per
    (user, symbol))."""
    cid = correlation_id or new_correlation_id()
    acct = account_read(user=user, fresh=True, priority=priority, quota=False)
    if acct.stale:
        raise vc.VenueError(f"the venue account could not be read ({acct.reason})", kind=acct.reason or "error")
    venue_positions = acct.positions
    local = {p.symbol: p for p in PositionSnapshot.objects.filter(user=user)}
    for symbol, pos in venue_positions.items():
        fields = _snapshot_fields(pos)
        row = local.pop(symbol, None)
        if row is not None and row.size != fields["size"] and not quiet:
            _fix(
                user=user,
                kind="position_mismatch",
                cid=cid,
                data={"symbol": symbol, "ours": row.size, "venue": fields["size"]},
            )
        _, created = PositionSnapshot.objects.update_or_create(user=user, symbol=symbol, defaults=fields)
        if created and row is None and not quiet:
            _fix(user=user, kind="position_missing", cid=cid, data={"symbol": symbol, "size": fields["size"]})
    for symbol, row in local.items():
        PositionSnapshot.objects.filter(pk=row.pk).delete()
        if not quiet:
            _fix(user=user, kind="position_gone", cid=cid, data={"symbol": symbol, "ours": row.size})
    positions_synced.send(sender=None, user=user, positions=venue_positions, correlation_id=cid)
    summary = account_summary(acct=acct)
    publish_private(user_id=user.pk, event_type="account_update", data=summary)
    return summary


def account_summary(*, acct: AccountState) -> dict[str, Any]:
    state = acct.state
    ms = state.get("marginSummary") or {}
    positions = []
    upnl = ZERO
    for symbol, pos in positions_from_state(state).items():
        u = Decimal(str(pos.get("unrealizedPnl", "0")))
        upnl += u
        positions.append(
            {
                "symbol": symbol,
                "size": pos.get("szi"),
                "entry_price": pos.get("entryPx"),
                "position_value": pos.get("positionValue"),
                "unrealized_pnl": pos.get("unrealizedPnl"),
                "liquidation_price": pos.get("liquidationPx"),
                "margin_used": pos.get("marginUsed"),
                "leverage": (pos.get("leverage") or {}).get("value"),
                "return_on_equity": pos.get("returnOnEquity"),
            }
        )
    return {
        "equity": ms.get("accountValue"),
        "margin_used": ms.get("totalMarginUsed"),
        "total_notional": ms.get("totalNtlPos"),
        "withdrawable": state.get("withdrawable"),
        "unrealized_pnl": str(upnl),
        "positions": positions,
        "time_ms": state.get("time"),
        **acct.as_meta(),
    }


def account_sync(*, user: User, correlation_id: str | None = None) -> None:
    """After fills: fills, then positions (quietly: a fill we just saw is not a discrepancy). While the venue's user
    feed streams this user its fills arrive from there within moments, so the REST fills read (20+ weight of the
    shared IP budget per fill) is skipped; positions (2 weight) are always refreshed."""
    if not user_feed_streaming(user_id=user.pk):
        fills_sync(user=user, correlation_id=correlation_id, source="relay", priority=vc.ORDER)
    positions_sync(user=user, correlation_id=correlation_id, quiet=True, priority=vc.ORDER)


FEED_MARK_TTL_SEC = 10


def user_feed_mark(*, user_id: int) -> None:
    """The user feed's connection for this user is up (called by the feed at least every few seconds)."""
    cache_call(lambda: cache.set(f"exec:feed:{user_id}", time.time(), FEED_MARK_TTL_SEC), fallback=None, what="feed")


def user_feed_streaming(*, user_id: int) -> bool:
    return cache_call(lambda: cache.get(f"exec:feed:{user_id}"), fallback=None, what="feed") is not None


def feed_catch_up(*, user: User) -> int:
    """On each (re)connect of the user feed: the venue pushes no open-order snapshot, so whatever happened while the
    feed was down (an order placed or cancelled outside, a fill's position) is read once by REST — open orders and
    positions at account priority; the fills come with the feed's own userFills snapshot. Returns the fixes."""
    cid = new_correlation_id()
    fixes = orders_sync(user=user, correlation_id=cid, priority=vc.ACCOUNT)
    positions_sync(user=user, correlation_id=cid, priority=vc.ACCOUNT)
    return fixes


def reconcile_user(*, user: User, priority: str = vc.BACKGROUND) -> int:
    cid = new_correlation_id()
    fixes = orders_sync(user=user, correlation_id=cid, priority=priority)
    fixes += len(fills_sync(user=user, correlation_id=cid, priority=priority))
    positions_sync(user=user, correlation_id=cid, priority=priority)
    return fixes


# Approximate /info weight of one user's reconciliation: frontendOpenOrders 20 + userFills >= 20 +
# clearinghouseState 2 (+ 2 per unsettled order resolved by cloid).
RECONCILE_WEIGHT = 45


def users_to_reconcile(*, now: float | None = None) -> list[User]:
    """Users due a full comparison with the venue: those with unsettled orders first (an `unknown` order matters
    most), then the least recently reconciled. A user the user feed streams — every push applied as it happens, open
    orders re-read on each (re)connect — is due only every EXECUTION_RECONCILE_STREAMED_SEC; the others every round."""
    now = time.time() if now is None else now
    with_agents = set(AgentWallet.objects.filter(status=AgentStatus.APPROVED).values_list("user_id", flat=True))
    with_orders = set(Order.objects.filter(state__in=UNSETTLED_STATES).values_list("user_id", flat=True))
    users = list(User.objects.filter(pk__in=with_agents | with_orders))
    empty: dict[str, Any] = {}
    keys = [f"exec:reconciled:{u.pk}" for u in users] + [f"exec:feed:{u.pk}" for u in users]
    seen: dict[str, Any] = cache_call(lambda: cache.get_many(keys), fallback=empty, what="reconcile")
    streamed_every = float(settings.EXECUTION_RECONCILE_STREAMED_SEC)

    def due(u: User) -> bool:
        if u.pk in with_orders or f"exec:feed:{u.pk}" not in seen:
            return True
        return now - float(seen.get(f"exec:reconciled:{u.pk}", 0.0)) >= streamed_every

    return sorted(
        (u for u in users if due(u)),
        key=lambda u: (u.pk not in with_orders, float(seen.get(f"exec:reconciled:{u.pk}", 0.0))),
    )


def reconcile_budget_take(weight: int) -> bool:
    """Share of the venue's per-IP REST budget (1200 weight/min) reconciliation may use, across processes."""
    key = f"exec:reconcile-budget:{int(time.time() // 60)}"
    return vc.counter_add(key, weight, 120) <= settings.EXECUTION_RECONCILE_WEIGHT_PER_MIN


def reconcile_budget_refund(weight: int) -> None:
    """A round refused before anything was sent (the shared IP budget, a backoff) gives its share back."""
    key = f"exec:reconcile-budget:{int(time.time() // 60)}"
    cache_call(lambda: vc.counter_add(key, -weight, 120), fallback=0, what="reconcile")


def idempotency_finalize_stale(*, now: datetime | None = None) -> int:
    """Records stuck `in_flight` whose process died (or that ran past every bound) are finalised with the TRUE
    outcome: the key's orders are first resolved by cloid at the venue, then the answer is stored as the request
    would have answered (201 / 202 / 422) — never a 5xx. A key whose order was never sent is released, so the
    client may retry it. Bounds: EXECUTION_INFLIGHT_STALE_SEC when the owner is gone, twice that otherwise."""
    now = now or timezone.now()
    bound = timedelta(seconds=settings.EXECUTION_INFLIGHT_STALE_SEC)
    done = 0
    for rec in IdempotencyRecord.objects.filter(status=IdempotencyStatus.IN_FLIGHT, created_at__lt=now - bound):
        if now - rec.created_at < 2 * bound and owner_alive(rec.owner):
            continue  # a slow request of a live process: it will store its own answer
        done += _finalize(rec)
    return done


def owner_alive(owner: str) -> bool:
    """Does the process that claimed a request still run? (its heartbeat, any component; unknown counts as alive)."""

    alive = instance_alive(owner) if owner else None
    return alive is not False


def _finalize(rec: IdempotencyRecord) -> int:
    user = rec.user
    sent = orders_reached_venue(user=user, key=rec.key)
    if not sent:
        orders_abandon_unsent(user=user, key=rec.key, reason="interrupted before sending")
        return IdempotencyRecord.objects.filter(pk=rec.pk, status=IdempotencyStatus.IN_FLIGHT).delete()[0]
    for order in sent:
        if order.state in (OrderState.SUBMITTED, OrderState.UNKNOWN, OrderState.PENDING):
            try:
                order_resolve(order=order)
            except (vc.VenueError, vc.VenueTimeout):
                logger.info("in-flight order not resolved yet", extra={"order_id": order.pk}, exc_info=True)
    outcome = order_outcome(sent[0]).with_(note="the request was interrupted; this is the order's outcome at the venue")
    status, body = http_answer(outcome)
    return IdempotencyRecord.objects.filter(pk=rec.pk, status=IdempotencyStatus.IN_FLIGHT).update(
        status=IdempotencyStatus.DONE, response_status=status, response_body=body, completed_at=timezone.now()
    )


def unknown_resolve_soon(*, order_ids: list[int], delay: float | None = None, attempts: int = 3) -> None:
    """On demand after a relay timeout: ask the venue by cloid shortly after, a few times, in a background thread
    of this process (any topology); what is still unknown after that is the periodic reconciliation's."""
    wait = settings.EXECUTION_UNKNOWN_RESOLVE_DELAY_SEC if delay is None else delay

    def run(left: int) -> None:
        try:
            pending = [
                o
                for o in Order.objects.filter(pk__in=order_ids).select_related("user")
                if o.state in (OrderState.UNKNOWN, OrderState.SUBMITTED)
            ]
            for order in pending:
                order_resolve(order=order, priority=vc.ORDER)
            still = Order.objects.filter(pk__in=order_ids, state__in=(OrderState.UNKNOWN, OrderState.SUBMITTED))
            if still.exists() and left > 1:
                _later(wait * 2, lambda: run(left - 1))
        except Exception:
            logger.warning("on-demand resolve of unknown orders failed", extra={"orders": order_ids}, exc_info=True)
        finally:
            connection.close()

    _later(wait, lambda: run(attempts))


def _later(delay: float, fn: Callable[[], None]) -> None:
    timer = threading.Timer(delay, fn)
    timer.daemon = True
    timer.start()


def _reconciled_stamp(user_id: int) -> None:
    cache_call(lambda: cache.set(f"exec:reconciled:{user_id}", time.time(), 86400), fallback=None, what="reconcile")


def unsettled_resolve(*, limit: int = 50) -> int:
    """First thing each round: orders whose outcome we do not know (sent but unanswered, or stored and never sent by
    a process that died) are asked by cloid — 2 weight each at account priority, so they settle even when the full
    per-user comparison (45 weight) has to wait for budget."""
    now = timezone.now()
    sent_before = now - timedelta(seconds=5)
    stored_before = now - timedelta(seconds=settings.EXECUTION_INFLIGHT_STALE_SEC)
    pending = (
        Order.objects.filter(
            Q(state__in=(OrderState.SUBMITTED, OrderState.UNKNOWN), submitted_at__lt=sent_before)
            | Q(state=OrderState.PENDING, created_at__lt=stored_before)
        )
        .select_related("user")
        .order_by("created_at")[:limit]
    )
    changed = 0
    for order in pending:
        before = order.state
        try:
            if order_resolve(order=order, priority=vc.ACCOUNT) != before:
                changed += 1
        except (vc.VenueError, vc.VenueTimeout):
            logger.info("unsettled order not resolved yet", extra={"order_id": order.pk}, exc_info=True)
    return changed


def reconcile_all() -> dict[str, int]:
    """Every user with an agent or unsettled orders, within the reconciliation REST budget
    (EXECUTION_RECONCILE_WEIGHT_PER_MIN); failures per user are logged and the round goes on."""
    resolved = unsettled_resolve()
    users = users_to_reconcile()
    fixes = failed = skipped = 0
    for user in users:
        if not reconcile_budget_take(RECONCILE_WEIGHT):
            skipped += 1  # next round; the least recently reconciled go first
            continue
        try:
            fixes += reconcile_user(user=user)
            _reconciled_stamp(user.pk)
        except vc.VenueError as exc:
            failed += 1
            if exc.not_sent:  # our budget or a backoff: nothing reached the venue; the user stays first in line
                reconcile_budget_refund(RECONCILE_WEIGHT)
                logger.info("reconcile deferred for user", extra={"user_id": user.pk, "reason": str(exc)})
            else:
                logger.warning("reconcile failed for user", extra={"user_id": user.pk}, exc_info=True)
        except vc.VenueTimeout:
            failed += 1
            logger.warning("reconcile failed for user", extra={"user_id": user.pk}, exc_info=True)
    finalized = idempotency_finalize_stale()
    return {
        "users": len(users),
        "unsettled_resolved": resolved,
        "fixes": fixes,
        "failed": failed,
        "skipped_for_budget": skipped,
        "idempotency_finalized": finalized,
        "reconcile_interval_s": int(settings.EXECUTION_RECONCILE_SEC),
    }
