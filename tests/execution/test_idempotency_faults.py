"""Faults around an order never produce a stored 5xx: an order that reached the venue is answered with its state
(and never re-sent), bookkeeping after acceptance is best effort, and a request that failed before sending
releases its key for a retry with the same key."""

from __future__ import annotations

import threading
import uuid
from decimal import Decimal
from typing import Any

import pytest
from django.db import IntegrityError
from rest_framework.test import APIClient

from execution.models import IdempotencyRecord, Order, OrderState, PositionSnapshot
from execution.services import relay, sync
from kernel.venue import client as vc
from kernel.venue import exchange
from tests.concurrency import run_in_threads
from tests.factories import SYMBOL, client_for

pytestmark = pytest.mark.django_db(transaction=True)
BODY = {"symbol": SYMBOL, "side": "buy", "type": "market", "size_usd": "60"}


def post(c: APIClient, key: str, body: dict[str, Any] = BODY) -> Any:
    return c.post("/trading/order", body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def sent_count(sim_thread: Any, cloid: str) -> int:
    return int(sim_thread.sim.stats["orders_by_cloid"].get(cloid, 0))


def test_a_filled_order_whose_bookkeeping_fails_is_answered_201_not_500(
    trader: Any, hot: Any, monkeypatch: Any
) -> None:
    def broken(**kw: Any) -> None:
        raise IntegrityError("duplicate key value violates unique constraint position_unique_per_user")

    monkeypatch.setattr(sync, "account_sync", broken)
    c = client_for(trader)
    r = post(c, str(uuid.uuid4()))
    assert r.status_code == 201, r.json()
    assert r.json()["order"]["state"] == "filled"
    assert not IdempotencyRecord.objects.filter(response_status__gte=500).exists()


def test_a_venue_429_on_the_fill_sync_is_not_an_error_for_the_filled_order(
    trader: Any, hot: Any, monkeypatch: Any
) -> None:
    def limited(**kw: Any) -> Any:
        raise vc.VenueError("venue rate limit (429)", status=429, kind="rate_limited")

    monkeypatch.setattr(sync, "fills_sync", limited)
    r = post(client_for(trader), str(uuid.uuid4()))
    assert r.status_code == 201 and r.json()["order"]["state"] == "filled", r.json()


def test_parallel_position_syncs_of_one_user_do_not_race_on_the_snapshot_row(trader: Any, hot: Any) -> None:
    assert post(client_for(trader), str(uuid.uuid4())).status_code == 201
    PositionSnapshot.objects.filter(user=trader).delete()
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def run() -> None:
        try:
            barrier.wait(10)
            sync.positions_sync(user=trader, quiet=True)
        except BaseException as exc:  # collected for the assertion
            errors.append(exc)

    run_in_threads([run] * 6, timeout=20)
    assert errors == []
    assert PositionSnapshot.objects.filter(user=trader, symbol=SYMBOL).count() == 1


def test_a_failure_before_sending_releases_the_key_and_the_same_key_then_works(
    trader: Any, hot: Any, sim_thread: Any, monkeypatch: Any
) -> None:
    real = exchange.sign_action
    calls = {"n": 0}

    def fail_once(wallet: Any, action: dict[str, Any]) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("signing backend unavailable")
        return real(wallet, action)

    monkeypatch.setattr(exchange, "sign_action", fail_once)
    c = client_for(trader)
    key = str(uuid.uuid4())
    first = post(c, key)
    assert first.status_code == 500 and first.json()["retryable"] is True, first.json()
    assert not IdempotencyRecord.objects.filter(user=trader, key=key).exists()  # released, nothing stored
    stored = Order.objects.get(user=trader, idempotency_key=key)
    assert stored.state == OrderState.REJECTED and stored.submitted_at is None
    again = post(c, key)
    assert again.status_code == 201, again.json()
    order = Order.objects.get(pk=again.json()["order"]["id"])
    assert order.pk == stored.pk and order.state == OrderState.FILLED  # the retry took the unsent row over
    assert sent_count(sim_thread, order.cloid) == 1


def test_a_failure_after_the_venue_took_the_order_stores_202_with_its_state_never_a_500(
    trader: Any, hot: Any, sim_thread: Any, monkeypatch: Any
) -> None:
    def broken_answer(*a: Any, **kw: Any) -> Any:
        raise RuntimeError("answer assembly failed")

    monkeypatch.setattr(relay, "order_outcome", broken_answer)
    c = client_for(trader)
    key = str(uuid.uuid4())
    r = post(c, key)
    assert r.status_code == 202, r.json()
    assert r.json()["order"]["state"] == "filled"
    record = IdempotencyRecord.objects.get(user=trader, key=key)
    assert record.response_status == 202
    replay = post(c, key)
    assert replay.status_code == 202 and replay["Idempotent-Replayed"] == "true"
    assert sent_count(sim_thread, r.json()["order"]["cloid"]) == 1


@pytest.mark.slow
def test_no_5xx_is_stored_across_a_fault_run(trader: Any, fresh_books: Any, sim_thread: Any) -> None:
    """Blackholed answers, a 429 storm and venue latency while orders and cancels flow."""
    c = client_for(trader)
    sim = sim_thread.sim
    faults = [
        lambda: sim_thread.call(sim.faults.blackhole, 2),
        lambda: sim_thread.call(sim.faults.rate_limit, 2.0),
        lambda: sim_thread.call(sim.faults.latency, 2500),
        lambda: sim_thread.call(sim.faults.clear),
    ]
    statuses = []
    for i in range(16):
        if i % 4 == 0:
            faults[(i // 4) % len(faults)]()
        body = {**BODY, "size_usd": "15"}
        r = post(c, str(uuid.uuid4()), body)
        statuses.append(r.status_code)
        if r.status_code in (201, 202) and r.json()["order"]["state"] == "resting":
            c.post(
                "/trading/cancel",
                {"order_id": r.json()["order"]["id"]},
                format="json",
                HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()),
            )
    sim_thread.call(sim.faults.clear)
    assert all(s < 500 for s in statuses), statuses
    assert not IdempotencyRecord.objects.filter(response_status__gte=500).exists()
    total = Decimal(0)
    for o in Order.objects.filter(user=trader):
        assert sent_count(sim_thread, o.cloid) <= 1, "an order was sent twice"
        total += o.filled_size
    assert total >= 0
