# ruff: noqa: F811 - fixtures are imported from the *_fixtures modules
"""Simulator → ingest → hot state → broadcaster, end to end on a live in-process simulator."""

from __future__ import annotations

from kernel.contracts.snapshot import SymbolSnapshot, staleness
from markets.hotstate import MemoryHotState
from tests.markets.ingest_fixtures import make_ingestor, now_ms, running, sim, wait_for  # noqa: F401


async def _fresh_btc(hot: MemoryHotState) -> bool:
    snap = await hot.get("BTC")
    if snap is None or snap.book_ts is None or snap.price_ts is None:
        return False
    fresh = staleness(snap, now_ms())
    return not fresh["price"].stale and not fresh["book"].stale


async def test_btc_snapshot_is_fresh_within_two_seconds(sim):
    hot = MemoryHotState()
    ingestor, pub = make_ingestor(sim, hot=hot)
    async with running(ingestor):
        took = await wait_for(lambda: _fresh_btc(hot), 2.0, "a fresh BTC snapshot")
        await wait_for(lambda: pub.envelopes("BTC", "snapshot"), 2.0, "a published BTC agg_update")
    assert took < 2.0
    snap = await hot.get("BTC")
    assert isinstance(snap, SymbolSnapshot)
    assert snap.book["bids"] and snap.book["asks"]
    assert float(snap.book["bids"][0][0]) < float(snap.book["asks"][0][0])
