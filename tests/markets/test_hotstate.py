"""Both hot-state implementations behave the same: snapshots, candles, status, demand with TTL."""

from __future__ import annotations

import asyncio
import os

import pytest

from kernel.contracts.snapshot import SymbolSnapshot
from markets.hotstate import MemoryHotState, RedisHotState


@pytest.fixture(params=["memory", "redis"])
async def hot(request):
    state = MemoryHotState() if request.param == "memory" else RedisHotState(os.environ["REDIS_URL"])
    yield state
    if isinstance(state, RedisHotState):
        await state.aclose()


async def test_snapshots_round_trip(hot):
    snap = SymbolSnapshot(
        symbol="KPEPE",
        price="0.0098",
        price_ts=1_700_000_000_000,
        book={"bids": [["0.0097", "10"]], "asks": [["0.0099", "5"]]},
        book_ts=1_700_000_000_000,
    )
    await hot.put_many([snap, SymbolSnapshot(symbol="BTC", price="1")])
    assert await hot.get("kpepe") == snap
    assert hot.get_sync("KPEPE") == snap
    assert set(await hot.get_many(["BTC", "KPEPE", "NOPE"])) == {"BTC", "KPEPE"}
    assert await hot.all_symbols() == ["BTC", "KPEPE"] == hot.all_symbols_sync()


async def test_candles_are_kept_by_open_time(hot):
    await hot.put_candles("BTC", "1m", [{"t": 120_000, "c": 2}, {"t": 60_000, "c": 1}])
    await hot.put_candles("BTC", "1m", [{"t": 120_000, "c": 3}])
    assert [c["c"] for c in hot.get_candles_sync("BTC", "1m")] == [1, 3]
    assert hot.get_candles_sync("BTC", "5m") == []


async def test_status_and_universe(hot):
    assert hot.get_status_sync() is None
    await hot.set_status({"running": True, "updated_at_ms": 1}, ttl_sec=30)
    assert hot.get_status_sync()["running"] is True and (await hot.get_status())["updated_at_ms"] == 1
    await hot.set_universe([{"symbol": "BTC", "coin": "BTC"}])
    assert hot.get_universe_sync() == [{"symbol": "BTC", "coin": "BTC"}]


async def test_demand_sums_processes_and_expires(hot):
    await hot.set_demand("btc", "gw-1", 2, 30)
    await hot.set_demand("BTC", "gw-2", 1, 30)
    await hot.set_demand("ETH", "gw-1", 1, 0.2)
    assert await hot.demanded_symbols() == {"BTC": 3, "ETH": 1}
    await asyncio.sleep(0.3)
    await hot.set_demand("BTC", "gw-2", 0, 30)
    assert await hot.demanded_symbols() == {"BTC": 2}
