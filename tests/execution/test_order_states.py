"""Order states only move forward: a late relay timeout never overwrites what the user feed or reconciliation
already learnt, and local state never regresses from a final state to a live one."""

from __future__ import annotations

import threading
import time
import uuid
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection

from execution import risk
from execution.models import Order, OrderState
from execution.services.orders import ALLOWED_FROM, order_transition
from execution.services.sync import orders_sync
from kernel.venue import meta
from kernel.venue.rounding import round_price
from tests.execution.answers import order_submit
from tests.factories import SYMBOL, make_order

pytestmark = pytest.mark.django_db(transaction=True)
S = OrderState


def test_the_transition_table_never_leaves_a_final_state_and_never_marks_an_acked_order_unknown() -> None:
    finals = {S.FILLED, S.CANCELLED, S.REJECTED}
    for target, sources in ALLOWED_FROM.items():
        if target not in finals:
            assert not (sources & finals), target
    assert ALLOWED_FROM[S.UNKNOWN] == {S.PENDING, S.SUBMITTED}


def test_a_relay_timeout_after_the_feed_set_resting_leaves_it_resting(trader: Any, hot: Any, sim_thread: Any) -> None:
    """The venue rests the order but never answers the relay; meanwhile reconciliation (as the user feed would)
    learns it rests. The relay's timeout 2 s later must not turn it into `unknown`."""
    spec = meta.asset_spec(SYMBOL)
    snap = hot(SYMBOL)
    px = round_price(px=Decimal(snap.book["bids"][0][0]) * Decimal("0.95"), spec=spec, mode="down")
    intent = risk.OrderIntent(symbol=SYMBOL, is_buy=True, order_type="limit", size=Decimal("0.001"), price=px)
    sim_thread.call(sim_thread.sim.faults.blackhole, 1)
    result: list[tuple[int, dict[str, Any]]] = []

    def submit() -> None:
        try:
            result.append(order_submit(user=trader, key=f"k-{uuid.uuid4()}", intent=intent))
        finally:
            connection.close()

    t = threading.Thread(target=submit)
    t.start()
    deadline = time.monotonic() + 5
    order = None
    while time.monotonic() < deadline:
        order = Order.objects.filter(user=trader, state=S.SUBMITTED).first()
        if order is not None:
            break
        time.sleep(0.05)
    assert order is not None
    time.sleep(0.3)  # the venue has it resting by now
    orders_sync(user=trader)
    order.refresh_from_db()
    assert order.state == S.RESTING and order.venue_oid
    t.join(15)
    status, body = result[0]
    order.refresh_from_db()
    assert order.state == S.RESTING, "the late timeout overwrote a newer state"
    assert body["order"]["state"] == "resting" and status == 201


def test_a_final_state_is_never_turned_back_into_a_live_one(trader: Any) -> None:
    order = make_order(trader, cloid="0x" + "1" * 32, state=S.FILLED, filled_size=Decimal("0.001"))
    assert not order_transition(order, S.RESTING, venue_status="open")
    assert not order_transition(order, S.UNKNOWN, venue_status="timeout")
    assert order.state == S.FILLED
    # The venue's own word may still correct a final state (an order we thought cancelled had filled first).
    cancelled = make_order(trader, cloid="0x" + "2" * 32, state=S.CANCELLED)
    assert not order_transition(cancelled, S.FILLED, filled_size=Decimal("0.001"))
    assert order_transition(cancelled, S.FILLED, venue_correction=True, filled_size=Decimal("0.001"))


def test_a_filled_size_never_shrinks(trader: Any) -> None:
    order = make_order(
        trader, cloid="0x" + "3" * 32, size=Decimal("0.01"), state=S.PARTIALLY_FILLED, filled_size=Decimal("0.005")
    )
    assert not order_transition(order, S.PARTIALLY_FILLED, filled_size=Decimal("0.002"))
    assert order_transition(order, S.PARTIALLY_FILLED, filled_size=Decimal("0.007"))
    assert order.filled_size == Decimal("0.007")
