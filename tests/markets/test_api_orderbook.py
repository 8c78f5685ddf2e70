"""/trading/orderbook and friends: read-through from the hot state, repair from venue REST under a budget."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from accounts.models import Role
from tests.factories import make_user, symbol_snapshot
from tests.markets.seed import UNIVERSE, seed


def _rest_calls(sim_thread, kind: str) -> int:
    return sim_thread.call(lambda: sim_thread.sim.stats)["rest_calls"].get(kind, 0)


def test_it_serves_a_fresh_hot_book_without_asking_the_venue(api, sim_thread):
    seed(symbol_snapshot("BTC"), universe=UNIVERSE)
    body = api.get("/trading/orderbook?coin=btc&depth=1").json()
    assert body["source"] == "aggregator" and body["stale"] is False
    assert body["book"] == {"bids": [["67000.0", "1.5"]], "asks": [["67001.0", "1.0"]]}
    assert _rest_calls(sim_thread, "info:l2Book") == 0


def test_it_repairs_a_stale_book_from_rest_once_per_ttl(api, sim_thread):
    seed(symbol_snapshot("BTC", age_ms=20_000), universe=UNIVERSE)
    first = api.get("/trading/orderbook?coin=BTC&depth=40").json()
    assert first["source"] == "rest" and first["stale"] is False
    assert first["book"]["bids"] and len(first["book"]["bids"]) <= 40
    assert float(first["book"]["bids"][0][0]) < float(first["book"]["asks"][0][0])
    for _ in range(5):
        assert api.get("/trading/orderbook?coin=BTC").status_code == 200
    assert _rest_calls(sim_thread, "info:l2Book") == 1  # TTL cache + floor


def test_kpepe_is_requested_with_the_venue_case(api, sim_thread):
    seed(universe=UNIVERSE)
    body = api.get("/trading/orderbook?coin=kpepe").json()
    assert body["coin"] == "kPEPE" and body["source"] == "rest" and body["book"]["asks"]


@pytest.mark.django_db
def test_a_429_storm_stays_within_budget_and_serves_stale(api, sim_thread, settings):
    settings.AGGREGATOR_UPSTREAM_BUDGET_ORDERBOOK_PER_MIN = 30  # 5 per 10 s window
    settings.AGGREGATOR_ORDERBOOK_UPSTREAM_MIN_SEC = 0  # no floor: only budget and cooldown protect the venue
    settings.AGGREGATOR_ORDERBOOK_CACHE_SEC = 0
    seed(symbol_snapshot("BTC", age_ms=30_000), symbol_snapshot("ETH", age_ms=30_000), universe=UNIVERSE)
    sim_thread.call(sim_thread.sim.faults.rate_limit, 30.0)

    def hit(i: int) -> tuple[int, dict]:
        coin = "BTC" if i % 2 else "ETH"
        response = api.get(f"/trading/orderbook?coin={coin}")
        return response.status_code, response.json()

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(hit, range(60)))
    assert all(code == 200 for code, _ in results), results[:3]
    assert all(body["stale"] is True and body["book"]["bids"] for _, body in results)
    stats = sim_thread.call(lambda: sim_thread.sim.stats)
    # The first 429 starts a cooldown: the storm reaches the venue a handful of times at most.
    assert stats["rate_limited"] <= 5, stats
    operator = make_user(role=Role.OPERATOR)
    api.force_authenticate(operator)  # the counters are in the staff view of the status
    status = api.get("/aggregator/status").json()
    assert status["rate_limited_429"]["orderbook"] >= 1
    assert status["upstream"]["orderbook"]["cooldown_sec"] > 0


def test_budget_caps_upstream_calls_without_429(api, sim_thread, settings):
    settings.AGGREGATOR_UPSTREAM_BUDGET_ORDERBOOK_PER_MIN = 18  # 3 per 10 s window
    settings.AGGREGATOR_ORDERBOOK_UPSTREAM_MIN_SEC = 0
    settings.AGGREGATOR_ORDERBOOK_CACHE_SEC = 0
    seed(symbol_snapshot("BTC", age_ms=30_000), universe=UNIVERSE)
    codes = [api.get("/trading/orderbook?coin=BTC").status_code for _ in range(20)]
    assert set(codes) == {200}
    assert _rest_calls(sim_thread, "info:l2Book") <= 6  # at most two windows touched


def test_prices_tokens_candles_and_snapshot(api, sim_thread):
    seed(symbol_snapshot("BTC"), universe=UNIVERSE)
    prices = api.get("/trading/prices").json()
    assert prices["prices"]["BTC"] == "67000.5" and prices["source"] == "aggregator"
    tokens = api.get("/trading/tokens").json()
    assert [t["symbol"] for t in tokens["tokens"]] == ["BTC", "ETH", "kPEPE"]
    candles = api.get("/trading/candles?coin=ETH&interval=15m").json()
    assert candles["source"] == "rest" and candles["candles"] and candles["candles"][0]["i"] == "15m"
    snap = api.get("/markets/btc/snapshot").json()
    assert snap["symbol"] == "BTC" and snap["staleness"]["price"]["stale"] is False
    symbols = api.get("/aggregator/symbols?mode=volume&limit=2").json()
    assert [s["symbol"] for s in symbols["symbols"]] == ["BTC", "ETH"]


def test_prices_fall_back_to_rest_when_ingest_is_not_running(api, sim_thread):
    body = api.get("/trading/prices?coins=BTC,kPEPE").json()
    assert body["source"] == "rest" and set(body["prices"]) == {"BTC", "kPEPE"}
