"""Alpha REST: codes for bad and unknown symbols, 503 without a reading, stale flag, OpenAPI schema."""

from __future__ import annotations

import time
from typing import Any

import pytest
from asgiref.sync import async_to_sync

from alpha import services
from kernel.clock import now_ms
from kernel.contracts.envelope import make_envelope
from kernel.contracts.snapshot import SymbolSnapshot
from markets.hotstate import MemoryHotState
from tests.factories import make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def hot(memory_hot_state: MemoryHotState) -> MemoryHotState:
    now = now_ms()
    for s in ("BTC", "ETH"):
        async_to_sync(memory_hot_state.put)(SymbolSnapshot(symbol=s, price="100", price_ts=now, updated_at=now))
    return memory_hot_state


def store(symbol: str, *, ts_ms: int, scores: list[float]) -> None:
    data = {
        "symbol": symbol,
        "score": scores[-1],
        "bias": "LONG",
        "ts": ts_ms,
        "signal_ts": ts_ms,
        "readings": [[ts_ms - 200 * i, s, "LONG"] for i, s in enumerate(scores)],
        "rolling_avg": sum(scores) / len(scores),
        "components": {},
        "streak": {"side": "LONG", "count": 3},
    }
    text = (
        make_envelope(event_type="alpha_conviction", symbol=symbol, ts_ms=ts_ms, source="alpha", seq=1, data=data)
        .encode()
        .decode()
    )
    services.conviction_store_many(envelopes={symbol: text}, index={symbol: {"score": scores[-1], "ts": ts_ms}})


def test_unknown_symbol_is_404_with_a_code(client: Any, hot: Any) -> None:
    resp = client.get("/alpha/conviction/NOPE")
    assert resp.status_code == 404 and resp.json()["code"] == "unknown_symbol"


def test_malformed_symbol_is_400_with_a_code(client: Any, hot: Any) -> None:
    resp = client.get("/alpha/conviction/B$TC")
    assert resp.status_code == 400 and resp.json()["code"] == "invalid_input"


def test_known_symbol_without_a_reading_is_503(client: Any, hot: Any) -> None:
    resp = client.get("/alpha/conviction/ETH")
    assert resp.status_code == 503 and resp.json()["code"] == "conviction_unavailable"


def test_an_old_reading_is_served_with_the_stale_flag(client: Any, hot: Any) -> None:
    store("BTC", ts_ms=int(time.time() * 1000) - 60_000, scores=[60, 62, 64])
    body = client.get("/alpha/conviction/btc").json()
    assert body["stale"] is True and body["age_ms"] >= 60_000
    assert body["rolling_avg"] == pytest.approx(62.0)
    assert client.get("/alpha/symbols").json()["symbols"]["BTC"]["stale"] is True


def test_a_fresh_reading_is_not_stale(client: Any, hot: Any) -> None:
    store("BTC", ts_ms=int(time.time() * 1000), scores=[50.0] * 10)
    body = client.get("/alpha/conviction/BTC").json()
    assert body["stale"] is False and body["rolling_window"] == 10


def test_endpoints_are_in_the_openapi_schema(client: Any) -> None:
    schema = client.get("/api/schema", HTTP_ACCEPT="application/json").content.decode()
    for path in ("/alpha/conviction/{symbol}", "/alpha/symbols", "/alpha/autonomous/trigger", "/alpha/auto-mode"):
        assert path in schema


def test_auto_mode_toggles_for_the_signed_in_user(client: Any) -> None:
    user = make_user()
    assert client.get("/alpha/auto-mode").status_code in (401, 403)
    client.force_login(user)
    assert client.get("/alpha/auto-mode").json()["auto_mode"] is False
    resp = client.post("/alpha/auto-mode", {"enabled": True}, content_type="application/json")
    assert resp.status_code == 200 and resp.json()["auto_mode"] is True
