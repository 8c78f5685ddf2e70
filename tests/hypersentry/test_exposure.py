"""Internals are for staff: /metrics (staff session or the metrics bearer token), /system (staff), and the full
/aggregator/status (staff; everyone else gets running/freshness only)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.test import Client

from accounts.models import Role
from hypersentry.views import bearer_matches
from markets.hotstate import MemoryHotState, set_hot_state
from tests.factories import make_user

pytestmark = pytest.mark.django_db

TOKEN = "m3trics-t0ken-for-the-scraper"
VENUE_URL = "http://venue.internal.example:3001"
PROCESS_ID = "ingest-host-7:4242"


def _signed_in(role: str | None) -> Client:
    client = Client()
    if role is not None:
        client.force_login(make_user(role=role))
    return client


@pytest.fixture
def hot() -> Iterator[MemoryHotState]:
    """Ingest's status as it writes it, with every internal the public answer must leave out."""
    state = MemoryHotState()
    now = int(time.time() * 1000)
    status = {
        "running": True,
        "process_id": PROCESS_ID,
        "venue": "sim",
        "venue_url": VENUE_URL,
        "started_at_ms": now - 60_000,
        "updated_at_ms": now,
        "universe_size": 2,
        "subscriptions": {
            "symbols": ["BTC", "KPEPE"],
            "count": 2,
            "channels": 7,
            "on_demand": ["KPEPE"],
            "max_symbols": 50,
            "top_n": 15,
        },
        "sources": {
            "hyperliquid": {
                "state": "connected",
                "connected": True,
                "connected_since_ms": now - 50_000,
                "disconnected_since_ms": None,
                "last_message_ms": now,
                "last_message_age_ms": 3,
                "last_error": f"ConnectionClosed from {VENUE_URL}/ws",
                "degraded_symbols": [],
            }
        },
        "freshness": {"BTC": {"price_age_ms": 5, "book_age_ms": 7, "trades_age_ms": 9, "ctx_age_ms": 11}},
        "reconnects": 3,
        "stalls": 1,
        "rejected": {"malformed": 2},
        "messages": {"l2Book": 1000},
    }
    async_to_sync(state.set_status)(status, ttl_sec=60)
    async_to_sync(state.set_universe)([{"symbol": "BTC", "coin": "BTC"}, {"symbol": "KPEPE", "coin": "kPEPE"}])
    set_hot_state(state)
    yield state
    set_hot_state(None)


# --- /metrics ------------------------------------------------------------------------------------------------------
def _error(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, (response.status_code, response.content[:200])
    body = response.json()
    assert body["type"] == "error" and body["code"] == code and body["message"], body
    assert b"hs_" not in response.content


def test_metrics_refuse_anonymous_and_traders() -> None:
    anonymous = _signed_in(None).get("/metrics")
    _error(anonymous, 401, "authentication_required")
    assert anonymous["WWW-Authenticate"].startswith("Bearer")
    _error(_signed_in(Role.TRADER).get("/metrics"), 403, "permission_denied")


@pytest.mark.parametrize("role", [Role.ADMIN, Role.OPERATOR])
def test_metrics_answer_staff_sessions(role: str) -> None:
    response = _signed_in(role).get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert b"# TYPE hs_component_errors_total counter" in response.content


def test_metrics_answer_the_bearer_token_and_refuse_a_wrong_one(settings: Any) -> None:
    settings.METRICS_BEARER_TOKEN = TOKEN
    client = Client()
    ok = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200 and b"# TYPE hs_component_errors_total counter" in ok.content
    for wrong in (f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", "Bearer ", f"Basic {TOKEN}", TOKEN):
        _error(client.get("/metrics", headers={"Authorization": wrong}), 401, "authentication_required")
    # A trader's session does not turn a wrong token into access.
    trader = _signed_in(Role.TRADER)
    _error(trader.get("/metrics", headers={"Authorization": "Bearer nope"}), 401, "authentication_required")


def test_an_unset_token_disables_bearer_access(settings: Any) -> None:
    settings.METRICS_BEARER_TOKEN = ""
    for header in ("Bearer ", "Bearer", "bearer  "):
        _error(Client().get("/metrics", headers={"Authorization": header}), 401, "authentication_required")


def test_bearer_matching_is_exact() -> None:
    assert bearer_matches(authorization=f"Bearer {TOKEN}", expected=TOKEN)
    assert bearer_matches(authorization=f"bearer {TOKEN}", expected=TOKEN)  # the scheme is case-insensitive
    assert not bearer_matches(authorization=f"Bearer {TOKEN.upper()}", expected=TOKEN)
    assert not bearer_matches(authorization="Bearer ", expected="")
    assert not bearer_matches(authorization="", expected="")


# --- /system -------------------------------------------------------------------------------------------------------
def test_system_sends_anonymous_users_to_sign_in() -> None:
    response = _signed_in(None).get("/system")
    assert response.status_code == 302
    assert response["Location"] == "/auth/signin?next=/system"


def test_system_refuses_traders_without_internals() -> None:
    response = _signed_in(Role.TRADER).get("/system")
    assert response.status_code == 403
    html = response.content.decode()
    assert 'id="system-forbidden"' in html and "data-component=" not in html
    assert 'href="/system"' not in html  # no nav link to a page the user cannot open


@pytest.mark.parametrize("role", [Role.ADMIN, Role.OPERATOR])
def test_system_lists_the_components_for_staff(role: str) -> None:
    response = _signed_in(role).get("/system")
    assert response.status_code == 200
    for name in (b"web", b"ingest", b"alpha", b"execution", b"jobs", b"hlsim"):
        assert b'data-component="' + name + b'"' in response.content
    assert b'href="/system"' in response.content


@pytest.mark.django_db(transaction=True)
def test_system_shows_every_periodic_job_with_its_last_run_and_the_venue_budget() -> None:
    from kernel.schedule import periodic_jobs

    job = next(j for j in periodic_jobs() if j.name == "accounts.sessions_expire")
    job.func()
    html = _signed_in(Role.ADMIN).get("/system").content.decode()
    for j in periodic_jobs():
        assert f'data-job="{j.name}"' in html
    row = html.split('data-job="accounts.sessions_expire"')[1].split("</tr>")[0]
    assert "s ago" in row and "ok" in row
    assert 'id="venue-budget"' in html and "weight in the last minute" in html


# --- /aggregator/status -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("role", [None, Role.TRADER])
def test_aggregator_status_is_reduced_for_the_public(hot: MemoryHotState, role: str | None) -> None:
    response = _signed_in(role).get("/aggregator/status")
    assert response.status_code == 200
    body = response.json()
    assert body == {
        "detail": "public",
        "running": True,
        "venue": "sim",
        "status_age_ms": body["status_age_ms"],
        "sources": {"hyperliquid": {"state": "connected", "connected": True, "last_message_age_ms": 3}},
        "subscriptions": {"symbols": ["BTC", "kPEPE"], "count": 2},
        "freshness": {"BTC": {"price_age_ms": 5, "book_age_ms": 7, "trades_age_ms": 9, "ctx_age_ms": 11}},
    }
    text = response.content.decode()
    for secret in (VENUE_URL, PROCESS_ID, "reconnects", "rejected", "upstream", "rate_limited_429", "last_error"):
        assert secret not in text, secret


@pytest.mark.parametrize("role", [Role.ADMIN, Role.OPERATOR])
def test_aggregator_status_is_full_for_staff(hot: MemoryHotState, role: str) -> None:
    body = _signed_in(role).get("/aggregator/status").json()
    assert body["detail"] == "full"
    assert body["venue_url"] == VENUE_URL and body["process_id"] == PROCESS_ID
    assert body["reconnects"] == 3 and body["rejected_total"] == 2 and "upstream" in body
    assert body["subscriptions"]["symbols"] == ["BTC", "kPEPE"] and body["subscriptions"]["on_demand"] == ["kPEPE"]


def test_aggregator_status_without_ingest_is_reduced_too(settings: Any) -> None:
    set_hot_state(MemoryHotState())
    try:
        body = Client().get("/aggregator/status").json()
    finally:
        set_hot_state(None)
    assert body["running"] is False and body["detail"] == "public"
    assert settings.HYPERSENTRY_VENUE_URL not in str(body)
