"""Reconnects, stalls, on-demand symbols and the split topology, against a live in-process simulator."""

from __future__ import annotations

import os

from hlsim import SimConfig, Simulator
from kernel.clock import now_ms
from kernel.contracts.envelope import envelope_from_dict
from kernel.contracts.snapshot import SymbolSnapshot, staleness
from markets.hotstate import MemoryHotState, RedisHotState
from tests.markets.ingest import SYMBOLS, fresh, make_ingestor, running, wait_for


def _subs(simulator: Simulator) -> list[tuple]:
    return [key for conn in simulator.hub.conns for key in conn.subs]


async def test_envelopes_carry_every_field(sim):
    hot = MemoryHotState()
    ingestor, pub = make_ingestor(sim, hot=hot)
    async with running(ingestor):
        await wait_for(lambda: len(pub.envelopes("BTC", "snapshot")) >= 3, 3.0, "three BTC snapshots")
        await wait_for(lambda: pub.envelopes("BTC", "candle"), 5.0, "a BTC candle update")
    envs = pub.envelopes("BTC", "snapshot")
    for env in envs:
        envelope_from_dict(env)  # the canonical envelope validates
        assert env["event_type"] == "agg_update" and env["source"] == "hyperliquid" and env["symbol"] == "BTC"
    seqs = [e["seq"] for e in pub.envelopes()]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    data = envs[-1]["data"]
    expected = set(SymbolSnapshot.__dataclass_fields__) | {
        "kind",
        "source",
        "staleness",
        "trades_batch",
        "trades_gap",
        "candles_live",
    }
    assert expected <= set(data)
    assert len(data["book"]["bids"]) <= 20 and data["book"]["bids"]
    assert data["oi_source"] == "hyperliquid" and data["oi_total"] == data["oi_hl"] > 0
    assert data["cvd_source"] == "hyperliquid (venue only; no spot venues configured)"
    assert abs(data["funding_annualized"] - data["funding_rate"] * 24 * 365) < 1e-12
    assert data["next_funding_ms"] % 3_600_000 == 0 and data["next_funding_ms"] > now_ms() - 1000
    assert data["mark_px"] and data["oracle_px"] and data["volume_24h"] is not None
    assert set(data["staleness"]) >= {"price", "book", "trades", "oi", "funding", "cvd"}
    assert data["staleness"]["book"]["stale"] is False
    candle = pub.envelopes("BTC", "candle")[-1]["data"]
    assert set(candle["candles"]) == {"1m", "5m", "15m", "1h"}
    # kPEPE: our symbol is upper case, the venue coin keeps its case for subscriptions.
    assert ingestor.symbols.coin("KPEPE") == "kPEPE"


async def test_it_reconnects_after_drops_without_duplicate_subscriptions(sim):
    hot = MemoryHotState()
    ingestor, pub = make_ingestor(sim, hot=hot)
    async with running(ingestor):
        await wait_for(lambda: fresh(hot), 3.0, "fresh BTC")
        await wait_for(lambda: len(_subs(sim)) == 1 + 3 * 4, 3.0, "13 subscriptions")
        for _ in range(3):
            sim.faults.drop_ws()
            await wait_for(lambda: ingestor.health.state != "connected", 2.0, "the drop to be seen")
            took = await wait_for(
                lambda: ingestor.health.state == "connected" and len(_subs(sim)) == 13, 5.0, "resubscribed"
            )
            assert took < 5.0
        await wait_for(lambda: fresh(hot), 5.0, "fresh BTC after reconnects")
        await ingestor.housekeeping()
        status = await hot.get_status()
        assert len(sim.hub.conns) == 1
        subs = _subs(sim)
    assert status["reconnects"] >= 3
    assert len(subs) == len(set(subs)) == 13
    assert status["sources"]["hyperliquid"]["state"] in ("connected", "degraded")


async def test_an_outage_turns_data_stale_and_ingest_recovers_within_5s():
    simulator = Simulator(SimConfig(port=0, seed=4, symbols=SYMBOLS))
    await simulator.start()
    port = simulator.port
    hot = MemoryHotState()
    ingestor, pub = make_ingestor(simulator, hot=hot, reconnect_max_sec=1.0)
    async with running(ingestor):
        await wait_for(lambda: fresh(hot), 3.0, "fresh BTC")
        await simulator.stop()
        await wait_for(lambda: ingestor.health.state == "disconnected", 3.0, "disconnected")

        async def stale_published() -> bool:
            snap = await hot.get("BTC")
            return snap is not None and snap.stale_reason is not None and staleness(snap, now_ms())["book"].stale

        await wait_for(stale_published, 8.0, "a stale, flagged BTC snapshot")

        def stale_envelope() -> bool:
            data = pub.envelopes("BTC", "snapshot")[-1]["data"]
            return data["staleness"]["book"]["stale"] is True

        await wait_for(stale_envelope, 2.0, "a published envelope flagged stale")
        last = pub.envelopes("BTC", "snapshot")[-1]["data"]
        assert last["stale_reason"].startswith("venue") and last["staleness"]["book"]["stale"] is True
        await ingestor.housekeeping()
        assert (await hot.get_status())["sources"]["hyperliquid"]["state"] == "disconnected"
        restarted = Simulator(SimConfig(port=port, seed=4, symbols=SYMBOLS))
        await restarted.start()
        try:
            took = await wait_for(lambda: fresh(hot), 5.0, "fresh BTC after the outage")
            assert took < 5.0
            await ingestor.housekeeping()
            status = await hot.get_status()
            assert status["sources"]["hyperliquid"]["connected"] is True and status["reconnects"] >= 1
        finally:
            stop_task = restarted.stop
    await stop_task()


async def test_a_silent_stream_is_detected_and_the_socket_recycled(sim):
    ingestor, _ = make_ingestor(sim, stall_sec=1.0)
    async with running(ingestor):
        await wait_for(lambda: ingestor.health.state == "connected" and ingestor.subscribed, 3.0, "connected")
        sim.faults.stall(2.5)
        await wait_for(lambda: ingestor.health.stalls >= 1, 4.0, "a stall detection")
        await wait_for(lambda: fresh(ingestor.hot), 6.0, "fresh data after the stall")


async def test_on_demand_symbols_are_subscribed_and_released(sim):
    hot = MemoryHotState()
    ingestor, _ = make_ingestor(sim, hot=hot, top_n=2)
    async with running(ingestor):
        await wait_for(lambda: len(ingestor.subscribed) == 2, 3.0, "top 2 subscribed")
        extra = next(s for s in ("KPEPE", "DOGE", "AVAX", "SOL") if s not in ingestor.subscribed)
        coin = ingestor.symbols.coin(extra)
        await hot.set_demand(extra, "gw-1", 3, 30)
        await wait_for(lambda: ("l2Book", coin) in {k[:2] for k in _subs(sim)}, 4.0, f"{coin} subscribed")
        await wait_for(lambda: fresh(hot, extra), 3.0, f"fresh {extra}")
        await ingestor.housekeeping()
        assert extra in (await hot.get_status())["subscriptions"]["on_demand"]
        await hot.set_demand(extra, "gw-1", 0, 30)
        await wait_for(lambda: ("l2Book", coin) not in {k[:2] for k in _subs(sim)}, 4.0, f"{coin} released")
    assert len(_subs(sim)) == 0 or all(k[0] != "l2Book" or k[1] != coin for k in _subs(sim))


async def test_split_topology_reader_sees_what_ingest_wrote(sim):
    url = os.environ["REDIS_URL"]
    writer = RedisHotState(url)
    ingestor, _ = make_ingestor(sim, hot=writer)
    async with running(ingestor):
        reader = RedisHotState(url)  # another process would build exactly this
        took = await wait_for(lambda: fresh(reader), 3.0, "fresh BTC through Redis")
        await ingestor.housekeeping()
        sync_snap = reader.get_sync("BTC")
        status = reader.get_status_sync()
        many = await reader.get_many(["BTC", "ETH"])
        symbols = await reader.all_symbols()
        await reader.aclose()
    await writer.aclose()
    assert took < 3.0
    assert sync_snap is not None and sync_snap.book["bids"]
    assert status is not None and status["running"] is True and "BTC" in status["subscriptions"]["symbols"]
    assert set(many) == {"BTC", "ETH"} and "BTC" in symbols
