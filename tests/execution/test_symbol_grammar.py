"""Order-entry endpoints accept symbols in the one symbol grammar the rest of the system speaks (markets REST,
the envelope contract of every stream): a letter or digit first, then letters, digits and / _ - @ .

Found by tests/hypersentry/test_fuzz_api.py: POST /trading/order with symbol "-1" passed validation, the order was
recorded as rejected, and its order_update could not be published on the owner's private stream (EnvelopeError,
logged and dropped), so the user's open sockets never heard of it."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from rest_framework.test import APIClient

from execution.models import Order
from tests.factories import client_for, make_user

pytestmark = pytest.mark.django_db

ENDPOINTS = {
    "/trading/order": {"side": "buy", "type": "market", "size_usd": "20"},
    "/trading/preview": {"side": "buy", "type": "market", "size_usd": "20"},
    "/trading/positions/close": {},
    "/trading/protection": {"sl_price": "1"},
}


@pytest.fixture
def client() -> APIClient:
    return client_for(make_user())


@pytest.mark.parametrize("path", list(ENDPOINTS))
@pytest.mark.parametrize("symbol", ["-1", "_BTC", ":BTC", "dex:BTC", "/BTC", "@1"])
def test_it_refuses_symbols_outside_the_symbol_grammar(client: APIClient, path: str, symbol: str) -> None:
    body: dict[str, Any] = {"symbol": symbol, **ENDPOINTS[path]}
    response = client.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()))
    assert response.status_code == 400, response.content
    payload = response.json()
    assert payload["code"] == "invalid_input" and "symbol" in payload["fields"], payload
    assert not Order.objects.exists()


@pytest.mark.parametrize("symbol", ["BTC", "kPEPE", "1INCH", "BTC-PERP", "A/B", "X@1", "k.Y"])
def test_it_still_accepts_names_in_the_grammar(client: APIClient, symbol: str) -> None:
    response = client.post(
        "/trading/preview", {"symbol": symbol, "side": "buy", "type": "limit", "price": "1"}, format="json"
    )
    assert "symbol" not in (response.json().get("fields") or {}), response.content
