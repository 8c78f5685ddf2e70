"""Recovery without manual action: the money path keeps working without the shared cache, an unknown outcome is
resolved on demand, and a request whose process died is finalised with the venue's true outcome."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from execution.models import IdempotencyRecord, IdempotencyStatus, Order, OrderState
from execution.services import sync
from execution.services.orders import cloid_for
from tests.factories import SYMBOL, client_for, unreachable_redis_caches

pytestmark = pytest.mark.django_db(transaction=True)
BODY = {"symbol": SYMBOL, "side": "buy", "type": "market", "size_usd": "40"}


def post(c: APIClient, key: str | None = None) -> Any:
    return c.post("/trading/order", BODY, format="json", HTTP_IDEMPOTENCY_KEY=key or str(uuid.uuid4()))


def test_orders_go_through_while_the_shared_cache_is_down_and_no_key_stays_in_flight(trader: Any, hot: Any) -> None:
    c = client_for(trader)
    assert post(c).status_code == 201  # warm: meta and account known
    with override_settings(CACHES=unreachable_redis_caches(timeout=0.2)):
        statuses = [post(c).status_code for _ in range(3)]
    assert statuses == [201, 201, 201], statuses
    assert not IdempotencyRecord.objects.filter(status=IdempotencyStatus.IN_FLIGHT).exists()
    assert not IdempotencyRecord.objects.filter(response_status__gte=500).exists()


def test_a_failing_rate_limiter_releases_the_key(trader: Any, hot: Any, monkeypatch: Any) -> None:
    from execution import api

    def broken(**kw: Any) -> Any:
        raise ConnectionRefusedError("redis went away")

    monkeypatch.setattr(api, "hit", broken)
    c = client_for(trader)
    key = str(uuid.uuid4())
    r = post(c, key)
    assert r.status_code == 503 and r.json()["code"] == "temporarily_unavailable", r.json()
    assert not IdempotencyRecord.objects.filter(user=trader, key=key).exists()  # released, not 409 for minutes
    monkeypatch.undo()
    assert post(c, key).status_code == 201


@pytest.mark.slow
def test_a_timed_out_order_is_resolved_on_demand_without_a_reconcile_run(
    trader: Any, hot: Any, sim_thread: Any, settings: Any
) -> None:
    settings.EXECUTION_UNKNOWN_RESOLVE_DELAY_SEC = 1.0
    sim_thread.call(sim_thread.sim.faults.blackhole, 1)
    r = post(client_for(trader))
    assert r.status_code == 202 and r.json()["order"]["state"] == "unknown", r.json()
    order = Order.objects.get(pk=r.json()["order"]["id"])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and order.state == OrderState.UNKNOWN:
        time.sleep(0.3)
        order.refresh_from_db()
    assert order.state == OrderState.FILLED
    assert sim_thread.sim.stats["orders_by_cloid"][order.cloid] == 1


def test_a_request_whose_process_died_is_finalised_with_the_venues_outcome(
    trader: Any, hot: Any, sim_thread: Any
) -> None:
    """The process was killed after sending: the record is in flight, the order `submitted` — the venue filled it."""
    sim_thread.call(sim_thread.sim.faults.blackhole, 1)
    c = client_for(trader)
    key = str(uuid.uuid4())
    r = post(c, key)
    assert r.status_code == 202
    order = Order.objects.get(cloid=cloid_for(user_id=trader.pk, key=key))
    # What a kill -9 leaves behind: the claim in flight, the order as the relay last wrote it.
    Order.objects.filter(pk=order.pk).update(state=OrderState.SUBMITTED)
    IdempotencyRecord.objects.filter(user=trader, key=key).update(
        status=IdempotencyStatus.IN_FLIGHT,
        response_status=None,
        response_body=None,
        owner="gone-host:999999",
        created_at=timezone.now() - timedelta(minutes=1),
    )
    assert sync.idempotency_finalize_stale() == 1
    rec = IdempotencyRecord.objects.get(user=trader, key=key)
    assert rec.status == IdempotencyStatus.DONE and rec.response_status == 201
    assert rec.response_body["order"]["state"] == "filled"
    replay = post(c, key)
    assert replay.status_code == 201 and replay["Idempotent-Replayed"] == "true"
    assert sim_thread.sim.stats["orders_by_cloid"][order.cloid] == 1


def test_a_request_whose_process_died_before_sending_releases_its_key(trader: Any, hot: Any) -> None:
    key = "died-before-send-1"
    IdempotencyRecord.objects.create(
        user=trader,
        key=key,
        endpoint="order",
        request_hash="x",
        owner="gone-host:999999",
        created_at=timezone.now() - timedelta(minutes=1),
    )
    assert sync.idempotency_finalize_stale() == 1
    assert not IdempotencyRecord.objects.filter(user=trader, key=key).exists()


def test_a_slow_request_of_a_live_process_is_left_alone_until_the_hard_bound(trader: Any, hot: Any) -> None:
    from execution.services.idempotency import process_instance
    from kernel import components

    components.heartbeat("web", min_interval=0)  # this process is alive
    rec = IdempotencyRecord.objects.create(
        user=trader,
        key="slow-but-alive-1",
        endpoint="order",
        request_hash="x",
        owner=process_instance(),
        created_at=timezone.now() - timedelta(seconds=45),
    )
    assert sync.idempotency_finalize_stale() == 0
    IdempotencyRecord.objects.filter(pk=rec.pk).update(created_at=timezone.now() - timedelta(minutes=5))
    assert sync.idempotency_finalize_stale() == 1
