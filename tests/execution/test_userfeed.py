"""The venue user-feed worker: fills and order updates that happen outside the relay reach our state and the
owner's private stream."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from execution.models import Fill, Order, OrderState
from kernel.venue import exchange, meta

pytestmark = pytest.mark.django_db(transaction=True)


def _direct_order(user: Any, action_orders: list[dict[str, Any]]) -> Any:
    """Place an order at the venue with the user's agent, bypassing the relay (as another client would)."""
    from accounts.services import agent_signing_wallet

    wallet = agent_signing_wallet(user=user)
    action = {"type": "order", "orders": action_orders, "grouping": "na"}
    sig, nonce = exchange.sign_action(wallet, action)
    return exchange.post_signed(action, sig, nonce)


def _direct_cancel(user: Any, asset: int, oid: int) -> Any:
    from accounts.services import agent_signing_wallet

    wallet = agent_signing_wallet(user=user)
    action = {"type": "cancel", "cancels": [{"a": asset, "o": oid}]}
    sig, nonce = exchange.sign_action(wallet, action)
    return exchange.post_signed(action, sig, nonce)


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
    from execution.userfeed import UserFeedWorker
    from kernel.venue.rounding import round_price
    from tests.execution.answers import order_submit

    spec = await sync_to_async(_closing(meta.asset_spec))("ETH")
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


async def test_an_order_placed_outside_is_adopted_from_the_feed_at_once(trader: Any, hot: Any) -> None:
    """An open order we never sent (the venue's UI, another client) is adopted when its update arrives — not at the
    next reconciliation — and our own orders, stored with their cloid before they leave, are never adopted twice."""
    from execution import risk
    from execution.models import AuditRecord
    from execution.userfeed import UserFeedWorker
    from kernel.venue.rounding import round_price
    from tests.execution.answers import order_submit

    spec = await sync_to_async(_closing(meta.asset_spec))("ETH")
    snap = await sync_to_async(_closing(hot))("ETH")
    mid = (Decimal(snap.book["bids"][0][0]) + Decimal(snap.book["asks"][0][0])) / 2
    px = round_price(px=mid * Decimal("0.9"), spec=spec, mode="down")
    worker = UserFeedWorker()
    task = asyncio.create_task(worker.run())
    try:
        await _until(lambda: bool(worker.tasks))
        await asyncio.sleep(1.0)  # subscriptions acknowledged
        intent = risk.OrderIntent(symbol="ETH", is_buy=True, order_type="limit", size=Decimal("0.01"), price=px)
        status, _ = await sync_to_async(_closing(order_submit), thread_sensitive=False)(
            user=trader, key="feed-own-1", intent=intent
        )
        assert status == 201
        reply = await sync_to_async(_closing(_direct_order), thread_sensitive=False)(
            trader,
            [{"a": spec.asset_id, "b": True, "p": str(px), "s": "0.02", "r": False, "t": {"limit": {"tif": "Gtc"}}}],
        )
        oid = reply["response"]["data"]["statuses"][0]["resting"]["oid"]
        adopted = await _until(lambda: Order.objects.filter(venue_oid=oid).first(), timeout=5)
        assert adopted.source == "venue" and adopted.state == OrderState.RESTING and adopted.size == Decimal("0.02")
        await asyncio.sleep(1.0)
        kinds = await sync_to_async(
            _closing(
                lambda: [
                    r.data["kind"] for r in AuditRecord.objects.filter(user_id_ref=trader.pk, event="reconcile.fix")
                ]
            ),
            thread_sensitive=False,
        )()
        assert kinds == ["untracked_order"]  # ours was matched by its cloid, only the outside one adopted
        assert await sync_to_async(_closing(lambda: Order.objects.filter(user=trader).count()))() == 2
    finally:
        worker.stop()
        await asyncio.wait_for(task, 15)


async def test_on_each_connect_the_feed_reads_what_happened_while_it_was_down(trader: Any, hot: Any) -> None:
    """The venue pushes no open-order snapshot: an order placed outside while no feed ran is adopted as soon as the
    feed (re)connects, and only then is the user marked as streamed."""
    from execution.services.sync import user_feed_streaming
    from execution.userfeed import stream_user

    spec = await sync_to_async(_closing(meta.asset_spec))("ETH")
    snap = await sync_to_async(_closing(hot))("ETH")
    mid = (Decimal(snap.book["bids"][0][0]) + Decimal(snap.book["asks"][0][0])) / 2
    px = str(round(mid * Decimal("0.9")))
    reply = await sync_to_async(_closing(_direct_order), thread_sensitive=False)(
        trader, [{"a": spec.asset_id, "b": True, "p": px, "s": "0.01", "r": False, "t": {"limit": {"tif": "Gtc"}}}]
    )
    oid = reply["response"]["data"]["statuses"][0]["resting"]["oid"]
    assert not await sync_to_async(_closing(user_feed_streaming))(user_id=trader.pk)
    stop = asyncio.Event()
    task = asyncio.create_task(stream_user(trader.pk, trader.address, stop))
    try:
        adopted = await _until(lambda: Order.objects.filter(venue_oid=oid).first(), timeout=5)
        assert adopted.source == "venue" and adopted.state == OrderState.RESTING
        await _until(lambda: user_feed_streaming(user_id=trader.pk), timeout=5)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
