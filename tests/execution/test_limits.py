"""Limits hold against resting orders and against orders racing each other: the projection counts every live order
of the user, and checks + order row are serialised per user (PostgreSQL advisory lock) — never across users."""

from __future__ import annotations

import functools
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from rest_framework.test import APIClient

from execution.models import Order, OrderState, RiskLimits
from execution.services.locks import user_serialized
from kernel.venue import client as vc
from kernel.venue import meta
from kernel.venue.rounding import round_price
from tests.concurrency import run_in_threads
from tests.factories import approved_trader, client_for

pytestmark = pytest.mark.django_db(transaction=True)


def order(c: APIClient, body: dict[str, Any]) -> Any:
    return c.post("/trading/order", body, format="json", HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()))


def best_bid(hot: Any, symbol: str) -> str:
    """A post-only price just under the bid: it rests even if the book ticks down before the order lands."""
    bid = Decimal(str(hot(symbol).book["bids"][0][0]))
    return str(round_price(px=bid * Decimal("0.999"), spec=meta.asset_spec(symbol), mode="down"))


def venue_notional(user: Any) -> dict[str, Decimal]:
    state = vc.info({"type": "clearinghouseState", "user": user.address, "dex": ""}, priority="cancel")
    return {
        ap["position"]["coin"]: abs(Decimal(ap["position"]["positionValue"]))
        for ap in state["assetPositions"]
        if Decimal(ap["position"]["szi"]) != 0
    }


def resting_notional(user: Any) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for o in Order.objects.filter(user=user, state__in=(OrderState.RESTING, OrderState.PARTIALLY_FILLED)):
        out[o.symbol] = out.get(o.symbol, Decimal(0)) + (o.size - o.filled_size) * (o.price or 0)
    return out


def set_limits(user: Any, **fields: Any) -> None:
    from execution.services.controls import DEFAULT_LIMITS

    RiskLimits.objects.create(user=user, environment="sim", **{**DEFAULT_LIMITS["sim"], **fields})


def test_resting_post_only_orders_count_against_the_position_limit(trader: Any, hot: Any) -> None:
    """Ten $900 post-only buys at the bid: the first rests, the other nine would make the position $9,000."""
    c = client_for(trader)
    answers = []
    for _ in range(10):
        bid = best_bid(hot, "BTC")
        answers.append(
            order(c, {"symbol": "BTC", "side": "buy", "type": "limit", "price": bid, "size_usd": "900", "tif": "Alo"})
        )
    states = [(r.status_code, r.json().get("code") or r.json()["order"]["state"]) for r in answers]
    assert states[0] == (201, "resting"), states
    assert all(s == (422, "max_position_exceeded") for s in states[1:]), states
    assert sum(resting_notional(trader).values()) <= Decimal(1000)


def test_resting_orders_in_other_symbols_count_against_total_exposure(trader: Any, hot: Any) -> None:
    set_limits(trader, max_position_usd=Decimal(5000), max_total_exposure_usd=Decimal(2000))
    c = client_for(trader)
    codes = []
    for symbol in ("BTC", "ETH", "SOL"):
        bid = best_bid(hot, symbol)
        r = order(c, {"symbol": symbol, "side": "buy", "type": "limit", "price": bid, "size_usd": "900", "tif": "Alo"})
        codes.append(r.json().get("code") or r.json()["order"]["state"])
    assert codes == ["resting", "resting", "max_exposure_exceeded"]


def test_a_sell_against_resting_buys_cannot_hide_a_flip_beyond_the_limit(trader: Any, hot: Any) -> None:
    """A resting sell that would take a flat position short counts on the short side, independently of buys."""
    c = client_for(trader)
    bid = Decimal(best_bid(hot, "BTC"))
    ask = str(
        round_price(
            px=Decimal(str(hot("BTC").book["asks"][0][0])) * Decimal("1.001"), spec=meta.asset_spec("BTC"), mode="up"
        )
    )
    assert (
        order(
            c, {"symbol": "BTC", "side": "buy", "type": "limit", "price": str(bid), "size_usd": "900", "tif": "Alo"}
        ).status_code
        == 201
    )
    r = order(c, {"symbol": "BTC", "side": "sell", "type": "limit", "price": ask, "size_usd": "900", "tif": "Alo"})
    assert r.status_code == 201, r.json()  # worst case short $900: within the limit
    r = order(c, {"symbol": "BTC", "side": "sell", "type": "limit", "price": ask, "size_usd": "900", "tif": "Alo"})
    assert r.json()["code"] == "max_position_exceeded"  # worst case short $1,800


@pytest.mark.slow
def test_twenty_four_parallel_market_orders_never_exceed_the_position_limit(trader: Any, hot: Any) -> None:
    clients = [client_for(trader) for _ in range(24)]
    barrier = threading.Barrier(24)

    def fire(c: APIClient) -> tuple[int, str]:
        try:
            barrier.wait(timeout=30)
            r = order(c, {"symbol": "BTC", "side": "buy", "type": "market", "size_usd": "900"})
            body = r.json()
            return r.status_code, body.get("code") or body["order"]["state"]
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=24) as pool:
        results = list(pool.map(fire, clients))
    filled = [r for r in results if r == (201, "filled")]
    assert len(filled) == 1, results
    assert all(r[0] < 500 for r in results), results
    assert {r[1] for r in results if r not in filled} == {"max_position_exceeded"}, results
    assert venue_notional(trader).get("BTC", Decimal(0)) <= Decimal(1000) * Decimal("1.02")  # price moves only


@pytest.mark.slow
def test_parallel_resting_and_market_orders_across_symbols_never_exceed_total_exposure(trader: Any, hot: Any) -> None:
    set_limits(trader, max_position_usd=Decimal(5000), max_total_exposure_usd=Decimal(2000))
    bodies = []
    for i in range(21):
        symbol = ("BTC", "ETH", "SOL")[i % 3]
        if i % 2:
            bodies.append({"symbol": symbol, "side": "buy", "type": "market", "size_usd": "300"})
        else:
            bid = best_bid(hot, symbol)
            bodies.append(
                {"symbol": symbol, "side": "buy", "type": "limit", "price": bid, "size_usd": "300", "tif": "Alo"}
            )
    clients = [client_for(trader) for _ in bodies]
    barrier = threading.Barrier(len(bodies))

    def fire(args: tuple[APIClient, dict[str, Any]]) -> int:
        try:
            barrier.wait(timeout=30)
            return int(order(args[0], args[1]).status_code)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
        statuses = list(pool.map(fire, zip(clients, bodies, strict=True)))
    assert all(s < 500 for s in statuses), statuses
    accepted = sum(1 for s in statuses if s == 201)
    assert 1 <= accepted <= 6, statuses  # $300 each under a $2,000 total
    worst = sum(venue_notional(trader).values()) + sum(resting_notional(trader).values())
    assert worst <= Decimal(2000) * Decimal("1.02"), worst


def test_one_users_lock_never_blocks_another_user(trader: Any, hot: Any) -> None:
    other = approved_trader()
    held, release = threading.Event(), threading.Event()
    done_a: list[float] = []

    def hold_a() -> None:
        try:
            with user_serialized(trader.pk):
                held.set()
                release.wait(20)
        finally:
            connection.close()

    def order_a() -> None:
        try:
            r = order(client_for(trader), {"symbol": "BTC", "side": "buy", "type": "market", "size_usd": "50"})
            assert r.status_code == 201
            done_a.append(time.monotonic())
        finally:
            connection.close()

    holder = threading.Thread(target=hold_a)
    holder.start()
    assert held.wait(10)
    waiter = threading.Thread(target=order_a)
    waiter.start()
    t0 = time.monotonic()
    r = order(client_for(other), {"symbol": "BTC", "side": "buy", "type": "market", "size_usd": "50"})
    assert r.status_code == 201, r.json()
    assert time.monotonic() - t0 < 5
    time.sleep(0.5)
    assert done_a == []  # the same user's order waits for its lock
    released_at = time.monotonic()
    release.set()
    holder.join(10)
    waiter.join(20)
    assert done_a and done_a[0] >= released_at


def test_the_lock_path_for_sqlite_serialises_one_user_in_process(monkeypatch: Any) -> None:
    """The one-process topology (SQLite) uses a per-user lock in the process; different users stay parallel."""
    monkeypatch.setattr(connection, "vendor", "sqlite")
    inside: list[int] = []
    overlap: list[bool] = []
    guard = threading.Lock()

    def work(user_id: int) -> None:
        with user_serialized(user_id):
            with guard:
                inside.append(user_id)
                overlap.append(inside.count(user_id) > 1)
            time.sleep(0.05)
            with guard:
                inside.remove(user_id)

    t0 = time.monotonic()
    run_in_threads([functools.partial(work, uid) for uid in (1, 1, 1, 1, 2, 2)])
    assert not any(overlap)
    assert time.monotonic() - t0 < 0.05 * 4 + 0.5  # user 2 ran beside user 1, not after it


def test_with_the_venue_unreadable_fills_since_the_last_known_state_still_count(
    trader: Any, hot: Any, monkeypatch: Any
) -> None:
    """The last known account state misses what filled after it: those fills count in size AND in notional."""
    set_limits(trader, max_position_usd=Decimal(5000), max_total_exposure_usd=Decimal(1000))
    c = client_for(trader)
    assert order(c, {"symbol": "BTC", "side": "buy", "type": "market", "size_usd": "600"}).status_code == 201
    real_info = vc.info

    def no_account(body: dict[str, Any], **kw: Any) -> Any:
        if body.get("type") == "clearinghouseState":
            raise vc.VenueTimeout("account reads time out")
        return real_info(body, **kw)

    monkeypatch.setattr(vc, "info", no_account)
    second = order(c, {"symbol": "ETH", "side": "buy", "type": "market", "size_usd": "300"})
    assert second.status_code == 201, second.json()  # $900 with the last known BTC position
    third = order(c, {"symbol": "SOL", "side": "buy", "type": "market", "size_usd": "300"})
    assert third.json()["code"] == "max_exposure_exceeded", third.json()  # $1,200 with the ETH fill counted
