"""The venue accepts an order but never answers: the order goes `unknown`, is never re-sent, and reconciles by cloid."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.core.management import call_command

from execution.models import AuditRecord, Order, OrderState
from tests.factories import SYMBOL, approved_trader, client_for, make_order

pytestmark = pytest.mark.django_db(transaction=True)


def test_blackholed_order_goes_unknown_then_reconciles_without_a_duplicate(
    trader: Any, hot: Any, sim_thread: Any
) -> None:
    sim = sim_thread.sim
    sim_thread.call(sim.faults.blackhole, 1)
    c = client_for(trader)
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

    order = make_order(
        trader,
        cloid=cloid_for(user_id=trader.pk, key="lost-key-1"),
        idempotency_key="lost-key-1",
        correlation_id="c1",
        state=OrderState.UNKNOWN,
        submitted_at=timezone.now() - timedelta(minutes=1),
    )
    reconcile_user(user=trader)
    order.refresh_from_db()
    assert order.state == OrderState.REJECTED and order.reject_reason == "never reached the venue"
    assert order.cloid not in sim_thread.sim.stats["orders_by_cloid"]


def test_reconcile_adopts_orders_placed_outside_and_fixes_positions(trader: Any, hot: Any, sim_thread: Any) -> None:
    from accounts.services import agent_signing_wallet
    from execution.models import PositionSnapshot
    from execution.services.sync import reconcile_user
    from kernel.venue import exchange, meta

    wallet = agent_signing_wallet(user=trader)
    action = {
        "type": "order",
        "orders": [
            {
                "a": meta.asset_spec(SYMBOL).asset_id,
                "b": True,
                "p": "1000",
                "s": "0.02",
                "r": False,
                "t": {"limit": {"tif": "Gtc"}},
            }
        ],
        "grouping": "na",
    }
    sig, nonce = exchange.sign_action(wallet, action)
    reply = exchange.post_signed(action, sig, nonce)
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

    for _ in range(2):
        approved_trader()  # two more users with agents, nothing unsettled
    make_order(
        trader,
        cloid="0x" + "ab" * 16,
        idempotency_key="u-1",
        correlation_id="u",
        state=OrderState.UNKNOWN,
        submitted_at=timezone.now() - timedelta(minutes=1),
    )
    settings.EXECUTION_RECONCILE_WEIGHT_PER_MIN = 45  # one user per minute
    result = reconcile_all()
    assert result["users"] == 3 and result["skipped_for_budget"] == 2, result
    # The user with the unknown order went first.
    assert Order.objects.get(cloid="0x" + "ab" * 16).state != OrderState.UNKNOWN


def test_users_the_feed_streams_are_compared_in_full_only_every_streamed_interval(
    trader: Any, hot: Any, settings: Any
) -> None:
    """A live user feed pushes everything as it happens, so its users cost the shared REST budget only every
    EXECUTION_RECONCILE_STREAMED_SEC — unless they hold an unsettled order; users without a feed every round."""
    import time

    from django.core.cache import cache

    from execution.services.sync import reconcile_all, user_feed_mark, users_to_reconcile

    polled = approved_trader()
    settings.EXECUTION_RECONCILE_STREAMED_SEC = 300
    user_feed_mark(user_id=trader.pk)
    assert {u.pk for u in users_to_reconcile()} == {trader.pk, polled.pk}  # never reconciled yet: due
    first = reconcile_all()
    assert first["users"] == 2 and first["failed"] == 0, first
    user_feed_mark(user_id=trader.pk)
    assert [u.pk for u in users_to_reconcile()] == [polled.pk]  # streamed and reconciled a moment ago
    assert {u.pk for u in users_to_reconcile(now=time.time() + 301)} == {polled.pk, trader.pk}
    # The feed lapses (process gone): the user is due every round again.
    cache.delete(f"exec:feed:{trader.pk}")
    assert {u.pk for u in users_to_reconcile()} == {trader.pk, polled.pk}


def test_a_round_refused_by_the_shared_budget_gives_its_reconciliation_share_back(
    trader: Any, hot: Any, settings: Any
) -> None:
    from execution.services.sync import reconcile_all
    from kernel.venue import client as vc

    settings.EXECUTION_RECONCILE_WEIGHT_PER_MIN = 45
    vc.backoff_start()  # nothing but cancels may be sent: the round is refused before reaching the venue
    refused = reconcile_all()
    assert refused["failed"] == 1 and refused["skipped_for_budget"] == 0, refused
    vc._backoff_clear_level()
    from django.core.cache import cache

    cache.delete("venue:backoff:until")
    done = reconcile_all()  # the share is still there
    assert done["failed"] == 0 and done["skipped_for_budget"] == 0, done
