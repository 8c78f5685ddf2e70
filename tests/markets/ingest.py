"""Helpers for the ingest tests: ingestors on the in-process simulator (the `sim` fixture of tests/markets/conftest.py)
or offline, a recording publisher, polling."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson

from hlsim import Simulator
from kernel.clock import now_ms
from kernel.contracts.snapshot import staleness
from kernel.venue.market_data import Upstream
from markets.hotstate import HotState, MemoryHotState
from markets.ingest import IngestConfig, Ingestor
from markets.symbol_state import SymbolState

SYMBOLS = ["BTC", "ETH", "SOL", "kPEPE", "DOGE", "AVAX"]


class RecordingPublisher:
    """A memory broadcaster: keeps every published text, decoded lazily."""

    def __init__(self) -> None:
        self.published: list[tuple[str, str, str]] = []

    async def publish(self, *, channel: str, symbol: str, text: str, event_type: str = "") -> None:
        self.published.append((channel, symbol, text))

    async def publish_many(self, frames: Any) -> None:
        for channel, symbol, text, event_type in frames:
            await self.publish(channel=channel, symbol=symbol, text=text, event_type=event_type)

    def envelopes(self, symbol: str | None = None, kind: str | None = None) -> list[dict[str, Any]]:
        out = [orjson.loads(t) for _, s, t in self.published if symbol is None or s == symbol]
        return [e for e in out if kind is None or e["data"].get("kind") == kind]


def offline_ingestor(publisher: Any = None) -> Ingestor:
    """An ingestor with no venue behind it (frames are fed with handle_raw) and BTC live, connected."""
    ing = Ingestor(
        config=IngestConfig.from_settings(venue_url="http://127.0.0.1:9"),
        hot_state=MemoryHotState(),
        publisher=publisher or RecordingPublisher(),
    )
    ing.symbols.add("BTC")
    ing.states["BTC"] = SymbolState(symbol="BTC", coin="BTC", sigma=8.0)
    ing.live = {"BTC"}
    ing.health.state = "connected"
    return ing


def make_ingestor(
    sim: Simulator, *, hot: HotState | None = None, publisher: Any = None, **overrides: Any
) -> tuple[Ingestor, RecordingPublisher]:
    pub = publisher or RecordingPublisher()
    values: dict[str, Any] = {
        "venue_url": sim.base_url,
        "venue_name": "sim",
        "top_n": 4,
        "batch_size": 3,
        "batch_pause_sec": 0.01,
        "stall_sec": 2.0,
        "publish_interval_ms": 100,
    }
    values.update(overrides)
    ingestor = Ingestor(
        config=IngestConfig.from_settings(**values),
        hot_state=hot if hot is not None else MemoryHotState(),
        publisher=pub,
        upstream=Upstream(sim.base_url),
    )
    return ingestor, pub


@contextlib.asynccontextmanager
async def running(ingestor: Ingestor) -> AsyncIterator[asyncio.Event]:
    stop = asyncio.Event()
    task = asyncio.create_task(ingestor.run(stop))
    try:
        yield stop
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> float:
    """Poll an (a)sync predicate; returns the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return time.monotonic() - started
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


async def fresh(hot: HotState, symbol: str = "BTC") -> bool:
    """The hot state holds a snapshot of `symbol` with a fresh price and book."""
    snap = await hot.get(symbol)
    if snap is None:
        return False
    f = staleness(snap, now_ms())
    return not f["price"].stale and not f["book"].stale
