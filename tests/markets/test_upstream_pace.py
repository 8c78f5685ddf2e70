"""Nothing to serve because of pace (our venue budget, the venue's 429) is a 429 with Retry-After, never a 5xx;
only a venue that is down is a 503."""

from __future__ import annotations

import pytest

from tests.markets.seed import UNIVERSE, seed


@pytest.mark.django_db
def test_candles_with_the_budget_spent_and_nothing_cached_answer_429_with_retry_after(api, sim_thread, settings):
    settings.AGGREGATOR_UPSTREAM_BUDGET_CANDLES_PER_MIN = 6  # one call per 10 s window
    seed(universe=UNIVERSE)
    first = api.get("/trading/candles?coin=BTC&interval=1h&start=1700000000000&end=1700100000000")
    assert first.status_code == 200, first.json()
    second = api.get("/trading/candles?coin=BTC&interval=1h&start=1690000000000&end=1690100000000")
    assert second.status_code == 429, second.json()
    assert second.json()["code"] == "upstream_rate_limited" and int(second["Retry-After"]) >= 1


@pytest.mark.django_db
def test_a_venue_429_storm_with_nothing_cached_is_a_429_not_a_503(api, sim_thread, settings):
    seed(universe=UNIVERSE)
    sim_thread.call(sim_thread.sim.faults.rate_limit, 10.0)
    response = api.get("/trading/candles?coin=ETH&interval=1h&start=1700000000000&end=1700100000000")
    assert response.status_code == 429, response.json()
    assert "Retry-After" in response


@pytest.mark.django_db
def test_a_venue_that_is_down_with_nothing_cached_is_a_503(api, settings):
    from deploy.servers import free_port

    settings.HYPERSENTRY_VENUE_URL = f"http://127.0.0.1:{free_port()}"
    seed(universe=UNIVERSE)
    response = api.get("/trading/candles?coin=ETH&interval=1h&start=1700000000000&end=1700100000000")
    assert response.status_code == 503 and response.json()["code"] == "upstream_unavailable", response.json()
