"""A request that fails because Redis or PostgreSQL is away (a restart, failover, the network) answers 503 with
Retry-After — JSON for API clients, a short page for browsers — and a real bug still answers 500."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client

from deploy.servers import free_port
from markets import selectors
from markets.hotstate import RedisHotState, set_hot_state

pytestmark = pytest.mark.django_db


@pytest.fixture
def redis_gone() -> Iterator[None]:
    """Hot state on a Redis that refuses connections: the real client failing, as during a restart."""
    set_hot_state(RedisHotState(f"redis://127.0.0.1:{free_port()}/0"))
    yield
    set_hot_state(None)


@pytest.mark.parametrize("url", ["/trading/orderbook?coin=BTC&depth=1", "/trading/prices", "/aggregator/status"])
def test_api_reads_answer_503_with_retry_after_while_redis_restarts(redis_gone: None, url: str) -> None:
    r = Client(raise_request_exception=False).get(url)
    assert r.status_code == 503, (r.status_code, r.content[:300])
    assert r["Retry-After"] == "2"
    body = r.json()
    assert body["code"] == "temporarily_unavailable" and body["retry_after_s"] == 2


def test_pages_answer_a_503_page_while_redis_restarts(redis_gone: None) -> None:
    r = Client(raise_request_exception=False).get("/terminal/BTC", HTTP_ACCEPT="text/html,application/xhtml+xml")
    assert r.status_code == 503, (r.status_code, r.content[:300])
    assert r["Retry-After"] == "2" and r["Content-Type"].startswith("text/html")
    assert b"temporarily unavailable" in r.content


def test_a_database_outage_mid_request_is_a_503(monkeypatch: Any) -> None:
    from django.db import OperationalError

    def down(*a: Any, **kw: Any) -> Any:
        raise OperationalError("connection to server at 127.0.0.1 failed: Connection refused")

    monkeypatch.setattr(selectors, "universe_list", down)
    r = Client(raise_request_exception=False).get("/trading/tokens")
    assert r.status_code == 503 and r.json()["code"] == "temporarily_unavailable", r.content[:300]


def test_a_bug_is_still_a_500(monkeypatch: Any) -> None:
    def bug(*a: Any, **kw: Any) -> Any:
        raise ZeroDivisionError("a real bug")

    monkeypatch.setattr(selectors, "universe_list", bug)
    r = Client(raise_request_exception=False).get("/trading/tokens")
    assert r.status_code == 500


def _signed_in() -> Client:
    from accounts.models import User

    user = User.objects.create(address="0x" + "ab" * 20)
    c = Client(raise_request_exception=False)
    c.force_login(user)
    return c


def test_a_signed_in_request_whose_session_cannot_be_loaded_is_a_503(monkeypatch: Any) -> None:
    """The session store is the database: loading it happens in middleware, before any view."""
    from django.contrib.sessions.backends.db import SessionStore
    from django.db import OperationalError

    c = _signed_in()

    def down(self: Any) -> Any:
        raise OperationalError("connection to server at 127.0.0.1 failed: Connection refused")

    monkeypatch.setattr(SessionStore, "load", down)
    r = c.get("/trading/orders")
    assert r.status_code == 503 and r.json()["code"] == "temporarily_unavailable", r.content[:300]
    assert r["Retry-After"] == "2"


def test_a_session_that_cannot_be_saved_at_the_end_of_a_request_is_a_503(monkeypatch: Any) -> None:
    """Django saves a modified session after the view (login, key rotation): that write failing is a 503 too."""
    from django.contrib.sessions.backends.db import SessionStore
    from django.db import OperationalError
    from django.http import HttpResponse
    from django.test import RequestFactory

    from kernel.middleware import SessionMiddleware

    def down(self: Any, must_create: bool = False) -> Any:
        raise OperationalError("connection to server at 127.0.0.1 failed: Connection refused")

    def view(request: Any) -> HttpResponse:
        request.session["rotated"] = True
        return HttpResponse("ok")

    monkeypatch.setattr(SessionStore, "save", down)
    r = SessionMiddleware(view)(RequestFactory().get("/trading/orders"))
    assert r.status_code == 503 and r["Retry-After"] == "2", r.content[:300]
