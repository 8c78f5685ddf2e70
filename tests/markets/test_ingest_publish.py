"""The flush: conflation keys of the published frames and the envelope's staleness block."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from kernel.contracts.snapshot import SymbolSnapshot, staleness_dict
from markets.ingest import CANDLE_CONFLATION_KEY, wire_staleness
from tests.markets.ingest import offline_ingestor


class KeyedPublisher:
    def __init__(self) -> None:
        self.frames: list[tuple[str, dict]] = []

    async def publish(self, *, channel: str, symbol: str, text: str, event_type: str = "") -> None:
        self.frames.append((event_type, orjson.loads(text)))

    async def publish_many(self, frames: Any) -> None:
        for channel, symbol, text, event_type in frames:
            await self.publish(channel=channel, symbol=symbol, text=text, event_type=event_type)


async def test_candle_frames_are_conflated_apart_from_snapshots():
    pub = KeyedPublisher()
    ing = offline_ingestor(pub)
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


class TextPublisher:
    def __init__(self) -> None:
        self.texts: list[str] = []

    async def publish(self, *, channel: str, symbol: str, text: str, event_type: str = "") -> None:
        if event_type == "agg_update":
            self.texts.append(text)

    async def publish_many(self, frames: Any) -> None:
        for channel, symbol, text, event_type in frames:
            await self.publish(channel=channel, symbol=symbol, text=text, event_type=event_type)


async def test_pre_encoded_parts_give_the_same_envelope_bytes():
    """Trades, book and candles are encoded once per change (orjson.Fragment): the text equals dumps_text of the
    plain envelope, on a flush after a change and on one without (the cached parts reused)."""
    from kernel.contracts.envelope import dumps_text
    from markets.symbol_state import current_candles, snapshot_fields

    pub = TextPublisher()
    ing = offline_ingestor(pub)
    st = ing.states["BTC"]
    t0 = 1_700_000_000_000
    book = {
        "coin": "BTC",
        "time": t0,
        "levels": [[{"px": "100", "sz": "1.5", "n": 1}], [{"px": "101", "sz": "2", "n": 1}]],
    }
    for step in range(4):
        if step != 2:  # step 2: nothing new, every cached part is reused
            trades = [
                {"coin": "BTC", "side": "BA"[k % 2], "px": f"100.{k}", "sz": "1", "time": t0 + step, "tid": k}
                for k in range(step * 15, step * 15 + 15)
            ]
            ing.handle_raw(orjson.dumps({"channel": "trades", "data": trades}), recv_ms=t0 + 10)
            ing.handle_raw(orjson.dumps({"channel": "l2Book", "data": book}), recv_ms=t0 + 10)
        batch = list(st.batch)
        ing._last_republish = 0.0  # republish even when unchanged
        seq = ing.seq.last("hyperliquid:agg_update")
        await ing.flush(now_ms=t0 + 100)
        fields = snapshot_fields(
            st, now_ms=t0 + 100, weights=ing.config.weights, stale_reason=ing._stale_reason(st, t0 + 100)
        )
        data = dict(fields, trades=fields["trades"][:20], kind="snapshot", source="hyperliquid")
        data["staleness"] = wire_staleness(data, t0 + 100)
        data.update(trades_batch=batch, trades_gap=0, candles_live=current_candles(st))
        env = {
            "event_type": "agg_update",
            "symbol": "BTC",
            "ts_ms": data["updated_at"],
            "source": "hyperliquid",
            "seq": seq + 1,
            "data": data,
        }
        assert pub.texts[-1] == dumps_text(env)
        assert len(orjson.loads(pub.texts[-1])["data"]["trades"]) == min(20, 15 * (step + 1 - (step > 2)))


def test_future_trade_time_is_clamped_on_the_fast_path():
    from markets import normalize

    rejections: list = []
    raw = [
        {"coin": "BTC", "side": "B", "px": "1", "sz": "1", "time": 1_700_000_000_500, "tid": 1},
        {"coin": "ETH", "side": "A", "px": "2", "sz": "1", "time": 1_700_000_000_001, "tid": 2},
        {"coin": "NOPE", "side": "A", "px": "2", "sz": "1", "time": 1_700_000_000_001, "tid": 3},
    ]
    groups = normalize.parse_trades(
        raw, recv_ms=1_700_000_000_100, symbol_of={"BTC": "BTC", "ETH": "ETH"}, rejections=rejections
    )
    assert groups["BTC"][0][3] == 1_700_000_000_100 and groups["BTC"][0][4]["time"] == 1_700_000_000_100
    assert groups["ETH"][0][3] == 1_700_000_000_001
    assert [r.reason for r in rejections] == ["malformed"]
