"""Each circuit breaker condition trips, blocks new orders (cancels still pass), is audited, and needs an admin
reset with a reason."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from execution import risk
from execution.models import AuditRecord, BreakerKind, CircuitBreaker
from execution.services import breakers
from execution.services.sync import pnl_breakers_check
from tests.execution.answers import order_cancel, order_submit
from tests.execution.orders import resting_buy
from tests.factories import SYMBOL, client_for, make_fill, make_user

pytestmark = pytest.mark.django_db(transaction=True)


def _submit(user: Any, hot: Any) -> tuple[int, dict[str, Any]]:
    return order_submit(user=user, key=f"k-{uuid.uuid4()}", intent=resting_buy(hot))


def _losing_fills(user: Any, pnls: list[str]) -> None:
    now = timezone.now()
    for i, pnl in enumerate(pnls):
        make_fill(
            user,
            tid=10_000 + i,
            venue_oid=20_000 + i,
            time=now - timedelta(seconds=10 - i),
            closed_pnl=Decimal(pnl),
            size=Decimal("0.01"),
            fee=Decimal("0.1"),
        )


def _assert_blocked(user: Any, hot: Any, kind: str) -> None:
    status, body = _submit(user, hot)
    assert status == 422 and body["code"] == risk.CIRCUIT_BREAKER, body
    assert kind in body["message"]
    assert AuditRecord.objects.filter(event="breaker.tripped", data__kind=kind).exists()


def test_three_consecutive_losses_trip_the_users_breaker_but_cancels_pass(trader: Any, hot: Any) -> None:
    status, body = _submit(trader, hot)
    resting = body["order"]["id"]
    _losing_fills(trader, ["5", "-1", "-2", "-3"])
    pnl_breakers_check(user=trader)
    assert CircuitBreaker.objects.get(kind=BreakerKind.CONSECUTIVE_LOSSES, user=trader).tripped
    _assert_blocked(trader, hot, BreakerKind.CONSECUTIVE_LOSSES)
    assert order_cancel(user=trader, order_id=resting)[1]["order"]["state"] == "cancelled"
    other = make_user()
    assert breakers.breakers_open(user=other) == ()  # per-user breaker


def test_two_losses_do_not_trip(trader: Any, hot: Any) -> None:
    _losing_fills(trader, ["-1", "-2"])
    pnl_breakers_check(user=trader)
    assert breakers.breakers_open(user=trader) == ()


def test_the_daily_loss_limit_trips(trader: Any, hot: Any) -> None:
    _losing_fills(trader, ["-60", "10", "-60"])  # -110 - fees < -100 (testnet column)
    pnl_breakers_check(user=trader)
    _assert_blocked(trader, hot, BreakerKind.DAILY_LOSS)


def test_the_venue_error_rate_trips_the_global_breaker(trader: Any, hot: Any, settings: Any, sim_thread: Any) -> None:
    settings.BREAKER_ERROR_MIN_SAMPLES = 5
    settings.BREAKER_RATE_LIMIT_COUNT = 1000
    for _ in range(4):
        breakers.venue_outcome_record(ok=True)
    # Real failures: the venue hangs on two orders (timeouts → unknown) → 2/6 = 33 % > 20 %.
    sim_thread.call(sim_thread.sim.faults.blackhole, 2)
    _submit(trader, hot)
    _submit(trader, hot)
    _assert_blocked(trader, hot, BreakerKind.ERROR_RATE)


def test_a_stale_book_rejects_and_a_very_stale_one_trips_the_breaker(trader: Any, hot: Any) -> None:
    intent = resting_buy(hot)
    hot(SYMBOL, age_ms=5_000)  # older than the 4 s book freshness rule
    status, body = order_submit(user=trader, key=f"k-{uuid.uuid4()}", intent=intent)
    assert status == 422 and body["code"] == risk.STALE_MARKET_DATA
    assert breakers.breakers_open(user=trader) == ()
    hot(SYMBOL, age_ms=45_000)
    order_submit(user=trader, key=f"k-{uuid.uuid4()}", intent=intent)
    assert CircuitBreaker.objects.get(kind=BreakerKind.STALE_DATA, user=None).tripped
    hot("ETH")
    eth = risk.OrderIntent(symbol="ETH", is_buy=True, order_type="market", size_usd=Decimal(50))
    status, body = order_submit(user=trader, key=f"k-{uuid.uuid4()}", intent=eth)
    assert body["code"] == risk.CIRCUIT_BREAKER


def test_only_an_admin_resets_a_breaker_and_only_with_a_reason(trader: Any, hot: Any) -> None:
    breakers.breaker_trip(kind=BreakerKind.ERROR_RATE, reason="test")
    admin = make_user(role="admin")

    def reset(user: Any, body: dict[str, Any]) -> Any:
        return client_for(user).post("/trading/breakers/reset", body, format="json")

    assert reset(trader, {"kind": "error_rate", "reason": "x"}).status_code == 403
    assert reset(admin, {"kind": "error_rate", "reason": " "}).status_code == 400
    r = reset(admin, {"kind": "error_rate", "reason": "venue recovered"})
    assert r.status_code == 200 and r.json()["breakers"] == []
    assert AuditRecord.objects.filter(event="breaker.reset", data__reason="venue recovered").exists()
    assert _submit(trader, hot)[0] == 201
