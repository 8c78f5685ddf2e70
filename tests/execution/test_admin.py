"""Django admin: orders and the audit log are read-only; controls, limits and breakers are admin-managed."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from execution.audit import audit_append
from execution.models import TradingControls
from execution.services.controls import controls_get
from tests.factories import make_user

pytestmark = pytest.mark.django_db(transaction=True)


def _client(role: str) -> tuple[Client, Any]:
    user = make_user(role=role)
    c = Client()
    c.force_login(user)
    return c, user


def test_audit_and_orders_are_read_only_with_filters() -> None:
    rec = audit_append(event="test.admin", correlation_id="adm", data={"x": 1})
    c, _ = _client("admin")
    page = c.get("/admin/execution/auditrecord/")
    assert page.status_code == 200 and b"test.admin" in page.content and b"By event" in page.content
    assert c.get("/admin/execution/auditrecord/add/").status_code == 403
    assert c.get(f"/admin/execution/auditrecord/{rec.pk}/delete/").status_code == 403
    detail = c.get(f"/admin/execution/auditrecord/{rec.pk}/change/")
    assert detail.status_code == 200 and b'name="_save"' not in detail.content
    assert c.get("/admin/execution/order/add/").status_code == 403


def test_an_operator_can_engage_the_kill_switch_from_admin_but_not_lift_it(transactional_db: None) -> None:
    controls_get()
    c, operator = _client("operator")
    r = c.post("/admin/execution/tradingcontrols/", {"action": "engage_kill_switch", "_selected_action": ["1"]})
    assert r.status_code in (200, 302)
    assert TradingControls.objects.get(pk=1).kill_switch_engaged
    r = c.post("/admin/execution/tradingcontrols/", {"action": "disengage_kill_switch", "_selected_action": ["1"]})
    assert TradingControls.objects.get(pk=1).kill_switch_engaged  # operators cannot lift it
    admin, _ = _client("admin")
    admin.post("/admin/execution/tradingcontrols/", {"action": "disengage_kill_switch", "_selected_action": ["1"]})
    assert not TradingControls.objects.get(pk=1).kill_switch_engaged


def test_an_admin_resets_a_breaker_from_admin_only_with_a_reason() -> None:
    from execution.models import AuditRecord, BreakerKind, CircuitBreaker
    from execution.services.breakers import breaker_trip

    breaker_trip(kind=BreakerKind.ERROR_RATE, reason="venue failing")
    row = CircuitBreaker.objects.get(kind=BreakerKind.ERROR_RATE, user=None)
    c, _ = _client("admin")
    listing = c.get("/admin/execution/circuitbreaker/")
    assert listing.status_code == 200 and b"open" in listing.content
    ask = c.post("/admin/execution/circuitbreaker/", {"action": "reset_breakers", "_selected_action": [row.pk]})
    assert ask.status_code == 200 and b"Reason (required)" in ask.content
    row.refresh_from_db()
    assert row.tripped  # nothing happens without a reason
    empty = c.post(
        "/admin/execution/circuitbreaker/",
        {"action": "reset_breakers", "_selected_action": [row.pk], "apply": "1", "reset_reason": "  "},
    )
    assert b"A reason is required" in empty.content
    done = c.post(
        "/admin/execution/circuitbreaker/",
        {"action": "reset_breakers", "_selected_action": [row.pk], "apply": "1", "reset_reason": "venue recovered"},
    )
    assert done.status_code == 302
    row.refresh_from_db()
    assert not row.tripped and row.reset_reason == "venue recovered"
    assert AuditRecord.objects.filter(event="breaker.reset", data__reason="venue recovered").exists()


def test_switches_changed_in_admin_go_through_the_service_with_before_and_after_audited() -> None:
    from execution.models import AuditRecord

    row = controls_get()
    was = row.server_trading_enabled
    c, _ = _client("admin")
    form = {"server_trading_enabled": "" if was else "on", "admin_only": "on" if row.admin_only else ""}
    r = c.post("/admin/execution/tradingcontrols/1/change/", {k: v for k, v in form.items() if v})
    assert r.status_code == 302, r.content[:500]
    assert TradingControls.objects.get(pk=1).server_trading_enabled is (not was)
    audit = AuditRecord.objects.filter(event="controls.changed").latest("id")
    assert audit.data["before"]["server_trading_enabled"] is was
    assert audit.data["after"]["server_trading_enabled"] is (not was)
    assert "server_trading_enabled" in audit.data["reason"]


def test_an_operator_cannot_change_the_switches_in_admin() -> None:
    row = controls_get()
    c, _ = _client("operator")
    form = {} if row.server_trading_enabled else {"server_trading_enabled": "on"}
    r = c.post("/admin/execution/tradingcontrols/1/change/", form)
    assert r.status_code == 403
    assert TradingControls.objects.get(pk=1).server_trading_enabled is row.server_trading_enabled
