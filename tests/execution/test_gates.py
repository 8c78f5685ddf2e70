"""Trading switch defaults, admin-only mode, capability and symbol gates through the relay and the API."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import pytest
from rest_framework.test import APIClient

from execution import risk
from execution.models import AuditRecord, Order, OrderState, TradingControls
from execution.services import controls as ctl
from execution.services.risk_inputs import order_preview
from tests.execution.answers import order_submit
from tests.factories import client_for, make_user

pytestmark = pytest.mark.django_db(transaction=True)
MARKET = risk.OrderIntent(symbol="ETH", is_buy=True, order_type="market", size_usd=Decimal(50))


def _submit(user: Any, intent: risk.OrderIntent = MARKET) -> tuple[int, dict[str, Any]]:
    return order_submit(user=user, key=f"g-{uuid.uuid4()}", intent=intent)


def test_paper_trading_is_on_by_default_on_the_simulator(trader: Any, hot: Any) -> None:
    c = ctl.controls_get()
    assert c.server_trading_enabled is True and c.admin_only is False
    assert _submit(trader)[0] == 201


def test_a_real_venue_starts_with_server_trading_off_until_an_admin_enables_it(
    trader: Any, hot: Any, settings: Any
) -> None:
    settings.ENABLE_SERVER_SIDE_TRADING = False  # what testnet/mainnet default to
    settings.REQUIRE_ADMIN_FOR_SERVER_TRADING = True
    TradingControls.objects.all().delete()
    status, body = _submit(trader)
    assert status == 422 and body["code"] == risk.TRADING_DISABLED
    admin = make_user(role="admin")
    with pytest.raises(Exception, match="only admins"):
        ctl.trading_configure(actor=trader, server_trading_enabled=True)
    ctl.trading_configure(actor=admin, server_trading_enabled=True, reason="go live")
    status, body = _submit(trader)
    assert body["code"] == risk.ADMIN_ONLY  # admin-only mode is next
    ctl.trading_configure(actor=admin, admin_only=False, reason="open to traders")
    assert _submit(trader)[0] == 201
    assert AuditRecord.objects.filter(event="controls.changed").count() == 2


def test_a_user_without_an_agent_is_refused_with_its_reason(sim_thread: Any, hot: Any) -> None:
    user = make_user()
    status, body = _submit(user)
    assert status == 422 and body["code"] == risk.AGENT_NOT_READY
    assert Order.objects.get(pk=body["order"]["id"]).state == OrderState.REJECTED
    assert AuditRecord.objects.filter(event="risk.decision", correlation_id=body["correlation_id"]).exists()


def test_an_unknown_symbol_is_not_tradable(trader: Any, hot: Any) -> None:
    intent = risk.OrderIntent(symbol="NOPE", is_buy=True, order_type="market", size_usd=Decimal(50))
    assert _submit(trader, intent)[1]["code"] == risk.SYMBOL_NOT_TRADABLE


def test_an_invalid_limit_price_is_refused_before_sending(trader: Any, hot: Any, sim_thread: Any) -> None:
    intent = risk.OrderIntent(
        symbol="ETH", is_buy=True, order_type="limit", size=Decimal("0.1"), price=Decimal("1234.567")
    )
    before = sim_thread.sim.stats["order_actions"]
    status, body = _submit(trader, intent)
    assert body["code"] == risk.INVALID_PRICE
    assert sim_thread.sim.stats["order_actions"] == before


def test_preview_gives_the_verdict_without_sending(trader: Any, hot: Any, sim_thread: Any) -> None:
    before = sim_thread.sim.stats["order_actions"]
    v = order_preview(user=trader, intent=MARKET)
    assert v.ok and v.order is not None and v.order.tif == "Ioc"
    c = client_for(trader)
    r = c.post("/trading/preview", {"symbol": "ETH", "side": "buy", "type": "market", "size_usd": "5"}, format="json")
    assert r.status_code == 200 and r.json()["reason"] == risk.MIN_NOTIONAL
    assert sim_thread.sim.stats["order_actions"] == before
    assert Order.objects.count() == 0


def test_anonymous_requests_are_401(transactional_db: None) -> None:
    c = APIClient()
    for path in ("/trading/orders", "/trading/positions", "/trading/account", "/trading/controls"):
        r = c.get(path)
        assert r.status_code == 401 and r.json()["code"] == "authentication_required", path
    r = c.post("/trading/order", {}, format="json", HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()))
    assert r.status_code == 401
