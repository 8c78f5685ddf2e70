"""The overview and terminal pages render server-side from hot state: no queries, 404s, venue badge, stale markers."""

from __future__ import annotations

import json
import re

import pytest
from asgiref.sync import async_to_sync
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from kernel.clock import now_ms
from kernel.contracts.snapshot import SymbolSnapshot
from markets.hotstate import MemoryHotState

pytestmark = pytest.mark.django_db


@pytest.fixture
def hot(memory_hot_state: MemoryHotState) -> MemoryHotState:
    now = now_ms()
    fresh = SymbolSnapshot(
        symbol="BTC",
        price="97123.5",
        price_ts=now,
        book={"bids": [["97123", "1.5"]], "asks": [["97124", "2"]]},
        book_ts=now,
        oi_total=123456789.0,
        oi_ts=now,
        funding_annualized=10.95,
        funding_ts=now,
        change_24h=1.23,
        volume_24h=9_000_000_000.0,
        updated_at=now,
    )
    stale = SymbolSnapshot(
        symbol="DOGE", price="0.1234", price_ts=now - 60_000, volume_24h=1_000.0, updated_at=now - 60_000
    )
    async_to_sync(memory_hot_state.put_many)([fresh, stale])
    universe = [{"symbol": "BTC", "coin": "BTC"}, {"symbol": "DOGE", "coin": "DOGE"}]
    async_to_sync(memory_hot_state.set_universe)(universe)
    return memory_hot_state


def _page_config(html: str) -> dict:
    match = re.search(r'<script id="page-config" type="application/json">(.*?)</script>', html, re.S)
    assert match, "page-config JSON missing"
    return json.loads(match.group(1))


def _render(client: Client, url: str) -> tuple[int, str, int]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    return response.status_code, response.content.decode(), len(queries)


def test_overview_renders_hot_state_rows_without_queries(hot: MemoryHotState) -> None:
    status, html, queries = _render(Client(), "/")
    assert status == 200
    assert queries == 0  # everything comes from hot state: no ORM call from the view or its templates
    assert 'data-symbol="BTC"' in html and 'data-symbol="DOGE"' in html
    assert html.index('data-symbol="BTC"') < html.index('data-symbol="DOGE"')  # by 24 h volume
    assert "97123.5" in html and "1.23%" in html and "10.95%" in html
    assert _page_config(html)["symbols"][:2] == ["BTC", "DOGE"]


def test_overview_marks_stale_rows(hot: MemoryHotState) -> None:
    _, html, _ = _render(Client(), "/")
    rows = {m.group(1): m.group(0) for m in re.finditer(r'<tr data-symbol="(\w+)".*?</tr>', html, re.S)}
    assert "dot-stale" in rows["DOGE"] and "dot-ok" not in rows["DOGE"]
    assert "dot-ok" in rows["BTC"] and "dot-stale" not in rows["BTC"]


def test_terminal_renders_the_snapshot_without_queries(hot: MemoryHotState) -> None:
    status, html, queries = _render(Client(), "/terminal/btc")
    assert status == 200 and queries == 0
    assert "BTC-PERP" in html and 'id="last-price">97123.5<' in html
    config = _page_config(html)
    assert config["symbol"] == "BTC" and config["ws_path"] == "/ws"
    assert config["snapshot"]["price"] == "97123.5"
    assert config["snapshot"]["staleness"]["price"]["stale"] is False
    assert 'data-stale="price"' in html and 'data-stale="book"' in html  # the markers the page toggles


def test_terminal_ships_stale_flags_for_stale_data(hot: MemoryHotState) -> None:
    status, html, _ = _render(Client(), "/terminal/DOGE")
    assert status == 200
    staleness = _page_config(html)["snapshot"]["staleness"]
    assert staleness["price"]["stale"] is True and staleness["price"]["age_ms"] >= 59_000
    assert staleness["book"]["stale"] is True  # never seen: stale, not silently fresh
    assert 'class="stale-badge" data-stale="price">STALE<' in html


@pytest.mark.parametrize("url", ["/terminal/NOPECOIN", "/terminal/B%20TC!", "/terminal/" + "A" * 40])
def test_unknown_or_malformed_symbols_are_404(hot: MemoryHotState, url: str) -> None:
    assert Client().get(url).status_code == 404


def test_simulated_venue_badge_in_sim_mode(hot: MemoryHotState, settings) -> None:  # type: ignore[no-untyped-def]
    settings.VENUE_IS_SIMULATOR = True
    for url in ("/", "/terminal/BTC"):
        _, html, _ = _render(Client(), url)
        assert 'id="venue-badge"' in html and "SIMULATED VENUE" in html
    settings.VENUE_IS_SIMULATOR = False
    _, html, _ = _render(Client(), "/")
    assert "SIMULATED VENUE" not in html
