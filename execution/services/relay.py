"""The execution relay: pre-trade checks, persistence before sending, signing with the user's agent through the
SDK, a hard timeout, venue answers applied, every step audited with the correlation id.

Invariants:
* The Order row (with its cloid, derived from (user, idempotency key)) is stored before anything is sent.
* A timeout, broken connection or 5xx after sending leaves the order `unknown`; it is never re-sent — the
  reconciliation resolves it by cloid under the master address.
* Cancels are never blocked by the kill switch or breakers, and retry through 429 storms (cancelling twice is
  harmless; creating twice is not).
* Audit rows are written in their own transaction (execution.audit), so rejected attempts stay recorded.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from accounts.models import User
from accounts.selectors import agent_current
from accounts.services import agent_signing_wallet
from execution import metrics, risk, venue
from execution.audit import audit_append
from execution.models import (
    FINAL_STATES,
    OPEN_STATES,
    Fill,
    Order,
    OrderState,
    PositionSnapshot,
)
from execution.rounding import AssetSpec, round_price, to_wire
from execution.services import controls as ctl
from execution.services.events import publish_private
from hypersentry.errors import ApplicationError, NotFound

logger = logging.getLogger(__name__)
ZERO = Decimal(0)


class RiskRejected(ApplicationError):
    code = "risk_rejected"
    status = 422


def cloid_for(*, user_id: int, key: str) -> str:
    """16 bytes of sha256(user_id|key) as the venue client order id: the same key always maps to the same cloid."""
    return "0x" + hashlib.sha256(f"{user_id}|{key}".encode()).hexdigest()[:32]


def new_correlation_id() -> str:
    return uuid.uuid4().hex


# --- context ----------------------------------------------------------------------------------------------
def _book(symbol: str) -> risk.Book | None:
    try:
        from markets.hotstate import get_hot_state

        snap = get_hot_state().get_sync(symbol)
    except Exception:
        logger.exception("hot state read failed", extra={"symbol": symbol})
        return None
    if snap is None:
        return None
    bids, asks = snap.book.get("bids") or [], snap.book.get("asks") or []
    bid = Decimal(str(bids[0][0])) if bids else None
    ask = Decimal(str(asks[0][0])) if asks else None
    return risk.Book(best_bid=bid, best_ask=ask, ts_ms=snap.book_ts)


def account_state(*, user: User, max_age: float = 2.0) -> dict[str, Any]:
    """clearinghouseState for the MASTER address (weight 2), cached briefly per user."""
    from django.core.cache import cache

    key = f"exec:acct:{user.pk}"
    hit = cache.get(key)
    if hit is not None and time.time() - hit["at"] < max_age:
        return dict(hit["state"])
    state = venue.info({"type": "clearinghouseState", "user": user.address, "dex": ""})
    cache.set(key, {"at": time.time(), "state": state}, 60)
    return dict(state)


def account_invalidate(*, user: User) -> None:
    from django.core.cache import cache

    cache.delete(f"exec:acct:{user.pk}")


def _positions_from_state(state: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out = {}
    for ap in state.get("assetPositions", []) or []:
        pos = ap.get("position", {})
        if Decimal(str(pos.get("szi", "0"))) != 0:
            out[str(pos.get("coin"))] = pos
    return out


def daily_pnl(*, user: User) -> Decimal:
    start = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    agg = Fill.objects.filter(user=user, time__gte=start).aggregate(p=Sum("closed_pnl"), f=Sum("fee"))
    return (agg["p"] or ZERO) - (agg["f"] or ZERO)


def _venue_book(symbol: str) -> risk.Book | None:
    """The venue's own l2Book (weight 2): for emergency closes when the hot state is stale."""
    try:
        raw = venue.info({"type": "l2Book", "coin": symbol})
        bids, asks = raw["levels"][0], raw["levels"][1]
    except (venue.VenueError, venue.VenueTimeout, KeyError, IndexError, TypeError):
        return None
    return risk.Book(
        best_bid=Decimal(str(bids[0]["px"])) if bids else None,
        best_ask=Decimal(str(asks[0]["px"])) if asks else None,
        ts_ms=int(time.time() * 1000),
    )


def risk_context(
    *, user: User, symbol: str, session_authenticated: bool, emergency: bool = False
) -> tuple[risk.RiskContext, AssetSpec | None]:
    controls = ctl.controls_get()
    spec = venue.asset_spec(symbol)
    book = _book(symbol)
    if emergency and (book is None or book.ts_ms is None or time.time() * 1000 - book.ts_ms > 4000):
        book = _venue_book(symbol) or book
    position = ZERO
    exposure = ZERO
    try:
        positions = _positions_from_state(account_state(user=user))
        position = Decimal(str(positions.get(symbol, {}).get("szi", "0")))
        exposure = sum((abs(Decimal(str(p.get("positionValue", "0")))) for p in positions.values()), ZERO)
    except (venue.VenueError, venue.VenueTimeout):
        # Fall back to the last reconciled snapshot rather than failing open on exposure.
        snaps = list(PositionSnapshot.objects.filter(user=user))
        position = next((s.size for s in snaps if s.symbol == symbol), ZERO)
        exposure = sum((abs(s.position_value) for s in snaps), ZERO)
    ctx = risk.RiskContext(
        now_ms=int(time.time() * 1000),
        kill_switch_engaged=controls.kill_switch_engaged,
        server_trading_enabled=controls.server_trading_enabled,
        admin_only=controls.admin_only,
        user_is_admin=user.is_admin,
        session_authenticated=session_authenticated and user.is_active,
        execution_agent_ready=agent_current(user=user) is not None,
        spec=spec,
        book=book,
        limits=ctl.limits_for(user=user),
        position_size=position,
        total_exposure_usd=exposure,
        daily_pnl_usd=daily_pnl(user=user),
        open_breakers=ctl.breakers_open(user=user),
    )
    return ctx, spec


def order_preview(*, user: User, intent: risk.OrderIntent, session_authenticated: bool = True) -> risk.Verdict:
    ctx, _ = risk_context(user=user, symbol=intent.symbol, session_authenticated=session_authenticated)
    return risk.evaluate(intent, ctx)


# --- presentation -----------------------------------------------------------------------------------------
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


def _set_state(order: Order, state: str, **fields: Any) -> None:
    order.state = state
    for k, v in fields.items():
        setattr(order, k, v)
    order.save()
    metrics.ORDERS.labels(state=state).inc()
    publish_private(user_id=order.user_id, event_type="order_update", data=order_dict(order), symbol=order.symbol)


# --- submit -----------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Attached:
    """TP/SL children sent with an entry order (grouping normalTpsl)."""

    tp_price: Decimal | None = None
    sl_price: Decimal | None = None


def _reject(
    *, user: User, key: str, intent: risk.OrderIntent, verdict: risk.Verdict, correlation_id: str, source: str
) -> Order:
    metrics.REJECTIONS.labels(reason=verdict.reason).inc()
    order = Order.objects.create(
        user=user,
        idempotency_key=key,
        cloid=cloid_for(user_id=user.pk, key=key or correlation_id),
        correlation_id=correlation_id,
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


def _child_orders(*, parent: Order, attached: Attached, spec: AssetSpec, key: str) -> list[Order]:
    children = []
    for tpsl, px in (("tp", attached.tp_price), ("sl", attached.sl_price)):
        if px is None:
            continue
        limit = round_price(
            px=px * (Decimal("0.9") if parent.side == "buy" else Decimal("1.1")),
            spec=spec,
            mode="up" if parent.side == "buy" else "down",
        )
        children.append(
            Order(
                user=parent.user,
                idempotency_key=f"{key}:{tpsl}",
                cloid=cloid_for(user_id=parent.user_id, key=f"{key}:{tpsl}"),
                correlation_id=parent.correlation_id,
                symbol=parent.symbol,
                side="sell" if parent.side == "buy" else "buy",
                order_type=tpsl,
                size=parent.size,
                price=limit,
                trigger_price=px,
                tif="Gtc",
                reduce_only=True,
                grouping="normalTpsl",
                parent=parent,
                source=parent.source,
            )
        )
    return children


def order_submit(
    *,
    user: User,
    key: str,
    intent: risk.OrderIntent,
    session_authenticated: bool = True,
    correlation_id: str | None = None,
    source: str = "manual",
    attached: Attached | None = None,
    bypass_gates: bool = False,
    replaces: Order | None = None,
) -> tuple[int, dict[str, Any]]:
    """Check, persist, sign, send. Returns (HTTP status, body). `bypass_gates` is for the kill switch's own
    reduce-only flatten orders only."""
    started = time.perf_counter()
    cid = correlation_id or new_correlation_id()
    audit_append(
        event="order.request",
        correlation_id=cid,
        user_id=user.pk,
        actor=ctl.actor_name(user),
        data={
            "key": key,
            "source": source,
            "intent": _intent_dict(intent),
            "attached": None if attached is None else {"tp": attached.tp_price, "sl": attached.sl_price},
        },
    )
    ctx, spec = risk_context(
        user=user, symbol=intent.symbol, session_authenticated=session_authenticated, emergency=bypass_gates
    )
    if bypass_gates:
        ctx = _without_gates(ctx)
    verdict = risk.evaluate(intent, ctx)
    audit_append(event="risk.decision", correlation_id=cid, user_id=user.pk, actor="risk", data=verdict.as_dict())
    if not verdict.ok:
        if verdict.reason == risk.STALE_MARKET_DATA and ctx.book is not None and ctx.book.ts_ms is not None:
            ctl.stale_data_record(symbol=intent.symbol, age_ms=ctx.now_ms - ctx.book.ts_ms)
        order = _reject(user=user, key=key, intent=intent, verdict=verdict, correlation_id=cid, source=source)
        refusal: dict[str, Any] = {
            "type": "error",
            "code": verdict.reason,
            "message": verdict.message,
            "verdict": verdict.as_dict(),
            "order": order_dict(order),
            "correlation_id": cid,
        }
        return 422, refusal
    assert verdict.order is not None and spec is not None
    n = verdict.order
    with transaction.atomic():
        parent = Order.objects.create(
            user=user,
            idempotency_key=key,
            cloid=cloid_for(user_id=user.pk, key=key),
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
            grouping="normalTpsl" if attached else "na",
            source=source,
            replaces=replaces,
        )
        children = _child_orders(parent=parent, attached=attached, spec=spec, key=key) if attached else []
        for child in children:
            child.save()
    metrics.ORDERS.labels(state=OrderState.PENDING).inc()
    orders = [parent, *children]
    _send(
        user=user,
        orders=orders,
        spec=spec,
        grouping="normalTpsl" if children else "na",
        correlation_id=cid,
        started=started,
    )
    parent.refresh_from_db()
    status = 202 if parent.state == OrderState.UNKNOWN else (422 if parent.state == OrderState.REJECTED else 201)
    body: dict[str, Any] = {
        "order": order_dict(parent),
        "children": [order_dict(c) for c in Order.objects.filter(parent=parent)],
        "verdict": verdict.as_dict(),
        "correlation_id": cid,
    }
    if parent.state == OrderState.REJECTED:
        body.update({"type": "error", "code": "venue_rejected", "message": parent.reject_reason})
    return status, body


def _without_gates(ctx: risk.RiskContext) -> risk.RiskContext:
    from dataclasses import replace

    return replace(ctx, kill_switch_engaged=False, server_trading_enabled=True, admin_only=False, open_breakers=())


def _intent_dict(intent: risk.OrderIntent) -> dict[str, Any]:
    from dataclasses import asdict

    return {k: (to_wire(v) if isinstance(v, Decimal) else v) for k, v in asdict(intent).items()}


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


def _sign(wallet: Any, action: dict[str, Any]) -> tuple[dict[str, Any], int]:
    from hyperliquid.utils.constants import MAINNET_API_URL
    from hyperliquid.utils.signing import sign_l1_action

    nonce = venue.next_nonce(wallet.address)
    sig = sign_l1_action(wallet, action, None, nonce, None, venue.base_url() == MAINNET_API_URL)
    return sig, nonce


def _leverage(*, user: User, wallet: Any, ex: Any, order: Order, spec: AssetSpec, cid: str) -> None:
    action = {"type": "updateLeverage", "asset": spec.asset_id, "isCross": True, "leverage": int(order.leverage or 1)}
    sig, nonce = _sign(wallet, action)
    reply = venue.post_signed(ex, action, sig, nonce)
    audit_append(
        event="venue.leverage",
        correlation_id=cid,
        user_id=user.pk,
        actor="relay",
        data={"action": action, "reply": reply},
    )


def _send(
    *, user: User, orders: list[Order], spec: AssetSpec, grouping: str, correlation_id: str, started: float
) -> None:
    from hyperliquid.utils.signing import order_request_to_order_wire, order_wires_to_order_action

    cid = correlation_id
    try:
        wallet = agent_signing_wallet(user=user)
    except ApplicationError as exc:
        for o in orders:
            _set_state(o, OrderState.REJECTED, reject_reason=exc.code)
        audit_append(
            event="order.rejected", correlation_id=cid, user_id=user.pk, actor="relay", data={"code": exc.code}
        )
        return
    ex = venue.exchange_for(wallet=wallet, account_address=user.address)
    if orders[0].leverage:
        try:
            _leverage(user=user, wallet=wallet, ex=ex, order=orders[0], spec=spec, cid=cid)
        except (venue.VenueError, venue.VenueTimeout) as exc:
            # Nothing was ordered yet: the order is rejected, not unknown.
            for o in orders:
                _set_state(o, OrderState.REJECTED, reject_reason=f"leverage update failed: {exc}"[:300])
            return
    wires = [order_request_to_order_wire(_order_request(o), spec.asset_id) for o in orders]  # type: ignore[arg-type]
    action = order_wires_to_order_action(wires, None, grouping)  # type: ignore[arg-type]
    sig, nonce = _sign(wallet, action)
    audit_append(
        event="order.signed",
        correlation_id=cid,
        user_id=user.pk,
        actor="relay",
        data={"action": action, "nonce": nonce, "signer": wallet.address, "account": user.address},
    )
    now = timezone.now()
    Order.objects.filter(pk__in=[o.pk for o in orders]).update(state=OrderState.SUBMITTED, submitted_at=now)
    for o in orders:
        o.state, o.submitted_at = OrderState.SUBMITTED, now
    metrics.RELAY_OVERHEAD.observe(time.perf_counter() - started)
    t0 = time.perf_counter()
    try:
        reply = venue.post_signed(ex, action, sig, nonce)
    except venue.VenueTimeout as exc:
        ctl.venue_outcome_record(ok=False)
        audit_append(
            event="venue.unknown", correlation_id=cid, user_id=user.pk, actor="relay", data={"error": str(exc)}
        )
        for o in orders:
            _set_state(o, OrderState.UNKNOWN, venue_status="timeout")
        publish_private(
            user_id=user.pk,
            event_type="execution_event",
            data={
                "event": "venue.unknown",
                "correlation_id": cid,
                "error": str(exc),
                "order_ids": [o.pk for o in orders],
            },
        )
        logger.warning("order outcome unknown", extra={"correlation_id": cid, "user_id": user.pk})
        return
    except venue.VenueError as exc:
        ctl.venue_outcome_record(ok=False)
        if exc.kind == "rate_limited":
            ctl.rate_limited_record()
        reason = "venue_rate_limited" if exc.kind == "rate_limited" else f"venue_error: {exc}"[:300]
        audit_append(
            event="venue.error",
            correlation_id=cid,
            user_id=user.pk,
            actor="relay",
            data={"error": str(exc), "status": exc.status},
        )
        for o in orders:
            metrics.REJECTIONS.labels(
                reason="venue_rate_limited" if exc.kind == "rate_limited" else "venue_error"
            ).inc()
            _set_state(o, OrderState.REJECTED, reject_reason=reason)
        return
    metrics.SUBMIT_TO_ACK.observe(time.perf_counter() - t0)
    ok = isinstance(reply, dict) and reply.get("status") == "ok"
    ctl.venue_outcome_record(ok=ok)
    audit_append(event="venue.response", correlation_id=cid, user_id=user.pk, actor="venue", data={"reply": reply})
    any_fill = apply_order_reply(orders=orders, reply=reply)
    if any_fill:
        from execution.services.sync import account_sync

        account_sync(user=user, correlation_id=cid)


def apply_order_reply(*, orders: list[Order], reply: Any) -> bool:
    """Apply the venue's per-order statuses; True when something filled."""
    acked = timezone.now()
    if not (isinstance(reply, dict) and reply.get("status") == "ok"):
        text = str(reply.get("response") if isinstance(reply, dict) else reply)[:300]
        for o in orders:
            metrics.REJECTIONS.labels(reason="venue_rejected").inc()
            _set_state(o, OrderState.REJECTED, reject_reason=text, acked_at=acked)
        return False
    statuses = (reply.get("response") or {}).get("data", {}).get("statuses", [])
    if len(statuses) == 1 and len(orders) > 1 and isinstance(statuses[0], dict) and "error" in statuses[0]:
        statuses = statuses * len(orders)  # a pre-validation error answers once for the whole batch
    filled = False
    for o, st in zip(orders, statuses, strict=False):
        if isinstance(st, dict) and "resting" in st:
            _set_state(o, OrderState.RESTING, venue_oid=int(st["resting"]["oid"]), venue_status="open", acked_at=acked)
        elif isinstance(st, dict) and "filled" in st:
            f = st["filled"]
            total = Decimal(str(f.get("totalSz", "0")))
            state = OrderState.FILLED if total >= o.size else OrderState.CANCELLED
            _set_state(
                o,
                state,
                venue_oid=int(f["oid"]),
                filled_size=total,
                avg_fill_price=Decimal(str(f.get("avgPx", "0"))),
                acked_at=acked,
                venue_status="filled" if state == OrderState.FILLED else "filled (rest cancelled)",
            )
            filled = True
        elif isinstance(st, dict) and "error" in st:
            metrics.REJECTIONS.labels(reason="venue_rejected").inc()
            _set_state(
                o, OrderState.REJECTED, reject_reason=str(st["error"])[:300], venue_status="rejected", acked_at=acked
            )
        elif st in ("waitingForFill", "waitingForTrigger", "success"):
            _set_state(o, OrderState.RESTING, venue_status=str(st), acked_at=acked)
    return filled


# --- cancel -----------------------------------------------------------------------------------------------
def _find_order(*, user: User, order_id: int | None, cloid: str | None) -> Order:
    qs = Order.objects.filter(user=user)
    order = qs.filter(pk=order_id).first() if order_id is not None else qs.filter(cloid=(cloid or "").lower()).first()
    if order is None:
        raise NotFound("no such order", code="order_not_found")
    return order


def _post_with_retry(*, ex: Any, wallet: Any, action: dict[str, Any], cid: str, user: User) -> Any:
    """Cancels retry on 429 / 5xx / timeouts with back-off until the deadline (safe: cancelling is idempotent)."""
    deadline = time.monotonic() + settings.EXECUTION_CANCEL_RETRY_SEC
    delay = 0.25
    while True:
        sig, nonce = _sign(wallet, action)
        try:
            return venue.post_signed(ex, action, sig, nonce)
        except (venue.VenueError, venue.VenueTimeout) as exc:
            retryable = isinstance(exc, venue.VenueTimeout) or exc.kind in ("rate_limited", "server")
            if isinstance(exc, venue.VenueError) and exc.kind == "rate_limited":
                ctl.rate_limited_record()
            audit_append(
                event="cancel.retry" if retryable else "cancel.error",
                correlation_id=cid,
                user_id=user.pk,
                actor="relay",
                data={"error": str(exc)},
            )
            if not retryable or time.monotonic() + delay > deadline:
                raise
            time.sleep(delay)
            delay = min(2.0, delay * 2)


def order_cancel(
    *,
    user: User,
    order_id: int | None = None,
    cloid: str | None = None,
    correlation_id: str | None = None,
    actor: str | None = None,
) -> tuple[int, dict[str, Any]]:
    """Cancel one order. Never blocked by the kill switch or breakers."""
    cid = correlation_id or new_correlation_id()
    order = _find_order(user=user, order_id=order_id, cloid=cloid)
    audit_append(
        event="cancel.request",
        correlation_id=cid,
        user_id=user.pk,
        actor=actor or ctl.actor_name(user),
        data={"order_id": order.pk, "cloid": order.cloid, "state": order.state},
    )
    if order.state in FINAL_STATES:
        return 200, {"order": order_dict(order), "correlation_id": cid, "note": "already final"}
    if order.state == OrderState.PENDING:
        _set_state(order, OrderState.CANCELLED, venue_status="cancelled before sending")
        return 200, {"order": order_dict(order), "correlation_id": cid}
    spec = venue.asset_spec(order.symbol)
    if spec is None:
        raise ApplicationError("symbol not on the venue", code="symbol_not_tradable", status=422)
    wallet = agent_signing_wallet(user=user)
    ex = venue.exchange_for(wallet=wallet, account_address=user.address)
    action = {"type": "cancelByCloid", "cancels": [{"asset": spec.asset_id, "cloid": order.cloid}]}
    audit_append(event="cancel.signed", correlation_id=cid, user_id=user.pk, actor="relay", data={"action": action})
    try:
        reply = _post_with_retry(ex=ex, wallet=wallet, action=action, cid=cid, user=user)
    except venue.VenueTimeout as exc:
        raise ApplicationError(
            f"the venue did not answer the cancel: {exc}", code="cancel_unknown", status=504
        ) from exc
    except venue.VenueError as exc:
        raise ApplicationError(f"the venue refused the cancel: {exc}", code="cancel_failed", status=502) from exc
    audit_append(event="venue.response", correlation_id=cid, user_id=user.pk, actor="venue", data={"reply": reply})
    statuses = (reply.get("response") or {}).get("data", {}).get("statuses", []) if isinstance(reply, dict) else []
    if statuses and statuses[0] == "success":
        _set_state(order, OrderState.CANCELLED, venue_status="canceled")
    else:
        from execution.services.sync import order_resolve

        order_resolve(order=order, correlation_id=cid)
        order.refresh_from_db()
    return 200, {"order": order_dict(order), "correlation_id": cid, "reply": reply}


def orders_cancel_all(*, user: User, correlation_id: str, actor: str) -> int:
    """Cancel every order the VENUE shows open for the user (one batch), then sync local state."""
    wallet = agent_signing_wallet(user=user)
    ex = venue.exchange_for(wallet=wallet, account_address=user.address)
    open_orders = venue.info({"type": "frontendOpenOrders", "user": user.address, "dex": ""})
    cancels = []
    for o in open_orders or []:
        spec = venue.asset_spec(str(o.get("coin")))
        if spec is not None:
            cancels.append({"a": spec.asset_id, "o": int(o["oid"])})
    if cancels:
        action = {"type": "cancel", "cancels": cancels}
        reply = _post_with_retry(ex=ex, wallet=wallet, action=action, cid=correlation_id, user=user)
        audit_append(
            event="cancel_all.response",
            correlation_id=correlation_id,
            user_id=user.pk,
            actor=actor,
            data={"action": action, "reply": reply},
        )
    for order in Order.objects.filter(user=user, state__in=OPEN_STATES):
        if order.state == OrderState.PENDING:
            _set_state(order, OrderState.CANCELLED, venue_status="cancelled before sending")
    from execution.services.sync import orders_sync

    orders_sync(user=user, correlation_id=correlation_id)
    return len(cancels)


def position_close(
    *,
    user: User,
    key: str,
    symbol: str,
    correlation_id: str | None = None,
    bypass_gates: bool = False,
    source: str = "manual",
) -> tuple[int, dict[str, Any]]:
    """Close a position with a reduce-only market (IOC) order sized to the venue's position."""
    account_invalidate(user=user)
    positions = _positions_from_state(account_state(user=user, max_age=0))
    pos = positions.get(symbol)
    if pos is None:
        raise ApplicationError("no open position for this symbol", code="no_position", status=422)
    szi = Decimal(str(pos["szi"]))
    intent = risk.OrderIntent(symbol=symbol, is_buy=szi < 0, order_type="market", size=abs(szi), reduce_only=True)
    return order_submit(
        user=user, key=key, intent=intent, correlation_id=correlation_id, source=source, bypass_gates=bypass_gates
    )


def order_modify(
    *,
    user: User,
    key: str,
    order_id: int,
    price: Decimal | None,
    size: Decimal | None,
    session_authenticated: bool = True,
) -> tuple[int, dict[str, Any]]:
    """Modify = cancel + new (the venue gives the new order a new oid): local state follows the new order."""
    old = _find_order(user=user, order_id=order_id, cloid=None)
    if old.state not in (OrderState.RESTING, OrderState.PARTIALLY_FILLED):
        raise ApplicationError("only resting orders can be modified", code="not_modifiable", status=409)
    cid = new_correlation_id()
    order_cancel(user=user, order_id=old.pk, correlation_id=cid)
    old.refresh_from_db()
    if old.state != OrderState.CANCELLED:
        raise ApplicationError("the order could not be cancelled (filled?)", code="modify_cancel_failed", status=409)
    intent = risk.OrderIntent(
        symbol=old.symbol,
        is_buy=old.side == "buy",
        order_type=old.order_type,
        size=size if size is not None else old.size - old.filled_size,
        price=price if price is not None else old.price,
        tif=old.tif,
        reduce_only=old.reduce_only,
    )
    return order_submit(
        user=user, key=key, intent=intent, session_authenticated=session_authenticated, correlation_id=cid, replaces=old
    )
