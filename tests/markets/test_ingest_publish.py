"""The flush: conflation keys of the published frames and the envelope's staleness block."""

from __future__ import annotations

import orjson
import pytest

from hypersentry.contracts.snapshot import SymbolSnapshot, staleness_dict
from markets.hotstate import MemoryHotState
from markets.ingest import CANDLE_CONFLATION_KEY, IngestConfig, Ingestor, wire_staleness
from markets.symbol_state import SymbolState


class KeyedPublisher:
    def __init__(self) -> None:
        self.frames: list[tuple[str, dict]] = []

    async def publish(self, *, channel: str, symbol: str, text: str, event_type: str = "") -> None:
        self.frames.append((event_type, orjson.loads(text)))


def _ingestor(pub: KeyedPublisher) -> Ingestor:
    ing = Ingestor(
        config=IngestConfig.from_settings(venue_url="http://127.0.0.1:9"), hot_state=MemoryHotState(), publisher=pub
    )
    ing.symbols.add("BTC")
    ing.states["BTC"] = SymbolState(symbol="BTC", coin="BTC", sigma=8.0)
    ing.live = {"BTC"}
    ing.health.state = "connected"
    return ing


async def test_candle_frames_are_conflated_apart_from_snapshots():
    pub = KeyedPublisher()
    ing = _ingestor(pub)
    trade = {"coin": "BTC", "side": "B", "px": "100.5", "sz": "2", "time": 1_700_000_000_000, "tid": 7}
    ing.handle_raw(orjson.dumps({"channel": "trades", "data": [trade]}))
    await ing.flush()
    keys = {env["data"]["kind"]: key for key, env in pub.frames}
    assert keys == {"snapshot": "agg_update", "candle": CANDLE_CONFLATION_KEY}
    assert CANDLE_CONFLATION_KEY == "agg_update:candle"
    assert all(env["event_type"] == "agg_update" for _, env in pub.frames)
    snapshot = next(env["data"] for _, env in pub.frames if env["data"]["kind"] == "snapshot")
    assert snapshot["trades_batch"] == [{"px": "100.5", "sz": "2", "side": "B", "time": 1_700_000_000_000, "tid": 7}]
    assert snapshot["candles_live"]["1m"]["o"] == 100.5 and snapshot["cvd_venue"] == pytest.approx(201.0)


def test_wire_staleness_matches_the_contract():
    snap = SymbolSnapshot(symbol="BTC", price_ts=1_000, book_ts=9_000, trades_ts=20_000, oi_ts=None, cvd_ts=5_000)
    fields = {name: getattr(snap, name) for name in SymbolSnapshot.__dataclass_fields__}
    for now in (0, 5_000, 12_000, 40_000):
        assert wire_staleness(fields, now) == staleness_dict(snap, now)
