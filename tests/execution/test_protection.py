"""Trailing stops: the worker moves the venue stop-loss trigger behind the best price (cancel + new)."""

from __future__ import annotations

import time
import uuid
from decimal import Decimal
from typing import Any

import pytest
from asgiref.sync import async_to_sync

from execution import risk
from execution.models import Order, OrderState, PositionProtection
from execution.services.protection import trailing_run
from tests.execution.answers import order_submit, protection_set
from tests.execution.orders import trigger_prices, triggers_at_each_cancel

pytestmark = pytest.mark.django_db(transaction=True)


def _shift(symbol: str, factor: Decimal, *, book: bool = False, mark: bool = False) -> None:
    """Move the hot state's book and/or mark price by `factor` (what ingest does from the venue feed)."""
    from markets.hotstate import get_hot_state

    state = get_hot_state()
    snap = state.get_sync(symbol)
    assert snap is not None
    now = int(time.time() * 1000)
    if book:
        snap.book = {s: [[str(Decimal(px) * factor), sz] for px, sz in lv] for s, lv in snap.book.items()}
        snap.book_ts = now
    if mark:
        snap.mark_px = str(Decimal(snap.mark_px) * factor)
    snap.funding_ts = now
    async_to_sync(state.put)(snap)


def _long(trader: Any, hot: Any) -> Decimal:
    """A $150 long and the hot state's mark set to the book's mid."""
    from markets.hotstate import get_hot_state

    status, body = order_submit(
        user=trader,
        key=f"t-{uuid.uuid4()}",
        intent=risk.OrderIntent(symbol="BTC", is_buy=True, order_type="market", size_usd=Decimal(150)),
    )
    assert status == 201, body
    snap = hot("BTC")
    mid = (Decimal(snap.book["bids"][0][0]) + Decimal(snap.book["asks"][0][0])) / 2
    snap.mark_px, snap.funding_ts = str(mid), int(time.time() * 1000)
    async_to_sync(get_hot_state().put)(snap)
    return mid


def test_a_trailing_stop_follows_the_mark_up_and_never_down(trader: Any, hot: Any, monkeypatch: Any) -> None:
    from execution.services import protection

    _long(trader, hot)
    status, body = protection_set(
        user=trader, key=f"p-{uuid.uuid4()}", symbol="BTC", tp_price=None, sl_price=None, trailing_pct=Decimal(1)
    )
    assert status == 201, body
    assert body["trailing"]["reference"] == "mark"
    prot = PositionProtection.objects.get(user=trader, symbol="BTC", active=True)
    first_stop, first_order = prot.stop_price, prot.stop_order
    assert first_stop is not None and first_order is not None and first_order.state == OrderState.RESTING
    assert first_order.order_type == "sl" and first_order.reduce_only

    _shift("BTC", Decimal("1.005"), book=True)  # the mid moves, the mark does not: the stop stays
    trailing_run()
    prot.refresh_from_db()
    assert prot.stop_price == first_stop

    seen_at_cancel = triggers_at_each_cancel(monkeypatch, protection, trader)
    _shift("BTC", Decimal("1.005"), mark=True)
    trailing_run()
    prot.refresh_from_db()
    assert prot.stop_price > first_stop
    assert seen_at_cancel == [2]  # the new stop stood before the old one was cancelled: never unprotected
    first_order.refresh_from_db()
    assert first_order.state == OrderState.CANCELLED
    assert prot.stop_order.state == OrderState.RESTING and prot.stop_order.trigger_price == prot.stop_price
    assert trigger_prices(trader) == [prot.stop_price]

    raised = prot.stop_price
    _shift("BTC", Decimal("0.99"), mark=True)  # the mark falls: the stop stays
    trailing_run()
    prot.refresh_from_db()
    assert prot.stop_price == raised
    assert Order.objects.filter(user=trader, order_type="sl", state=OrderState.RESTING).count() == 1
