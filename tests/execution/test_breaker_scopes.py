"""Breakers a trader can follow: per user where the cause is the user's, global where it is the venue's; each
half-opens after its cooldown; losses are counted net of fees, as the fills table shows them; drawdown enforced."""

from __future__ import annotations

import time
import uuid
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from execution import risk
from execution.models import AuditRecord, BreakerKind, CircuitBreaker, EquityPeak, Fill
from execution.services import breakers
from execution.services.sync import fill_dict, pnl_breakers_check
from tests.execution.answers import order_submit
from tests.execution.orders import resting_buy
from tests.factories import BUY, SYMBOL, approved_trader, client_for, make_fill, make_user, risk_context, risk_limits

pytestmark = pytest.mark.django_db(transaction=True)
CL = BreakerKind.CONSECUTIVE_LOSSES


def submit(user: Any, hot: Any) -> tuple[int, dict[str, Any]]:
    return order_submit(user=user, key=f"k-{uuid.uuid4()}", intent=resting_buy(hot))


def trade(user: Any, *, closed: str, fee: str, oid: int, fills: int = 1, at: Any = None) -> None:
    """One closing trade: `fills` closing fills of one order whose closed PnL sums to `closed`."""
    at = at or timezone.now()
    for i in range(fills):
        make_fill(
            user,
            tid=oid * 100 + i,
            venue_oid=oid,
            time=at + timedelta(milliseconds=i),
            closed_pnl=Decimal(closed) / fills,
            fee=Decimal(fee) / fills,
            direction="Close Long",
        )


def test_losses_are_net_of_fees_exactly_as_the_fills_table_shows_them(trader: Any, hot: Any) -> None:
    """Three round trips with positive closed PnL but fees above it: the table shows them red, the breaker agrees."""
    now = timezone.now()
    for i in range(3):
        trade(trader, closed="0.05", fee="0.10", oid=1 + i, at=now + timedelta(seconds=i))
    shown = [fill_dict(f)["net_pnl"] for f in Fill.objects.filter(user=trader)]
    assert all(v < 0 for v in shown), shown
    pnl_breakers_check(user=trader)
    assert breakers.breakers_open(user=trader) == (CL,)


def test_winning_trades_net_of_fees_do_not_trip(trader: Any, hot: Any) -> None:
    now = timezone.now()
    for i in range(3):
        trade(trader, closed="0.50", fee="0.10", oid=1 + i, at=now + timedelta(seconds=i))
    assert all(fill_dict(f)["net_pnl"] > 0 for f in Fill.objects.filter(user=trader))
    pnl_breakers_check(user=trader)
    assert breakers.breakers_open(user=trader) == ()


def test_one_losing_trade_filled_in_several_parts_counts_once(trader: Any, hot: Any) -> None:
    now = timezone.now()
    trade(trader, closed="-3", fee="0.1", oid=1, fills=3, at=now)
    trade(trader, closed="-3", fee="0.1", oid=2, fills=3, at=now + timedelta(seconds=1))
    pnl_breakers_check(user=trader)
    assert breakers.breakers_open(user=trader) == ()  # two trades, not six
    trade(trader, closed="-1", fee="0.1", oid=3, at=now + timedelta(seconds=2))
    pnl_breakers_check(user=trader)
    assert breakers.breakers_open(user=trader) == (CL,)


def test_a_users_loss_breaker_half_opens_after_its_cooldown_and_never_blocks_others(
    trader: Any, hot: Any, settings: Any
) -> None:
    settings.BREAKER_LOSS_COOLDOWN_SEC = 1.0
    other = approved_trader()
    now = timezone.now()
    for i in range(3):
        trade(trader, closed="-1", fee="0.1", oid=1 + i, at=now + timedelta(seconds=i))
    pnl_breakers_check(user=trader)
    status, body = submit(trader, hot)
    assert (status, body["code"]) == (422, risk.CIRCUIT_BREAKER)
    assert submit(other, hot)[0] == 201  # the cause is the trader's own trading: nobody else is blocked
    row = CircuitBreaker.objects.get(kind=CL, user=trader)
    assert row.cooldown_until is not None
    time.sleep(1.2)
    assert breakers.breakers_open(user=trader) == ()  # half-open: orders pass again
    assert submit(trader, hot)[0] == 201
    trade(trader, closed="-1", fee="0.1", oid=9, at=timezone.now())  # the first trade after the cooldown lost
    pnl_breakers_check(user=trader)
    assert breakers.breakers_open(user=trader) == (CL,)
    time.sleep(1.2)
    trade(trader, closed="2", fee="0.1", oid=10, at=timezone.now())  # ...and after the next cooldown, a win
    pnl_breakers_check(user=trader)
    assert not CircuitBreaker.objects.get(kind=CL, user=trader).tripped
    assert AuditRecord.objects.filter(event="breaker.closed", data__kind=CL).exists()


def test_user_errors_at_the_venue_never_trip_the_global_error_rate(trader: Any, hot: Any, settings: Any) -> None:
    """Post-only orders that would cross are refused by the venue: that is the user's order, not the venue failing."""
    settings.BREAKER_ERROR_MIN_SAMPLES = 3
    ask = str(hot(SYMBOL).book["asks"][0][0])
    c = client_for(trader)
    for _ in range(6):
        body = {"symbol": SYMBOL, "side": "buy", "type": "limit", "price": ask, "size": "0.0003", "tif": "Alo"}
        r = c.post("/trading/order", body, format="json", HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()))
        assert r.status_code == 422 and r.json()["code"] == "venue_rejected", r.json()
    assert breakers.breakers_open(user=None) == ()


def test_a_global_venue_breaker_half_opens_and_a_venue_success_closes_it(trader: Any, hot: Any, settings: Any) -> None:
    settings.BREAKER_ERROR_COOLDOWN_SEC = 1.0
    breakers.breaker_trip(kind=BreakerKind.ERROR_RATE, reason="test: the venue failed")
    assert submit(trader, hot)[1]["code"] == risk.CIRCUIT_BREAKER
    time.sleep(1.2)
    status, body = submit(trader, hot)
    assert status == 201, body  # half-open lets it through; the venue answered
    assert not CircuitBreaker.objects.get(kind=BreakerKind.ERROR_RATE, user=None).tripped


def test_rate_budget_trips_on_venue_429s_and_closes_on_the_first_answer_after_its_cooldown(settings: Any) -> None:
    settings.BREAKER_RATE_LIMIT_COUNT = 3
    settings.BREAKER_RATE_BUDGET_COOLDOWN_SEC = 0.5
    for _ in range(3):
        breakers.rate_limited_record()
    assert breakers.breakers_open(user=None) == (BreakerKind.RATE_BUDGET,)
    time.sleep(0.6)
    assert breakers.breakers_open(user=None) == ()
    breakers.rate_limited_record()  # still limited after the cooldown: open again
    assert breakers.breakers_open(user=None) == (BreakerKind.RATE_BUDGET,)
    time.sleep(0.6)
    breakers.venue_outcome_record(ok=True)
    assert not CircuitBreaker.objects.get(kind=BreakerKind.RATE_BUDGET, user=None).tripped


def test_breakers_refuse_a_scope_that_does_not_match_their_kind(trader: Any) -> None:
    from kernel.errors import ValidationFailed

    with pytest.raises(ValidationFailed):
        breakers.breaker_trip(kind=BreakerKind.CONSECUTIVE_LOSSES, reason="no user")
    with pytest.raises(ValidationFailed):
        breakers.breaker_trip(kind=BreakerKind.ERROR_RATE, user=trader, reason="a user")


def test_max_drawdown_is_enforced_and_an_admin_reset_rebases_the_peak(trader: Any, hot: Any) -> None:
    from execution.services.account import account_read

    c = client_for(trader)
    assert (
        c.post(
            "/trading/order",
            {"symbol": SYMBOL, "side": "buy", "type": "market", "size_usd": "100"},
            format="json",
            HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()),
        ).status_code
        == 201
    )
    equity = account_read(user=trader, fresh=True).equity
    assert equity is not None
    EquityPeak.objects.filter(user=trader).update(peak_equity=equity / Decimal("0.8"))  # 20 % below its peak
    from django.core.cache import cache

    cache.delete(f"exec:peak:{trader.pk}")
    account_read(user=trader, fresh=True)  # the next observation trips the user's drawdown breaker
    assert breakers.breakers_open(user=trader) == (BreakerKind.DRAWDOWN,)
    status, body = submit(trader, hot)
    assert body["code"] == risk.CIRCUIT_BREAKER and "drawdown" in body["message"]
    closing = c.post(
        "/trading/positions/close", {"symbol": SYMBOL}, format="json", HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4())
    )
    assert closing.status_code == 201, closing.json()  # reducing risk stays possible
    admin = make_user(role="admin")
    breakers.breaker_reset(actor=admin, kind=BreakerKind.DRAWDOWN, user=trader, reason="withdrawal, not a loss")
    peak = EquityPeak.objects.get(user=trader).peak_equity
    assert peak < equity / Decimal("0.8")
    assert AuditRecord.objects.filter(event="drawdown.peak_rebased").exists()
    assert submit(trader, hot)[0] == 201


def test_the_risk_check_names_max_drawdown_when_no_breaker_is_open() -> None:
    ctx = risk_context(limits=risk_limits(max_drawdown_pct=Decimal(15)), drawdown_pct=Decimal("15.5"))
    assert risk.evaluate(BUY, ctx).reason == risk.MAX_DRAWDOWN
    assert risk.evaluate(BUY, replace(ctx, drawdown_pct=Decimal(10))).ok
