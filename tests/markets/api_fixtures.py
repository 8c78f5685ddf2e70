"""Fixtures for the REST tests: a simulator on its own thread, the hot state seeded through its interface."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
from rest_framework.test import APIClient

from hlsim import SimConfig, SimulatorThread
from kernel.contracts.snapshot import SymbolSnapshot
from markets.hotstate import get_hot_state, set_hot_state

BOOK = {"bids": [["67000.0", "1.5"], ["66999.0", "2.0"]], "asks": [["67001.0", "1.0"], ["67002.0", "3.0"]]}


def seed(*snaps: SymbolSnapshot, universe: list[dict[str, Any]] | None = None) -> None:
    async def _go() -> None:
        hot = get_hot_state()
        await hot.put_many(list(snaps))
        if universe is not None:
            await hot.set_universe(universe)
        if hasattr(hot, "aclose"):
            await hot.aclose()

    asyncio.run(_go())


def snapshot(symbol: str = "BTC", *, age_ms: int = 0) -> SymbolSnapshot:
    ts = int(time.time() * 1000) - age_ms
    return SymbolSnapshot(symbol=symbol, price="67000.5", price_ts=ts, book=BOOK, book_ts=ts, updated_at=ts)


UNIVERSE = [
    {"symbol": "BTC", "coin": "BTC", "sz_decimals": 5, "max_leverage": 40, "day_ntl_vlm": 1e9},
    {"symbol": "ETH", "coin": "ETH", "sz_decimals": 4, "max_leverage": 25, "day_ntl_vlm": 5e8},
    {"symbol": "KPEPE", "coin": "kPEPE", "sz_decimals": 0, "max_leverage": 10, "day_ntl_vlm": 1e7},
]


@pytest.fixture
def api() -> APIClient:
    set_hot_state(None)
    return APIClient()


@pytest.fixture
def sim_thread(settings: Any) -> Iterator[SimulatorThread]:
    thread = SimulatorThread(SimConfig(port=0, seed=5, symbols=["BTC", "ETH", "kPEPE"], control=True))
    sim = thread.start()
    settings.HYPERSENTRY_VENUE_URL = sim.base_url
    try:
        yield thread
    finally:
        thread.stop()
