"""End to end against the simulator and PostgreSQL: rest → cancel, IOC fill → position/PnL = venue's,
fills on the owner's private stream only."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import pytest
from rest_framework.test import APIClient

from execution.models import AuditRecord, Fill, Order, OrderState, PositionSnapshot
from kernel.venue import client as vc
from kernel.venue import meta
from kernel.venue.rounding import round_price
from tests.execution.orders import below_mid, mid
from tests.factories import SYMBOL, approved_trader, client_for

pytestmark = pytest.mark.django_db(transaction=True)


def post(c: APIClient, path: str, body: dict[str, Any], key: str | None = None) -> Any:
    headers = {"HTTP_IDEMPOTENCY_KEY": key or str(uuid.uuid4())}
    return c.post(path, body, format="json", **headers)


def private_events(user: Any) -> list[dict[str, Any]]:
    from execution.services.events import private_events_since

    return private_events_since(user_id=user.pk, since=0).events


def test_limit_order_rests_then_cancels_and_everything_is_audited(trader: Any, hot: Any) -> None:
    c = client_for(trader)
    px = below_mid(hot, Decimal("0.97"))
    resp = post(
        c, "/trading/order", {"symbol": SYMBOL, "side": "buy", "type": "limit", "size": "0.002", "price": str(px)}
    )
    assert resp.status_code == 201, resp.json()
    order = resp.json()["order"]
    assert order["state"] == "resting" and order["venue_oid"]
    open_orders = vc.info({"type": "frontendOpenOrders", "user": trader.address, "dex": ""})
    assert [o["oid"] for o in open_orders] == [order["venue_oid"]]
    assert open_orders[0]["cloid"] == order["cloid"]

    resp = post(c, "/trading/cancel", {"order_id": order["id"]})
    assert resp.status_code == 200, resp.json()
    assert resp.json()["order"]["state"] == "cancelled"
    assert vc.info({"type": "frontendOpenOrders", "user": trader.address, "dex": ""}) == []
    events = set(AuditRecord.objects.filter(correlation_id=order["correlation_id"]).values_list("event", flat=True))
    assert {"order.request", "risk.decision", "order.signed", "venue.response"} <= events


def test_ioc_fill_gives_the_venues_position_and_pnl_and_streams_only_to_its_owner(trader: Any, hot: Any) -> None:
    other = approved_trader()
    c = client_for(trader)
    resp = post(c, "/trading/order", {"symbol": SYMBOL, "side": "buy", "type": "market", "size_usd": "150"})
    assert resp.status_code == 201, resp.json()
    order = resp.json()["order"]
    assert order["state"] == "filled"
    assert Decimal(order["filled_size"]) > 0

    venue_state = vc.info({"type": "clearinghouseState", "user": trader.address, "dex": ""})
    vpos = venue_state["assetPositions"][0]["position"]
    pos = PositionSnapshot.objects.get(user=trader, symbol=SYMBOL)
    assert pos.size == Decimal(vpos["szi"]) == Decimal(order["filled_size"])
    assert pos.entry_price == Decimal(vpos["entryPx"])

    positions = c.get("/trading/positions").json()["positions"]
    assert positions[0]["size"] == vpos["szi"]
    account = c.get("/trading/account").json()
    fresh = vc.info({"type": "clearinghouseState", "user": trader.address, "dex": ""})
    assert account["address"] == trader.address
    assert Decimal(account["equity"]) == pytest.approx(Decimal(fresh["marginSummary"]["accountValue"]), abs=Decimal(5))

    venue_fills = vc.info({"type": "userFills", "user": trader.address})
    assert Fill.objects.filter(user=trader).count() == len(venue_fills) >= 1
    assert {f.tid for f in Fill.objects.filter(user=trader)} == {f["tid"] for f in venue_fills}

    mine = [e for e in private_events(trader) if e["event_type"] == "fill_update"]
    assert mine and mine[0]["data"]["symbol"] == SYMBOL
    assert [e["seq"] for e in private_events(trader)] == sorted(e["seq"] for e in private_events(trader))
    assert not [e for e in private_events(other) if e["event_type"] == "fill_update"]
    resync = c.get("/trading/stream/resync?since=0").json()
    assert any(e["event_type"] == "fill_update" for e in resync["events"])

    # Close it from the API: reduce-only market order sized to the venue's position.
    resp = post(c, "/trading/positions/close", {"symbol": SYMBOL})
    assert resp.status_code == 201, resp.json()
    assert resp.json()["order"]["reduce_only"] is True
    after = vc.info({"type": "clearinghouseState", "user": trader.address, "dex": ""})
    assert after["assetPositions"] == []
    assert not PositionSnapshot.objects.filter(user=trader).exists()


def test_orders_are_signed_by_the_agent_but_accounted_under_the_master(trader: Any, hot: Any) -> None:
    c = client_for(trader)
    post(c, "/trading/order", {"symbol": SYMBOL, "side": "buy", "type": "market", "size_usd": "50"})
    signed = AuditRecord.objects.filter(event="order.signed").latest("id").data
    assert signed["account"] == trader.address and signed["signer"] != trader.address
    assert Order.objects.filter(user=trader, state=OrderState.FILLED).count() == 1


def test_modify_is_cancel_plus_new_and_local_state_follows_the_new_oid(trader: Any, hot: Any) -> None:
    c = client_for(trader)
    spec = meta.asset_spec(SYMBOL)
    m = mid(hot)
    px = round_price(px=m * Decimal("0.96"), spec=spec, mode="down")
    first = post(c, "/trading/order", {"symbol": SYMBOL, "side": "buy", "size": "0.002", "price": str(px)}).json()[
        "order"
    ]
    px2 = round_price(px=m * Decimal("0.95"), spec=spec, mode="down")
    resp = post(c, "/trading/modify", {"order_id": first["id"], "price": str(px2)})
    assert resp.status_code == 201, resp.json()
    new = resp.json()["order"]
    assert new["replaces_id"] == first["id"] and new["venue_oid"] != first["venue_oid"]
    assert Order.objects.get(pk=first["id"]).state == OrderState.CANCELLED
    open_orders = vc.info({"type": "frontendOpenOrders", "user": trader.address, "dex": ""})
    assert [o["oid"] for o in open_orders] == [new["venue_oid"]]


def test_tp_sl_attach_to_the_position_as_venue_triggers(trader: Any, hot: Any) -> None:
    c = client_for(trader)
    post(c, "/trading/order", {"symbol": SYMBOL, "side": "buy", "type": "market", "size_usd": "120"})
    spec = meta.asset_spec(SYMBOL)
    m = mid(hot)
    tp = round_price(px=m * Decimal("1.05"), spec=spec)
    sl = round_price(px=m * Decimal("0.95"), spec=spec)
    resp = post(c, "/trading/protection", {"symbol": SYMBOL, "tp_price": str(tp), "sl_price": str(sl)})
    assert resp.status_code == 201, resp.json()
    orders = resp.json()["orders"]
    assert {o["type"] for o in orders} == {"tp", "sl"} and all(o["state"] == "resting" for o in orders)
    venue_open = vc.info({"type": "frontendOpenOrders", "user": trader.address, "dex": ""})
    assert sorted(o["isTrigger"] for o in venue_open) == [True, True]
