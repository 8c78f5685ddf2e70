"""The venue accepts an order but never answers: the order goes `unknown`, is never re-sent, and reconciles by cloid."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from execution.models import AuditRecord, Order, OrderState

from .conftest import SYMBOL

pytestmark = pytest.mark.django_db(transaction=True)


def test_blackholed_order_goes_unknown_then_reconciles_without_a_duplicate(
    trader: Any, hot: Any, sim_thread: Any
) -> None:
    sim = sim_thread.sim
    sim_thread.call(sim.faults.blackhole, 1)
    c = APIClient()
    c.force_login(trader)
    key = str(uuid.uuid4())
    body = {"symbol": SYMBOL, "side": "buy", "type": "market", "size_usd": "100"}
    r = c.post("/trading/order", body, format="json", HTTP_IDEMPOTENCY_KEY=key)
    assert r.status_code == 202, r.json()
    order = Order.objects.get(pk=r.json()["order"]["id"])
    assert order.state == OrderState.UNKNOWN

    # A client retry with the same key gets the stored answer: nothing is re-sent.
    again = c.post("/trading/order", body, format="json", HTTP_IDEMPOTENCY_KEY=key)
    assert again.status_code == 202 and again.json() == r.json()
    assert sim.stats["orders_by_cloid"][order.cloid] == 1

    call_command("reconcile")
    order.refresh_from_db()
    assert order.state == OrderState.FILLED
    assert sim.stats["orders_by_cloid"][order.cloid] == 1
    assert AuditRecord.objects.filter(event="reconcile.fix", data__kind="unknown_resolved").exists()
    assert AuditRecord.objects.filter(event="venue.unknown", correlation_id=order.correlation_id).exists()
    # The fill and position came in with the reconciliation too.
    assert order.user.fills.count() >= 1 and order.user.positions.filter(symbol=SYMBOL).exists()


def test_an_order_the_venue_never_saw_is_settled_as_rejected_never_resent(
    trader: Any, hot: Any, sim_thread: Any
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from execution.services.orders import cloid_for
    from execution.services.sync import reconcile_user

    order = Order.objects.create(
        user=trader,
        idempotency_key="lost-key-1",
        cloid=cloid_for(user_id=trader.pk, key="lost-key-1"),
        correlation_id="c1",
        symbol=SYMBOL,
        side="buy",
        order_type="limit",
        size="0.001",
        price="1000",
        state=OrderState.UNKNOWN,
        submitted_at=timezone.now() - timedelta(minutes=1),
    )
    reconcile_user(user=trader)
    order.refresh_from_db()
    assert order.state == OrderState.REJECTED and order.reject_reason == "never reached the venue"
    assert order.cloid not in sim_thread.sim.stats["orders_by_cloid"]


def test_reconcile_adopts_orders_placed_outside_and_fixes_positions(trader: Any, hot: Any, sim_thread: Any) -> None:
    from accounts.services import agent_signing_wallet
    from execution import venue
    from execution.models import PositionSnapshot
    from execution.services.sync import reconcile_user

    wallet = agent_signing_wallet(user=trader)
    action = {
        "type": "order",
        "orders": [
            {
                "a": venue.asset_spec(SYMBOL).asset_id,
                "b": True,
                "p": "1000",
                "s": "0.02",
                "r": False,
                "t": {"limit": {"tif": "Gtc"}},
            }
        ],
        "grouping": "na",
    }
    sig, nonce = venue.sign_action(wallet, action)
    reply = venue.post_signed(action, sig, nonce)
    oid = reply["response"]["data"]["statuses"][0]["resting"]["oid"]
    PositionSnapshot.objects.create(user=trader, symbol="ETH", size="1")  # a position the venue does not have
    fixes = reconcile_user(user=trader)
    assert fixes >= 1
    adopted = Order.objects.get(user=trader, venue_oid=oid)
    assert adopted.source == "venue" and adopted.state == OrderState.RESTING
    assert not PositionSnapshot.objects.filter(user=trader, symbol="ETH").exists()
    kinds = set(AuditRecord.objects.filter(event="reconcile.fix").values_list("data__kind", flat=True))
    assert {"untracked_order", "position_gone"} <= kinds


def test_reconciliation_stays_within_its_rest_budget_and_puts_unsettled_users_first(
    trader: Any, hot: Any, settings: Any
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from execution.services.sync import reconcile_all

    from .conftest import approve_agent, make_trader

    others = []
    for _ in range(2):
        user, wallet = make_trader()
        approve_agent(user, wallet)
        others.append(user)
    Order.objects.create(
        user=trader,
        idempotency_key="u-1",
        cloid="0x" + "ab" * 16,
        correlation_id="u",
        symbol=SYMBOL,
        side="buy",
        order_type="limit",
        size="0.001",
        price="1000",
        state=OrderState.UNKNOWN,
        submitted_at=timezone.now() - timedelta(minutes=1),
    )
    settings.EXECUTION_RECONCILE_WEIGHT_PER_MIN = 45  # one user per minute
    result = reconcile_all()
    assert result["users"] == 3 and result["skipped_for_budget"] == 2, result
    # The user with the unknown order went first.
    assert Order.objects.get(cloid="0x" + "ab" * 16).state != OrderState.UNKNOWN
