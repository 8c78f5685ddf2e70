"""Modify checks the replacement before it touches the original and never leaves a position less protected;
TP/SL prices are checked for sign and side; protection follows the position; the kill switch lets risk go down."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import pytest
from rest_framework.test import APIClient

from execution.models import Order, OrderState, PositionProtection, TradingControls
from execution.services.controls import controls_get
from execution.services.killswitch import killswitch_engage
from kernel.venue import client as vc
from kernel.venue import meta
from kernel.venue.rounding import round_price
from tests.execution.orders import below_mid, mid, trigger_prices, triggers_at_each_cancel, venue_triggers
from tests.factories import SYMBOL, client_for

pytestmark = pytest.mark.django_db(transaction=True)


def post(c: APIClient, path: str, body: dict[str, Any]) -> Any:
    return c.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()))


def px(value: Decimal) -> str:
    return str(round_price(px=value, spec=meta.asset_spec(SYMBOL)))


def long_with_stop(c: APIClient, hot: Any) -> dict[str, Any]:
    m = mid(hot)
    r = post(c, "/trading/order", {"symbol": SYMBOL, "side": "buy", "type": "market", "size_usd": "120"})
    assert r.status_code == 201, r.json()
    r = post(c, "/trading/protection", {"symbol": SYMBOL, "sl_price": px(m * Decimal("0.95"))})
    assert r.status_code == 201, r.json()
    (stop,) = r.json()["orders"]
    assert stop["type"] == "sl" and stop["state"] == "resting"
    return stop


def test_modifying_a_stop_with_a_trigger_on_the_wrong_side_keeps_the_stop(trader: Any, hot: Any) -> None:
    c = client_for(trader)
    stop = long_with_stop(c, hot)
    r = post(c, "/trading/modify", {"order_id": stop["id"], "trigger_price": px(mid(hot) * Decimal("1.02"))})
    assert r.status_code == 422 and r.json()["code"] == "invalid_tpsl_price", r.json()
    assert Order.objects.get(pk=stop["id"]).state == OrderState.RESTING
    assert trigger_prices(trader) == [Decimal(stop["trigger_price"])]


def test_modifying_a_stop_places_the_new_stop_before_cancelling_the_old(
    trader: Any, hot: Any, monkeypatch: Any
) -> None:
    from execution.services import modify

    c = client_for(trader)
    stop = long_with_stop(c, hot)
    seen = triggers_at_each_cancel(monkeypatch, modify, trader)
    new_trigger = px(mid(hot) * Decimal("0.97"))
    r = post(c, "/trading/modify", {"order_id": stop["id"], "trigger_price": new_trigger})
    assert r.status_code == 201, r.json()
    new = r.json()["order"]
    assert new["type"] == "sl" and new["reduce_only"] and Decimal(new["trigger_price"]) == Decimal(new_trigger)
    assert new["replaces_id"] == stop["id"]
    assert seen == [2]  # both stood at the moment the old one was cancelled
    assert Order.objects.get(pk=stop["id"]).state == OrderState.CANCELLED
    assert trigger_prices(trader) == [Decimal(new_trigger)]


def test_modifying_a_stop_while_the_kill_switch_is_engaged_is_allowed(trader: Any, hot: Any) -> None:
    c = client_for(trader)
    stop = long_with_stop(c, hot)
    killswitch_engage(actor=None, actor_label="test", reason="drill")
    assert [o["oid"] for o in venue_triggers(trader)], "the sweep must leave protective stops in place"
    r = post(c, "/trading/modify", {"order_id": stop["id"], "trigger_price": px(mid(hot) * Decimal("0.96"))})
    assert r.status_code == 201, r.json()
    assert len(venue_triggers(trader)) == 1


def test_modifying_an_entry_order_under_the_kill_switch_is_refused_before_anything_is_cancelled(
    trader: Any, hot: Any
) -> None:
    c = client_for(trader)
    bid = below_mid(hot, Decimal("0.95"))
    r = post(
        c, "/trading/order", {"symbol": SYMBOL, "side": "buy", "type": "limit", "price": str(bid), "size": "0.002"}
    )
    entry = r.json()["order"]
    assert entry["state"] == "resting"
    # The flag alone (the sweep would cancel the entry at the venue, which is not what is tested here).
    controls_get()
    TradingControls.objects.filter(pk=1).update(kill_switch_engaged=True)
    lower = below_mid(hot, Decimal("0.94"))
    r = post(c, "/trading/modify", {"order_id": entry["id"], "price": str(lower)})
    assert r.status_code == 422 and r.json()["code"] == "kill_switch_engaged", r.json()
    assert Order.objects.get(pk=entry["id"]).state == OrderState.RESTING
    assert any(
        o["oid"] == entry["venue_oid"]
        for o in vc.info({"type": "frontendOpenOrders", "user": trader.address, "dex": ""}, priority="cancel")
    )


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"tp_price": "-5"}, 400, "invalid_input"),
        ({"sl_price": "0"}, 400, "invalid_input"),
        ({"tp_factor": "0.98"}, 422, "invalid_tpsl_price"),  # take-profit below the price of a long
        ({"sl_factor": "1.02"}, 422, "invalid_tpsl_price"),  # a stop above: it would fill at once
    ],
)
def test_tp_and_sl_prices_are_checked_for_sign_and_side(
    trader: Any, hot: Any, body: dict[str, str], status: int, code: str
) -> None:
    c = client_for(trader)
    assert (
        post(c, "/trading/order", {"symbol": SYMBOL, "side": "buy", "type": "market", "size_usd": "120"}).status_code
        == 201
    )
    m = mid(hot)
    req: dict[str, Any] = {"symbol": SYMBOL}
    for name, value in body.items():
        if name.endswith("_factor"):
            req[name.replace("_factor", "_price")] = px(m * Decimal(value))
        else:
            req[name] = value
    r = post(c, "/trading/protection", req)
    assert (r.status_code, r.json()["code"]) == (status, code), r.json()
    assert venue_triggers(trader) == []


def test_attached_tp_and_sl_on_an_entry_are_checked_against_the_entry_price(trader: Any, hot: Any) -> None:
    c = client_for(trader)
    m = mid(hot)
    bad = {"symbol": SYMBOL, "side": "buy", "type": "market", "size_usd": "120", "sl_price": px(m * Decimal("1.03"))}
    r = post(c, "/trading/order", bad)
    assert r.status_code == 422 and r.json()["code"] == "invalid_tpsl_price", r.json()
    ok = {**bad, "sl_price": px(m * Decimal("0.95")), "tp_price": px(m * Decimal("1.05"))}
    r = post(c, "/trading/order", ok)
    assert r.status_code == 201, r.json()
    assert {ch["type"] for ch in r.json()["children"]} == {"tp", "sl"}


def test_closing_a_position_from_its_row_cancels_its_stops_and_trailing_stop(trader: Any, hot: Any) -> None:
    c = client_for(trader)
    long_with_stop(c, hot)
    r = post(c, "/trading/protection", {"symbol": SYMBOL, "trailing_pct": "2"})
    assert r.status_code == 201, r.json()
    assert len(venue_triggers(trader)) >= 2
    r = post(c, "/trading/positions/close", {"symbol": SYMBOL})
    assert r.status_code == 201 and r.json()["order"]["state"] == "filled", r.json()
    assert venue_triggers(trader) == [], "a leftover stop would act on the next position"
    assert not Order.objects.filter(user=trader, order_type__in=("tp", "sl"), state=OrderState.RESTING).exists()
    assert not PositionProtection.objects.filter(user=trader, active=True).exists()


def test_the_kill_switch_lets_a_trader_close_but_not_open(trader: Any, hot: Any) -> None:
    c = client_for(trader)
    assert (
        post(c, "/trading/order", {"symbol": SYMBOL, "side": "buy", "type": "market", "size_usd": "120"}).status_code
        == 201
    )
    killswitch_engage(actor=None, actor_label="test", reason="drill")
    r = post(c, "/trading/order", {"symbol": SYMBOL, "side": "buy", "type": "market", "size_usd": "50"})
    assert r.status_code == 422 and r.json()["code"] == "kill_switch_engaged"
    r = post(c, "/trading/positions/close", {"symbol": SYMBOL})
    assert r.status_code == 201 and r.json()["order"]["state"] == "filled", r.json()
    state = vc.info({"type": "clearinghouseState", "user": trader.address, "dex": ""}, priority="cancel")
    assert state["assetPositions"] == []
