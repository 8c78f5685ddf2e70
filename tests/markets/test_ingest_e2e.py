"""Simulator → ingest → hot state → broadcaster, end to end on a live in-process simulator."""

from __future__ import annotations

from kernel.contracts.snapshot import SymbolSnapshot
from markets.hotstate import MemoryHotState
from tests.markets.ingest import fresh, make_ingestor, running, wait_for


async def test_btc_snapshot_is_fresh_within_two_seconds(sim):
    hot = MemoryHotState()
    ingestor, pub = make_ingestor(sim, hot=hot)
    async with running(ingestor):
        took = await wait_for(lambda: fresh(hot), 2.0, "a fresh BTC snapshot")
        await wait_for(lambda: pub.envelopes("BTC", "snapshot"), 2.0, "a published BTC agg_update")
    assert took < 2.0
    snap = await hot.get("BTC")
    assert isinstance(snap, SymbolSnapshot)
    assert snap.book["bids"] and snap.book["asks"]
    assert float(snap.book["bids"][0][0]) < float(snap.book["asks"][0][0])
