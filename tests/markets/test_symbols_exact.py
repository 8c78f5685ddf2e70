"""Symbols are the venue's names, case included: every symbol /trading/tokens lists is accepted by the market
endpoints and the terminal page as written, and resolves with execution's `asset_spec` (what POST /trading/order
uses). Against the simulator, which lists kPEPE as the real venue does."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client

from hlsim import SimulatorThread
from kernel.venue import meta
from kernel.venue.market_data import get_upstream
from markets import selectors
from markets.universe import fetch_universe
from tests.factories import symbol_snapshot
from tests.markets.seed import seed

pytestmark = pytest.mark.django_db


@pytest.fixture
def venue_meta(sim_thread: SimulatorThread) -> Iterator[None]:
    """execution's meta cache is keyed by URL, but a previous test's simulator may have had the same port."""
    meta.clear_meta_cache()
    yield
    meta.clear_meta_cache()


def _ingest_universe() -> list[dict[str, Any]]:
    """The universe exactly as ingest stores it in the hot state."""
    return [t.as_dict() for t in fetch_universe(get_upstream(), ttl_sec=0)]


def _listed(api: Any) -> list[str]:
    response = api.get("/trading/tokens")
    assert response.status_code == 200, response.content
    return [t["symbol"] for t in response.json()["tokens"]]


def _page_config(html: str) -> dict[str, Any]:
    match = re.search(r'<script id="page-config" type="application/json">(.*?)</script>', html, re.S)
    assert match, "page-config JSON missing"
    return json.loads(match.group(1))


def _assert_accepted_everywhere(api: Any, symbol: str) -> None:
    assert meta.asset_spec(symbol) is not None, f"POST /trading/order would refuse {symbol}"
    book = api.get(f"/trading/orderbook?coin={symbol}")
    assert book.status_code == 200 and book.json()["coin"] == symbol, book.content
    candles = api.get(f"/trading/candles?coin={symbol}&interval=1h")
    assert candles.status_code == 200 and candles.json()["coin"] == symbol, candles.content
    prices = api.get(f"/trading/prices?coins={symbol}")
    assert prices.status_code == 200 and set(prices.json()["prices"]) == {symbol}, prices.content
    page = Client().get(f"/terminal/{symbol}")
    assert page.status_code == 200
    config = _page_config(page.content.decode())
    assert config["symbol"] == symbol and config["stream_symbol"] == selectors.stream_key(symbol=symbol)
    assert f'data-symbol="{symbol}"' in page.content.decode()  # the order ticket sends this


@pytest.mark.parametrize("universe_from", ["ingest", "venue_rest"])
def test_every_listed_symbol_is_accepted_as_listed(api, sim_thread, venue_meta, universe_from: str) -> None:
    if universe_from == "ingest":
        universe = _ingest_universe()
        seed(*(symbol_snapshot(selectors.stream_key(symbol=t["coin"])) for t in universe), universe=universe)
    symbols = _listed(api)
    assert "kPEPE" in symbols and "KPEPE" not in symbols
    for symbol in symbols:
        _assert_accepted_everywhere(api, symbol)
    assert {t["symbol"] for t in api.get("/trading/tokens").json()["tokens"]} == {
        a["name"] for a in meta.venue_meta().meta["universe"]
    }
    assert set(api.get("/trading/prices").json()["prices"]) <= set(symbols)


def test_another_case_maps_to_the_venue_name(api, sim_thread, venue_meta) -> None:
    universe = _ingest_universe()
    seed(symbol_snapshot("KPEPE"), universe=universe)
    for written in ("KPEPE", "kpepe", "Kpepe"):
        assert api.get(f"/trading/orderbook?coin={written}").json()["coin"] == "kPEPE"
        assert api.get(f"/trading/candles?coin={written}&interval=1h").json()["coin"] == "kPEPE"
        assert set(api.get(f"/trading/prices?coins={written}").json()["prices"]) == {"kPEPE"}
        assert api.get(f"/markets/{written}/snapshot").json()["symbol"] == "kPEPE"
        page = Client().get(f"/terminal/{written}")
        assert page.status_code == 200 and _page_config(page.content.decode())["symbol"] == "kPEPE"
    assert meta.asset_spec("KPEPE") is None  # why the page must not hand the ticket the upper case
    rows = api.get("/aggregator/symbols?mode=name").json()["symbols"]
    assert [r["symbol"] for r in rows] == ["BTC", "ETH", "kPEPE"]
    assert all(r["symbol"] == r["coin"] for r in rows)


def test_unlisted_symbols_are_refused_in_any_case(api, sim_thread, venue_meta) -> None:
    seed(universe=_ingest_universe())
    for url, field in (
        ("/trading/orderbook?coin=DOGE", "coin"),
        ("/trading/candles?coin=doge", "coin"),
        ("/trading/prices?coins=BTC,DOGE", "coins"),
    ):
        response = api.get(url)
        assert response.status_code == 400 and response.json()["message"].startswith(f"{field}:"), response.content
    assert api.get("/markets/DOGE/snapshot").status_code == 404
    assert Client().get("/terminal/doge").status_code == 404


def test_the_overview_lists_venue_names_and_streams_by_key(api, sim_thread) -> None:
    universe = _ingest_universe()
    seed(*(symbol_snapshot(selectors.stream_key(symbol=t["coin"])) for t in universe), universe=universe)
    html = Client().get("/").content.decode()
    assert 'data-symbol="kPEPE" data-stream="KPEPE" data-href="/terminal/kPEPE"' in html
    assert '<a href="/terminal/kPEPE">kPEPE</a>' in html
    assert "KPEPE" in _page_config(html)["symbols"]  # what /ws envelopes carry and subscriptions take
