"""What a trading action came to, in the domain's words: the services return an `Outcome`; the API (through the
idempotency layer, which stores the serialised outcome so a replay answers the same) maps it to HTTP.

    result     DONE          the venue took it (filled, resting, cancelled...)
               PENDING       sent, the venue's answer is not known yet (reconciliation resolves it by cloid)
               REFUSED       risk checks or the venue refused it: nothing executed
               RATE_LIMITED  not executed because of pace: retry after `refusal.retry_after_s`
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from execution import risk
from execution.models import Order, OrderState, PositionProtection
from execution.services.orders import order_dict
from kernel.venue import client as vc


class Result(StrEnum):
    DONE = "done"
    PENDING = "pending"
    REFUSED = "refused"
    RATE_LIMITED = "rate_limited"


UNSETTLED = (OrderState.UNKNOWN, OrderState.SUBMITTED, OrderState.PENDING)
# The reject reason of an order the venue (or our shared backoff after its 429) did not take for pace.
VENUE_RATE_LIMITED = "venue_rate_limited"


@dataclass(frozen=True)
class Refusal:
    code: str
    message: str
    retry_after_s: float | None = None


@dataclass(frozen=True)
class Outcome:
    """One trading action's outcome. `creates` says whether the action places orders (submit, modify, close,
    protection) or acts on an existing one (cancel)."""

    result: Result
    creates: bool = True
    correlation_id: str | None = None
    order: Order | None = None
    children: tuple[Order, ...] | None = None
    orders: tuple[Order, ...] | None = None  # protection: every trigger placed
    verdict: risk.Verdict | None = None
    refusal: Refusal | None = None
    original: Order | None = None  # modify: the order being replaced, as it stands now
    note: str | None = None
    reply: Any = None  # cancel: the venue's reply
    trailing: PositionProtection | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def placed(self) -> bool:
        """The action reached the venue (done or pending): what autonomous trading counts as placed."""
        return self.result in (Result.DONE, Result.PENDING)

    def with_(self, **changes: Any) -> Outcome:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The serialised outcome: what the API answers and the idempotency record keeps."""
        body: dict[str, Any] = {}
        if self.refusal is not None:
            body.update({"type": "error", "code": self.refusal.code, "message": self.refusal.message})
            if self.refusal.retry_after_s is not None:
                body["retry_after_s"] = round(self.refusal.retry_after_s, 1)
        if self.orders is not None:
            body["orders"] = [order_dict(o) for o in self.orders]
        if self.order is not None:
            body["order"] = order_dict(self.order)
        if self.children is not None:
            body["children"] = [order_dict(c) for c in self.children]
        if self.verdict is not None:
            body["verdict"] = self.verdict.as_dict()
        if self.correlation_id is not None:
            body["correlation_id"] = self.correlation_id
        if self.original is not None:
            body["original"] = order_dict(self.original)
        if self.note is not None:
            body["note"] = self.note
        if self.reply is not None:
            body["reply"] = self.reply
        if self.trailing is not None:
            t = self.trailing
            body["trailing"] = {
                "id": t.pk,
                "trail_pct": str(t.trail_pct),
                "stop_price": None if t.stop_price is None else str(t.stop_price),
                "reference": "mark",
            }
        body.update(self.extra)
        body["result"] = self.result.value
        return body


def order_outcome(order: Order, *, correlation_id: str | None = None, verdict: risk.Verdict | None = None) -> Outcome:
    """The outcome of a sent entry order, from what its rows say now (venue rate limits and rejections included)."""
    order.refresh_from_db()
    children = tuple(Order.objects.filter(parent=order))
    common: dict[str, Any] = {
        "order": order,
        "children": children,
        "verdict": verdict,
        "correlation_id": correlation_id,
    }
    if order.state == OrderState.REJECTED:
        if order.reject_reason == VENUE_RATE_LIMITED:
            message = "The venue is rate limiting this deployment: nothing was executed. Retry shortly."
            refusal = Refusal("venue_rate_limited", message, retry_after_s=max(1.0, vc.backoff_remaining()))
            return Outcome(Result.RATE_LIMITED, refusal=refusal, **common)
        return Outcome(Result.REFUSED, refusal=Refusal("venue_rejected", order.reject_reason), **common)
    if order.state in UNSETTLED:
        return Outcome(Result.PENDING, **common)
    return Outcome(Result.DONE, **common)
