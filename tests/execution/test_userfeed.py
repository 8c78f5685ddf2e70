"""The venue user-feed worker: fills and order updates that happen outside the relay reach our state and the
owner's private stream."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from execution import venue
from execution.models import Fill, Order, OrderState

pytestmark = pytest.mark.django_db(transaction=True)


def _direct_order(user: Any, action_orders: list[dict[str, Any]]) -> Any:
    """Place an order at the venue with the user's agent, bypassing the relay (as another client would)."""
    from accounts.services import agent_signing_wallet

    wallet = agent_signing_wallet(user=user)
    action = {"type": "order", "orders": action_orders, "grouping": "na"}
    sig, nonce = venue.sign_action(wallet, action)
    return venue.post_signed(action, sig, nonce)


def _direct_cancel(user: Any, asset: int, oid: int) -> Any:
    from accounts.services import agent_signing_wallet

    wallet = agent_signing_wallet(user=user)
    action = {"type": "cancel", "cancels": [{"a": asset, "o": oid}]}
    sig, nonce = venue.sign_action(wallet, action)
    return venue.post_signed(action, sig, nonce)


def _closing(fn: Any) -> Any:
    from execution.userfeed import _closing as closing

    return closing(fn)


async def _until(predicate: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await sync_to_async(_closing(predicate), thread_sensitive=False)()
        if value:
            return value
        await asyncio.sleep(0.2)
    raise AssertionError("condition not met in time")


async def test_fills_and_cancels_from_the_venue_feed_update_state(trader: Any, hot: Any) -> None:
    from execution import risk
    from execution.rounding import round_price
    from execution.services.relay import order_submit
    from execution.userfeed import UserFeedWorker

    spec = await sync_to_async(_closing(venue.asset_spec))("ETH")
    snap = await sync_to_async(_closing(hot))("ETH")
    mid = (Decimal(snap.book["bids"][0][0]) + Decimal(snap.book["asks"][0][0])) / 2
    px = round_price(px=mid * Decimal("0.9"), spec=spec, mode="down")
    intent = risk.OrderIntent(symbol="ETH", is_buy=True, order_type="limit", size=Decimal("0.01"), price=px)
    status, body = await sync_to_async(_closing(order_submit), thread_sensitive=False)(
        user=trader, key="feed-key-1", intent=intent
    )
    assert status == 201
    oid = body["order"]["venue_oid"]

    worker = UserFeedWorker()
    task = asyncio.create_task(worker.run())
    try:
        await _until(lambda: bool(worker.tasks))
        await asyncio.sleep(1.0)  # subscriptions acknowledged
        await sync_to_async(_closing(_direct_cancel), thread_sensitive=False)(trader, spec.asset_id, oid)
        await _until(lambda: Order.objects.get(venue_oid=oid).state == OrderState.CANCELLED)

        hi = round_price(px=mid * Decimal("1.01"), spec=spec, mode="up")
        await sync_to_async(_closing(_direct_order), thread_sensitive=False)(
            trader,
            [{"a": spec.asset_id, "b": True, "p": str(hi), "s": "0.01", "r": False, "t": {"limit": {"tif": "Ioc"}}}],
        )
        fill = await _until(lambda: Fill.objects.filter(user=trader).first())
        assert fill.symbol == "ETH" and fill.size == Decimal("0.01")
        await _until(lambda: trader.positions.filter(symbol="ETH").exists())
    finally:
        worker.stop()
        await asyncio.wait_for(task, 15)
