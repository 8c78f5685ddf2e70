"""The pipeline round against a hot state fed by the deterministic simulator: envelopes, store, drops."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from alpha.pipeline import AlphaPipeline, PipelineConfig, Runtime
from alpha.simfeed import MemoryBroadcaster, SimFeed
from kernel.contracts.envelope import envelope_from_bytes
from markets.hotstate import MemoryHotState

RESULT_FIELDS = {
    "symbol",
    "score",
    "bias",
    "raw",
    "signal",
    "boosted",
    "decay_factor",
    "age_s",
    "btc_blend_applied",
    "btc_coefficient",
    "own_signal",
    "volatility_regime",
    "volatility_amplifier",
    "rr",
    "components",
    "ts",
    "signal_ts",
    "rolling_avg",
    "readings",
    "streak",
    "price",
    "rv_annual",
    "win_probability",
}


async def rounds(feed: SimFeed, pipe: AlphaPipeline, hot: MemoryHotState, n: int) -> None:
    for _ in range(n):
        feed.step()
        await hot.put_many(feed.snapshots())
        await pipe.run_once()
    await pipe.flush_store()


def make(feed: SimFeed, **kw: Any) -> tuple[AlphaPipeline, MemoryHotState, MemoryBroadcaster]:
    hot, bc = MemoryHotState(), MemoryBroadcaster()
    config = PipelineConfig(symbols=tuple(c.upper() for c in feed.coins), private=False, auto=False, **kw)
    pipe = AlphaPipeline(config=config, hot=hot, broadcaster=bc, runtime=Runtime(), clock=lambda: feed.now_ms / 1000)
    return pipe, hot, bc


def test_a_round_publishes_alpha_conviction_for_btc_and_eth_with_every_field() -> None:
    feed = SimFeed(seed=11, coins=("BTC", "ETH"))
    pipe, hot, bc = make(feed)
    asyncio.run(rounds(feed, pipe, hot, 12))
    conv = [envelope_from_bytes(t) for ch, _, et, t in bc.public if et == "alpha_conviction"]
    assert {e.symbol for e in conv} == {"BTC", "ETH"}
    assert all(ch == "public.alpha" for ch, *_ in bc.public)
    first_round = [e.symbol for e in conv[:2]]
    assert first_round == ["BTC", "ETH"]  # BTC first: alts blend its reference
    for e in conv[-2:]:
        assert set(e.data) >= RESULT_FIELDS, RESULT_FIELDS - set(e.data)
        assert e.source == "alpha" and 0 <= e.data["score"] <= 100
        assert set(e.data["components"]) == {"regime", "footprint", "volatility", "funding", "liquidation"}
        assert len(e.data["readings"]) == 10
        assert e.data["rolling_avg"] == pytest.approx(sum(r[1] for r in e.data["readings"]) / 10, abs=1e-3)
    eth = [e for e in conv if e.symbol == "ETH"][-1]
    assert eth.data["btc_blend_applied"] is True
    seqs = [e.seq for e in conv if e.symbol == "BTC"]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    gov = [orjson.loads(t) for _, _, et, t in bc.public if et == "gov_update"]
    assert {g["symbol"] for g in gov} == {"BTC", "ETH"}
    g0 = gov[-1]["data"]
    assert {"gates", "blocked_by", "streak", "reference", "general_blocker", "thresholds"} <= set(g0)
    assert g0["reference"]["note"].startswith("sized for a reference equity")


def test_the_streak_counts_consecutive_same_bias_readings() -> None:
    feed = SimFeed(seed=11, coins=("BTC",))
    pipe, hot, _ = make(feed)
    asyncio.run(rounds(feed, pipe, hot, 15))
    track = pipe.symbols["BTC"].track
    biases = [r[2] for r in track.readings]
    expected = 0
    for b in reversed(biases):
        if b != biases[-1]:
            break
        expected += 1
    assert track.streak_side == biases[-1]
    assert track.streak >= expected  # the window holds only the last 10 readings


def test_unchanged_inputs_are_not_rescored_every_round() -> None:
    feed = SimFeed(seed=3, coins=("BTC", "ETH"))
    pipe, hot, bc = make(feed)

    async def go() -> list[Any]:
        feed.step()
        await hot.put_many(feed.snapshots())
        first = await pipe.run_once()
        second = await pipe.run_once()  # same snapshots, < 1 s later
        return [first, second]

    first, second = asyncio.run(go())
    assert first.scored == 2 and second.scored == 0 and second.skipped_unchanged == 2


def test_an_overrunning_round_drops_stale_work_and_counts_it() -> None:
    feed = SimFeed(seed=5)
    # A zero budget: only the first symbol (BTC) of each round is scored, the rest are counted as dropped.
    pipe, hot, _ = make(feed, budget_fraction=0.0)
    asyncio.run(rounds(feed, pipe, hot, 2))
    assert pipe.totals.scored == 2 and pipe.totals.dropped == 2 * (len(feed.coins) - 1)
    assert "BTC" in pipe.symbols


@pytest.mark.django_db
def test_the_store_feeds_the_rest_endpoints_with_the_rolling_average(client: Any) -> None:
    feed = SimFeed(seed=11, coins=("BTC", "ETH"))
    pipe, hot, bc = make(feed)
    asyncio.run(rounds(feed, pipe, hot, 14))
    last_btc = [envelope_from_bytes(t) for _, s, et, t in bc.public if et == "alpha_conviction" and s == "BTC"][-1]
    from markets.hotstate import set_hot_state

    set_hot_state(hot)
    try:
        body = client.get("/alpha/conviction/BTC").json()
    finally:
        set_hot_state(None)
    scores = [r[1] for r in last_btc.data["readings"]]
    assert body["rolling_avg"] == pytest.approx(sum(scores) / len(scores), abs=1e-3)
    assert body["rolling_window"] == 10 and len(body["readings"]) == 10
    assert body["score"] == last_btc.data["score"] and body["ts"] == last_btc.ts_ms
    assert set(body["components"]["regime"]) == {"score", "weight", "contribution", "inputs"}
    assert {"age_ms", "stale", "signal_ts", "streak"} <= set(body)
    listing = client.get("/alpha/symbols").json()
    assert set(listing["symbols"]) == {"BTC", "ETH"}
    assert listing["symbols"]["ETH"]["rolling_avg"] is not None
