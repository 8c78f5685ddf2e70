"""Trailing stops: the worker moves the venue stop-loss trigger behind the best price (cancel + new)."""

from __future__ import annotations

import time
import uuid
from decimal import Decimal
from typing import Any

import pytest
from asgiref.sync import async_to_sync

from execution import risk, venue
from execution.models import Order, OrderState, PositionProtection
from execution.services.protection import protection_set, trailing_run
from execution.services.relay import order_submit

pytestmark = pytest.mark.django_db(transaction=True)


def _shift_book(symbol: str, factor: Decimal) -> None:
    from markets.hotstate import get_hot_state

    state = get_hot_state()
    snap = state.get_sync(symbol)
    assert snap is not None
    snap.book = {side: [[str(Decimal(px) * factor), sz] for px, sz in levels] for side, levels in snap.book.items()}
    snap.book_ts = int(time.time() * 1000)
    async_to_sync(state.put)(snap)


def test_a_trailing_stop_follows_the_price_up_and_never_down(trader: Any, hot: Any) -> None:
    status, _ = order_submit(
        user=trader,
        key=f"t-{uuid.uuid4()}",
        intent=risk.OrderIntent(symbol="BTC", is_buy=True, order_type="market", size_usd=Decimal(150)),
    )
    assert status == 201
    status, body = protection_set(
        user=trader, key=f"p-{uuid.uuid4()}", symbol="BTC", tp_price=None, sl_price=None, trailing_pct=Decimal(1)
    )
    assert status == 201, body
    prot = PositionProtection.objects.get(user=trader, symbol="BTC", active=True)
    first_stop, first_order = prot.stop_price, prot.stop_order
    assert first_stop is not None and first_order is not None and first_order.state == OrderState.RESTING
    assert first_order.order_type == "sl" and first_order.reduce_only

    _shift_book("BTC", Decimal("1.005"))
    trailing_run()
    prot.refresh_from_db()
    assert prot.stop_price > first_stop
    first_order.refresh_from_db()
    assert first_order.state == OrderState.CANCELLED  # modify = cancel + new
    assert prot.stop_order.state == OrderState.RESTING and prot.stop_order.trigger_price == prot.stop_price
    venue_open = venue.info({"type": "frontendOpenOrders", "user": trader.address, "dex": ""})
    assert [Decimal(o["triggerPx"]) for o in venue_open if o.get("isTrigger")] == [prot.stop_price]

    raised = prot.stop_price
    _shift_book("BTC", Decimal("0.99"))  # price falls: the stop stays
    trailing_run()
    prot.refresh_from_db()
    assert prot.stop_price == raised
    assert Order.objects.filter(user=trader, order_type="sl", state=OrderState.RESTING).count() == 1
