"""Cancels: never blocked by the kill switch, breakers or our venue budget (cancelling is how risk goes down), and
retried through 429 storms, 5xx and timeouts until EXECUTION_CANCEL_RETRY_SEC (cancelling twice is harmless;
creating twice is not)."""

from __future__ import annotations

import logging
from typing import Any

import tenacity
from django.conf import settings

from accounts.models import User
from accounts.services import agent_signing_wallet
from execution.audit import audit_append
from execution.models import FINAL_STATES, Order, OrderState
from execution.outcomes import Outcome, Result
from execution.services import breakers
from execution.services import controls as ctl
from execution.services.orders import new_correlation_id, order_find, order_transition
from execution.services.sync import order_resolve, orders_sync
from kernel.errors import ApplicationError
from kernel.venue import client as vc
from kernel.venue import exchange, meta

logger = logging.getLogger(__name__)


def _cancel_retryable(exc: BaseException) -> bool:
    return isinstance(exc, vc.VenueTimeout) or (
        isinstance(exc, vc.VenueError) and exc.kind in ("rate_limited", "server")
    )


def post_with_retry(*, wallet: Any, action: dict[str, Any], cid: str, user: User) -> Any:
    """Post a cancel-type action with back-off (0.25 s doubling to 2 s) until EXECUTION_CANCEL_RETRY_SEC (safe:
    cancelling is idempotent); each failure audited, a refusal that retrying cannot change raised at once."""

    def once() -> Any:
        sig, nonce = exchange.sign_action(wallet, action)
        try:
            return exchange.post_signed(action, sig, nonce, priority=vc.CANCEL)
        except (vc.VenueError, vc.VenueTimeout) as exc:
            if isinstance(exc, vc.VenueError) and exc.kind == "rate_limited":
                breakers.rate_limited_record()
            event = "cancel.retry" if _cancel_retryable(exc) else "cancel.error"
            audit_append(event=event, correlation_id=cid, user_id=user.pk, actor="relay", data={"error": str(exc)})
            raise

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(_cancel_retryable),
        wait=tenacity.wait_exponential(multiplier=0.25, min=0.25, max=2.0),
        stop=tenacity.stop_before_delay(settings.EXECUTION_CANCEL_RETRY_SEC),
        reraise=True,
    )
    return retrying(once)


def order_cancel(
    *,
    user: User,
    order_id: int | None = None,
    cloid: str | None = None,
    correlation_id: str | None = None,
    actor: str | None = None,
) -> Outcome:
    """Cancel one order by cloid at the venue. Never blocked by the kill switch or breakers."""
    cid = correlation_id or new_correlation_id()
    order = order_find(user=user, order_id=order_id, cloid=cloid)
    audit_append(
        event="cancel.request",
        correlation_id=cid,
        user_id=user.pk,
        actor=actor or ctl.actor_name(user),
        data={"order_id": order.pk, "cloid": order.cloid, "state": order.state},
    )
    if order.state in FINAL_STATES:
        return Outcome(Result.DONE, creates=False, order=order, correlation_id=cid, note="already final")
    if order.state == OrderState.PENDING and order_transition(
        order, OrderState.CANCELLED, venue_status="cancelled before sending"
    ):
        return Outcome(Result.DONE, creates=False, order=order, correlation_id=cid)
    spec = meta.asset_spec(order.symbol)
    if spec is None:
        raise ApplicationError("symbol not on the venue", code="symbol_not_tradable", status=422)
    wallet = agent_signing_wallet(user=user)
    action = {"type": "cancelByCloid", "cancels": [{"asset": spec.asset_id, "cloid": order.cloid}]}
    audit_append(event="cancel.signed", correlation_id=cid, user_id=user.pk, actor="relay", data={"action": action})
    try:
        reply = post_with_retry(wallet=wallet, action=action, cid=cid, user=user)
    except vc.VenueTimeout as exc:
        raise ApplicationError(
            f"the venue did not answer the cancel: {exc}; it is safe to retry", code="cancel_unknown", status=504
        ) from exc
    except vc.VenueError as exc:
        raise ApplicationError(
            f"the venue refused the cancel: {exc}", code="cancel_failed", status=502 if exc.status is None else 422
        ) from exc
    audit_append(event="venue.response", correlation_id=cid, user_id=user.pk, actor="venue", data={"reply": reply})
    statuses = (reply.get("response") or {}).get("data", {}).get("statuses", []) if isinstance(reply, dict) else []
    if statuses and statuses[0] == "success":
        order_transition(order, OrderState.CANCELLED, venue_status="canceled")
    else:
        order_resolve(order=order, correlation_id=cid)
    return Outcome(Result.DONE, creates=False, order=order, correlation_id=cid, reply=reply)


def orders_cancel_all(*, user: User, correlation_id: str, actor: str, risk_adding_only: bool = False) -> int:
    """Cancel every order the VENUE shows open for the user (one batch), then sync local state.

    `risk_adding_only` (the kill switch): reduce-only orders and triggers — stops, take-profits, closes — stay, so
    open positions keep their protection; everything that could add risk goes."""
    wallet = agent_signing_wallet(user=user)
    open_orders = vc.info({"type": "frontendOpenOrders", "user": user.address, "dex": ""}, priority=vc.CANCEL)
    cancels = []
    for o in open_orders if isinstance(open_orders, list) else []:
        if risk_adding_only and (o.get("reduceOnly") or o.get("isTrigger")):
            continue
        spec = meta.asset_spec(str(o.get("coin")))
        if spec is not None:
            cancels.append({"a": spec.asset_id, "o": int(o["oid"])})
    if cancels:
        action = {"type": "cancel", "cancels": cancels}
        reply = post_with_retry(wallet=wallet, action=action, cid=correlation_id, user=user)
        audit_append(
            event="cancel_all.response",
            correlation_id=correlation_id,
            user_id=user.pk,
            actor=actor,
            data={"action": action, "reply": reply},
        )
    pending = Order.objects.filter(user=user, state=OrderState.PENDING)
    if risk_adding_only:
        pending = pending.filter(reduce_only=False).exclude(order_type__in=("tp", "sl"))
    for order in pending:
        order_transition(order, OrderState.CANCELLED, venue_status="cancelled before sending")
    orders_sync(user=user, correlation_id=correlation_id)
    return len(cancels)
