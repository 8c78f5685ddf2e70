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
from collections.abc import Callable, Iterable
from dataclasses import asdict, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import User
from accounts.selectors import agent_current
from accounts.services import agent_signing_wallet
from execution import metrics, risk, selectors, venue
from execution.audit import audit_append
from execution.models import UNSETTLED_STATES, Order, OrderState, PositionSnapshot
from execution.outcomes import VENUE_RATE_LIMITED, Outcome, Refusal, Result, order_outcome
from execution.rounding import AssetSpec, round_price, to_wire
from execution.services import breakers
from execution.services import controls as ctl
from execution.services.account import AccountState, AccountUnavailable, account_read
from execution.services.equity_peaks import drawdown_pct, peak_get
from execution.services.events import publish_private
from execution.services.locks import user_serialized
from execution.services.orders import (
    cloid_for,
    cloid_reusable,
    new_correlation_id,
    order_dict,
    order_transition,
)
from execution.services.sync import account_sync, unknown_resolve_soon
from kernel import clock
from kernel import venue_client as vc
from kernel.errors import ApplicationError, Conflict
from markets.hotstate import get_hot_state

logger = logging.getLogger(__name__)
ZERO = Decimal(0)
# reject_reason of an order the venue refused for rate (429), or that was not sent during the backoff after one.
# Risk checks use an account state at most this old (and always of the current epoch: no fill since).
RISK_ACCOUNT_MAX_AGE_SEC = 2.0


class RiskRejected(ApplicationError):
    code = "risk_rejected"
    status = 422


def best_effort(what: str, fn: Callable[[], Any], **ids: Any) -> Any:
    """Bookkeeping after the venue accepted an order: a failure is logged (reconciliation repairs it) and never
    turns the accepted order into an error."""
    try:
        return fn()
    except Exception:  # the boundary of best-effort bookkeeping; logged with ids
        logger.warning(f"{what} failed; reconciliation will repair it", extra=ids, exc_info=True)
        return None


# --- context ----------------------------------------------------------------------------------------------
def hot_book(symbol: str) -> risk.Book | None:

    try:
        snap = get_hot_state().get_sync(symbol)
    except Exception:  # a broken hot state means "no book": the check refuses, never crashes
        logger.warning("hot state read failed", extra={"symbol": symbol}, exc_info=True)
        return None
    if snap is None:
        return None
    bids, asks = snap.book.get("bids") or [], snap.book.get("asks") or []
    try:
        bid = Decimal(str(bids[0][0])) if bids else None
        ask = Decimal(str(asks[0][0])) if asks else None
    except (ArithmeticError, IndexError, TypeError):
        return None
    return risk.Book(best_bid=bid, best_ask=ask, ts_ms=snap.book_ts)


def market_feed_down() -> bool:
    """The market feed as a whole (ingest status) is down or silent for BREAKER_STALE_DATA_SEC."""

    try:
        status = get_hot_state().get_status_sync()
    except Exception:  # noqa: BLE001 - an unreadable status counts as down
        return True
    if not status or not status.get("running"):
        return True
    age_ms = clock.now_ms() - int(status.get("updated_at_ms") or 0)
    return age_ms > settings.BREAKER_STALE_DATA_SEC * 1000


def _venue_book(symbol: str) -> risk.Book | None:
    """The venue's own l2Book (weight 2): for emergency closes when the hot state is stale."""
    try:
        raw = venue.info({"type": "l2Book", "coin": symbol}, priority=vc.ORDER)
        bids, asks = raw["levels"][0], raw["levels"][1]
        return risk.Book(
            best_bid=Decimal(str(bids[0]["px"])) if bids else None,
            best_ask=Decimal(str(asks[0]["px"])) if asks else None,
            ts_ms=clock.now_ms(),
        )
    except (vc.VenueError, vc.VenueTimeout, KeyError, IndexError, TypeError, ArithmeticError):
        return None


def live_orders(*, user: User, exclude: Iterable[int] = ()) -> list[risk.LiveOrder]:
    """Every order of the user that may still fill and add risk (reduce-only orders and triggers cannot)."""
    rows = (
        Order.objects.filter(user=user, state__in=UNSETTLED_STATES, reduce_only=False)
        .exclude(order_type__in=("tp", "sl"))
        .exclude(pk__in=list(exclude))
        .values_list("symbol", "side", "size", "filled_size", "price")
    )
    return [
        risk.LiveOrder(symbol=sym, is_buy=side == "buy", remaining=max(ZERO, size - filled), price=price)
        for sym, side, size, filled, price in rows
    ]


def _account_for_risk(user: User) -> tuple[dict[str, dict[str, Any]], float, bool, Decimal | None]:
    """(positions, as-of time, stale, equity) for a risk check; falls back to the last reconciled snapshots."""
    try:
        acct: AccountState = account_read(user=user, max_age=RISK_ACCOUNT_MAX_AGE_SEC, priority=vc.ORDER, quota=False)
        return acct.positions, acct.fetched_at, acct.stale, acct.equity
    except AccountUnavailable:
        snaps = list(PositionSnapshot.objects.filter(user=user))
        positions = {
            s.symbol: {"coin": s.symbol, "szi": str(s.size), "positionValue": str(abs(s.position_value))} for s in snaps
        }
        as_of = max((s.updated_at.timestamp() for s in snaps), default=0.0)
        return positions, as_of, True, None


def _unseen_fills(*, user: User, since: float) -> dict[str, tuple[Decimal, Decimal]]:
    """(signed size, notional) filled on orders updated after a stale account state was taken (it cannot include
    them), per symbol."""
    out: dict[str, tuple[Decimal, Decimal]] = {}
    cutoff = datetime.fromtimestamp(since, tz=UTC)
    rows = Order.objects.filter(user=user, updated_at__gte=cutoff, filled_size__gt=0).values_list(
        "symbol", "side", "filled_size", "avg_fill_price", "price"
    )
    for sym, side, filled, avg, limit in rows:
        size, notional = out.get(sym, (ZERO, ZERO))
        px = avg or limit or ZERO
        out[sym] = (size + (filled if side == "buy" else -filled), notional + filled * px)
    return out


def risk_context(
    *,
    user: User,
    symbol: str,
    session_authenticated: bool,
    emergency: bool = False,
    exclude_orders: Iterable[int] = (),
) -> tuple[risk.RiskContext, AssetSpec | None]:
    """Everything `risk.evaluate` needs. Live orders are read BEFORE the account: an order that filled in between
    is then in the account state (whose epoch moved) or still counted as live — never in neither."""
    controls = ctl.controls_get()
    spec = venue.asset_spec(symbol)
    book = hot_book(symbol)
    if emergency and (book is None or book.ts_ms is None or clock.now_ms() - book.ts_ms > 4000):
        book = _venue_book(symbol) or book
    live = live_orders(user=user, exclude=exclude_orders)
    positions, as_of, stale, equity = _account_for_risk(user)
    sizes = {s: Decimal(str(p.get("szi", "0"))) for s, p in positions.items()}
    values = {s: abs(Decimal(str(p.get("positionValue", "0")))) for s, p in positions.items()}
    if stale:  # conservative: fills the stale state may not include count on top, in size and in notional
        for s, (delta, notional) in _unseen_fills(user=user, since=as_of).items():
            sizes[s] = sizes.get(s, ZERO) + delta
            values[s] = values.get(s, ZERO) + notional
    buys, sells = risk.live_sizes(live, symbol)
    limits = ctl.limits_for(user=user)
    ctx = risk.RiskContext(
        now_ms=clock.now_ms(),
        kill_switch_engaged=controls.kill_switch_engaged,
        server_trading_enabled=controls.server_trading_enabled,
        admin_only=controls.admin_only,
        user_is_admin=user.is_admin,
        session_authenticated=session_authenticated and user.is_active,
        execution_agent_ready=agent_current(user=user) is not None,
        spec=spec,
        book=book,
        limits=limits,
        position_size=sizes.get(symbol, ZERO),
        total_exposure_usd=sum(values.values(), ZERO),
        daily_pnl_usd=selectors.daily_pnl(user=user),
        open_breakers=breakers.breakers_open(user=user),
        live_buy_size=buys,
        live_sell_size=sells,
        live_exposure_usd=risk.live_exposure_usd(
            positions={s: (sizes.get(s, ZERO), values.get(s, ZERO)) for s in set(sizes) | set(values)},
            live=live,
            exclude=symbol,
        ),
        drawdown_pct=drawdown_pct(peak=peak_get(user=user), equity=equity),
    )
    return ctx, spec


def order_preview(
    *, user: User, intent: risk.OrderIntent, session_authenticated: bool = True, exclude_orders: Iterable[int] = ()
) -> risk.Verdict:
    ctx, _ = risk_context(
        user=user, symbol=intent.symbol, session_authenticated=session_authenticated, exclude_orders=exclude_orders
    )
    return risk.evaluate(intent, ctx)


def _without_gates(ctx: risk.RiskContext) -> risk.RiskContext:
    return replace(ctx, kill_switch_engaged=False, server_trading_enabled=True, admin_only=False, open_breakers=())


def _intent_dict(intent: risk.OrderIntent) -> dict[str, Any]:
    return {k: (to_wire(v) if isinstance(v, Decimal) else v) for k, v in asdict(intent).items()}


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
    audit_append(
        event="order.request",
        correlation_id=cid,
        user_id=user.pk,
        actor=ctl.actor_name(user),
        data={"key": key, "source": source, "intent": _intent_dict(intent)},
    )
    with user_serialized(user.pk):
        ctx, spec = risk_context(
            user=user,
            symbol=intent.symbol,
            session_authenticated=session_authenticated,
            emergency=bypass_gates,
            exclude_orders=exclude_orders,
        )
        if bypass_gates:
            ctx = _without_gates(ctx)
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
    _send(user=user, orders=orders, spec=spec, grouping=orders[0].grouping, correlation_id=cid, started=started)
    return order_outcome(orders[0], correlation_id=cid, verdict=verdict)


def _stale_data_evidence(*, verdict: risk.Verdict, ctx: risk.RiskContext, symbol: str) -> None:
    if verdict.reason != risk.STALE_MARKET_DATA or ctx.book is None or ctx.book.ts_ms is None:
        return
    age = ctx.now_ms - ctx.book.ts_ms
    best_effort(
        "stale-data breaker",
        lambda: breakers.stale_data_record(symbol=symbol, age_ms=age, feed_down=market_feed_down()),
    )


# --- send -------------------------------------------------------------------------------------------------------
def _order_request(order: Order) -> dict[str, Any]:
    from hyperliquid.utils.types import Cloid

    if order.order_type in ("tp", "sl"):
        assert order.trigger_price is not None
        otype: dict[str, Any] = {
            "trigger": {"isMarket": True, "triggerPx": float(order.trigger_price), "tpsl": order.order_type}
        }
    else:
        otype = {"limit": {"tif": order.tif}}
    return {
        "coin": order.symbol,
        "is_buy": order.side == "buy",
        "sz": float(order.size),
        "limit_px": float(order.price or 0),
        "order_type": otype,
        "reduce_only": order.reduce_only,
        "cloid": Cloid(order.cloid),
    }


def _leverage(*, user: User, wallet: Any, order: Order, spec: AssetSpec, cid: str) -> None:
    action = {"type": "updateLeverage", "asset": spec.asset_id, "isCross": True, "leverage": int(order.leverage or 1)}
    sig, nonce = venue.sign_action(wallet, action)
    reply = venue.post_signed(action, sig, nonce)
    audit_append(
        event="venue.leverage",
        correlation_id=cid,
        user_id=user.pk,
        actor="relay",
        data={"action": action, "reply": reply},
    )


def _reject_all(orders: list[Order], reason: str) -> None:
    for o in orders:
        metrics.REJECTIONS.labels(reason=reason.split(":")[0][:40]).inc()
        order_transition(o, OrderState.REJECTED, reject_reason=reason[:300])


def _send(
    *, user: User, orders: list[Order], spec: AssetSpec, grouping: str, correlation_id: str, started: float
) -> None:
    from hyperliquid.utils.signing import order_request_to_order_wire, order_wires_to_order_action

    cid = correlation_id
    try:
        wallet = agent_signing_wallet(user=user)
    except ApplicationError as exc:
        _reject_all(orders, exc.code)
        audit_append(
            event="order.rejected", correlation_id=cid, user_id=user.pk, actor="relay", data={"code": exc.code}
        )
        return
    if orders[0].leverage:
        try:
            _leverage(user=user, wallet=wallet, order=orders[0], spec=spec, cid=cid)
        except (venue.VenueError, venue.VenueTimeout) as exc:
            # Nothing was ordered yet: the order is rejected, not unknown.
            limited = isinstance(exc, venue.VenueError) and exc.rate_limited
            _reject_all(orders, VENUE_RATE_LIMITED if limited else f"leverage update failed: {exc}")
            return
    wires = [order_request_to_order_wire(_order_request(o), spec.asset_id) for o in orders]  # type: ignore[arg-type]
    action = order_wires_to_order_action(wires, None, grouping)  # type: ignore[arg-type]
    sig, nonce = venue.sign_action(wallet, action)
    audit_append(
        event="order.signed",
        correlation_id=cid,
        user_id=user.pk,
        actor="relay",
        data={"action": action, "nonce": nonce, "signer": wallet.address, "account": user.address},
    )
    now = timezone.now()
    for o in orders:
        order_transition(o, OrderState.SUBMITTED, submitted_at=now)
    metrics.RELAY_OVERHEAD.observe(time.perf_counter() - started)
    t0 = time.perf_counter()
    try:
        reply = venue.post_signed(action, sig, nonce)
    except venue.VenueTimeout as exc:
        _outcome_unknown(user=user, orders=orders, cid=cid, error=exc)
        return
    except venue.VenueError as exc:
        _venue_refused(user=user, orders=orders, cid=cid, error=exc)
        return
    metrics.SUBMIT_TO_ACK.observe(time.perf_counter() - t0)
    _accepted(user=user, orders=orders, cid=cid, reply=reply)


def _outcome_unknown(*, user: User, orders: list[Order], cid: str, error: BaseException) -> None:
    best_effort("error-rate breaker", lambda: breakers.venue_outcome_record(ok=False))
    audit_append(event="venue.unknown", correlation_id=cid, user_id=user.pk, actor="relay", data={"error": str(error)})
    for o in orders:
        # Never over a state the feed or reconciliation already set (the answer may have arrived another way).
        order_transition(o, OrderState.UNKNOWN, venue_status="timeout")
    publish_private(
        user_id=user.pk,
        event_type="execution_event",
        data={
            "event": "venue.unknown",
            "correlation_id": cid,
            "error": str(error),
            "order_ids": [o.pk for o in orders],
        },
    )
    logger.warning("order outcome unknown", extra={"correlation_id": cid, "user_id": user.pk})
    best_effort("on-demand resolve", lambda: unknown_resolve_soon(order_ids=[o.pk for o in orders]))


def _venue_refused(*, user: User, orders: list[Order], cid: str, error: venue.VenueError) -> None:
    """The venue did not take the action (429, 4xx), or we did not send it (budget, backoff after a 429)."""
    if error.kind == "rate_limited":
        best_effort("rate-budget breaker", breakers.rate_limited_record)
    elif not error.not_sent and error.kind in ("server", "error"):
        best_effort("error-rate breaker", lambda: breakers.venue_outcome_record(ok=False))
    reason = VENUE_RATE_LIMITED if error.rate_limited else f"venue_error: {error}"
    audit_append(
        event="venue.error",
        correlation_id=cid,
        user_id=user.pk,
        actor="relay",
        data={"error": str(error), "status": error.status, "kind": error.kind, "sent": not error.not_sent},
    )
    _reject_all(orders, reason)


def _accepted(*, user: User, orders: list[Order], cid: str, reply: Any) -> None:
    """The venue answered: apply it; everything after is best effort."""
    ids = {"correlation_id": cid, "user_id": user.pk}
    best_effort("error-rate breaker", lambda: breakers.venue_outcome_record(ok=True), **ids)
    best_effort(
        "venue.response audit",
        lambda: audit_append(
            event="venue.response", correlation_id=cid, user_id=user.pk, actor="venue", data={"reply": reply}
        ),
        **ids,
    )
    any_fill = best_effort("order reply", lambda: apply_order_reply(orders=orders, reply=reply), **ids)
    if any_fill:
        best_effort("post-fill account sync", lambda: account_sync(user=user, correlation_id=cid), **ids)


def apply_order_reply(*, orders: list[Order], reply: Any) -> bool:
    """Apply the venue's per-order statuses; True when something filled."""
    acked = timezone.now()
    if not (isinstance(reply, dict) and reply.get("status") == "ok"):
        text = str(reply.get("response") if isinstance(reply, dict) else reply)[:300]
        for o in orders:
            metrics.REJECTIONS.labels(reason="venue_rejected").inc()
            order_transition(o, OrderState.REJECTED, reject_reason=text, acked_at=acked)
        return False
    statuses = (reply.get("response") or {}).get("data", {}).get("statuses", [])
    if len(statuses) == 1 and len(orders) > 1 and isinstance(statuses[0], dict) and "error" in statuses[0]:
        statuses = statuses * len(orders)  # a pre-validation error answers once for the whole batch
    filled = False
    for o, st in zip(orders, statuses, strict=False):
        filled |= _apply_status(o, st, acked)
    return filled


def _apply_status(o: Order, st: Any, acked: Any) -> bool:
    if isinstance(st, dict) and "resting" in st:
        order_transition(
            o, OrderState.RESTING, venue_oid=int(st["resting"]["oid"]), venue_status="open", acked_at=acked
        )
    elif isinstance(st, dict) and "filled" in st:
        f = st["filled"]
        total = Decimal(str(f.get("totalSz", "0")))
        state = OrderState.FILLED if total >= o.size else OrderState.CANCELLED
        order_transition(
            o,
            state,
            venue_oid=int(f["oid"]),
            filled_size=total,
            avg_fill_price=Decimal(str(f.get("avgPx", "0"))),
            acked_at=acked,
            venue_status="filled" if state == OrderState.FILLED else "filled (rest cancelled)",
        )
        return True
    elif isinstance(st, dict) and "error" in st:
        metrics.REJECTIONS.labels(reason="venue_rejected").inc()
        order_transition(
            o, OrderState.REJECTED, reject_reason=str(st["error"])[:300], venue_status="rejected", acked_at=acked
        )
    elif st in ("waitingForFill", "waitingForTrigger", "success"):
        order_transition(o, OrderState.RESTING, venue_status=str(st), acked_at=acked)
    return False
