"""Sending orders that are already stored: the agent's signature, the leverage update, a hard timeout, and the
venue's answer applied — accepted, refused (nothing executed) or unknown (resolved by cloid later, never re-sent).
After the venue accepted, everything is best effort (best_effort): logged and reconciled, never an error for the
accepted order.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from django.utils import timezone

from accounts.models import User
from accounts.services import agent_signing_wallet
from execution import metrics
from execution.audit import audit_append
from execution.models import Order, OrderState
from execution.outcomes import VENUE_RATE_LIMITED
from execution.services import breakers
from execution.services.events import publish_private
from execution.services.orders import (
    order_transition,
)
from execution.services.sync import account_sync, unknown_resolve_soon
from kernel.errors import ApplicationError
from kernel.venue import client as vc
from kernel.venue import exchange
from kernel.venue.rounding import AssetSpec

logger = logging.getLogger(__name__)


def best_effort(what: str, fn: Callable[[], Any], **ids: Any) -> Any:
    """Bookkeeping after the venue accepted an order: a failure is logged (reconciliation repairs it) and never
    turns the accepted order into an error."""
    try:
        return fn()
    except Exception:  # the boundary of best-effort bookkeeping; logged with ids
        logger.warning(f"{what} failed; reconciliation will repair it", extra=ids, exc_info=True)
        return None


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


def signed_post_audited(
    *, user: User, wallet: Any, action: dict[str, Any], cid: str, event: str, actor: str, priority: str = vc.ORDER
) -> Any:
    """Sign `action` with the user's agent wallet, post it, and audit the action with the venue's reply."""
    sig, nonce = exchange.sign_action(wallet, action)
    reply = exchange.post_signed(action, sig, nonce, priority=priority)
    audit_append(event=event, correlation_id=cid, user_id=user.pk, actor=actor, data={"action": action, "reply": reply})
    return reply


def _leverage(*, user: User, wallet: Any, order: Order, spec: AssetSpec, cid: str) -> None:
    action = {"type": "updateLeverage", "asset": spec.asset_id, "isCross": True, "leverage": int(order.leverage or 1)}
    signed_post_audited(user=user, wallet=wallet, action=action, cid=cid, event="venue.leverage", actor="relay")


def _reject_all(orders: list[Order], reason: str) -> None:
    for o in orders:
        metrics.REJECTIONS.labels(reason=reason.split(":")[0][:40]).inc()
        order_transition(o, OrderState.REJECTED, reject_reason=reason[:300])


def send_orders(
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
        except (vc.VenueError, vc.VenueTimeout) as exc:
            # Nothing was ordered yet: the order is rejected, not unknown.
            limited = isinstance(exc, vc.VenueError) and exc.rate_limited
            _reject_all(orders, VENUE_RATE_LIMITED if limited else f"leverage update failed: {exc}")
            return
    wires = [order_request_to_order_wire(_order_request(o), spec.asset_id) for o in orders]  # type: ignore[arg-type]
    action = order_wires_to_order_action(wires, None, grouping)  # type: ignore[arg-type]
    sig, nonce = exchange.sign_action(wallet, action)
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
        reply = exchange.post_signed(action, sig, nonce)
    except vc.VenueTimeout as exc:
        _outcome_unknown(user=user, orders=orders, cid=cid, error=exc)
        return
    except vc.VenueError as exc:
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


def _venue_refused(*, user: User, orders: list[Order], cid: str, error: vc.VenueError) -> None:
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
