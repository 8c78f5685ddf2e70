"""Every market REST endpoint answers bad parameters with 400 naming the field."""

from __future__ import annotations

import pytest

from tests.markets.seed import UNIVERSE, seed

BAD = [
    ("/aggregator/status?foo=1", "foo"),
    ("/aggregator/symbols?mode=bogus", "mode"),
    ("/aggregator/symbols?limit=0", "limit"),
    ("/aggregator/symbols?limit=abc", "limit"),
    ("/trading/orderbook", "coin"),
    ("/trading/orderbook?coin=BT$C", "coin"),
    ("/trading/orderbook?coin=BTC&depth=0", "depth"),
    ("/trading/orderbook?coin=BTC&depth=x", "depth"),
    ("/trading/orderbook?coin=NOPE", "coin"),
    ("/trading/prices?coins=BTC,,ETH", "coins"),
    ("/trading/tokens?limit=-1", "limit"),
    ("/trading/candles", "coin"),
    ("/trading/candles?coin=BTC&interval=7m", "interval"),
    ("/trading/candles?coin=BTC&start=10&end=5", "start"),
    ("/trading/candles?coin=BTC&start=abc", "start"),
    ("/trading/candles?coin=BTC&end=-5", "end"),
    ("/markets/B$TC/snapshot", "symbol"),
]


@pytest.mark.parametrize(("url", "field"), BAD)
def test_it_rejects_bad_parameters_naming_the_field(api, url, field):
    seed(universe=UNIVERSE)
    response = api.get(url)
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "invalid_input"
    assert body["message"].startswith(f"{field}:"), body


def test_unknown_snapshot_is_404(api):
    seed(universe=UNIVERSE)
    response = api.get("/markets/DOGE/snapshot")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_endpoints_are_in_the_openapi_schema(api):
    response = api.get("/api/schema", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    text = response.content.decode()
    for path in (
        "/aggregator/status",
        "/aggregator/symbols",
        "/trading/orderbook",
        "/trading/prices",
        "/trading/tokens",
        "/trading/candles",
        "/markets/{symbol}/snapshot",
    ):
        assert path in text, path
