"""Idempotency-Key semantics under real concurrency: 50 keys × 20 concurrent retries → exactly 50 venue orders."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from decimal import Decimal
from typing import Any

import pytest

from execution.models import IdempotencyRecord, Order
from tests.concurrency import run_in_threads
from tests.execution.orders import below_mid
from tests.factories import SYMBOL, approved_trader, client_for

pytestmark = pytest.mark.django_db(transaction=True)


def _limit_body(hot: Any, i: int = 0) -> dict[str, Any]:
    px = below_mid(hot, Decimal("0.9"))
    return {"symbol": SYMBOL, "side": "buy", "type": "limit", "size": "0.0002", "price": str(px)}


def test_missing_or_malformed_keys_are_400(trader: Any, hot: Any) -> None:
    c = client_for(trader)
    body = _limit_body(hot)
    assert c.post("/trading/order", body, format="json").json()["code"] == "idempotency_key_missing"
    r = c.post("/trading/order", body, format="json", HTTP_IDEMPOTENCY_KEY="bad key!")
    assert r.status_code == 400 and r.json()["code"] == "idempotency_key_malformed"
    r = c.post("/trading/cancel", {"order_id": 1}, format="json")
    assert r.status_code == 400
    assert Order.objects.count() == 0


def test_same_key_replays_and_a_different_payload_is_422(trader: Any, hot: Any) -> None:
    c = client_for(trader)
    key = str(uuid.uuid4())
    body = _limit_body(hot)
    first = c.post("/trading/order", body, format="json", HTTP_IDEMPOTENCY_KEY=key)
    again = c.post("/trading/order", body, format="json", HTTP_IDEMPOTENCY_KEY=key)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    other = dict(body, size="0.0003")
    r = c.post("/trading/order", other, format="json", HTTP_IDEMPOTENCY_KEY=key)
    assert r.status_code == 422 and r.json()["code"] == "idempotency_key_reused"
    assert Order.objects.count() == 1


def test_an_error_response_is_replayed_too(trader: Any, hot: Any) -> None:
    c = client_for(trader)
    key = str(uuid.uuid4())
    body = dict(_limit_body(hot), size="0.00001")  # below $10
    r1 = c.post("/trading/order", body, format="json", HTTP_IDEMPOTENCY_KEY=key)
    r2 = c.post("/trading/order", body, format="json", HTTP_IDEMPOTENCY_KEY=key)
    assert r1.status_code == r2.status_code == 422 and r1.json() == r2.json()
    assert r1.json()["code"] == "below_min_notional"


def test_keys_are_scoped_per_user(trader: Any, hot: Any) -> None:

    other = approved_trader()
    key = str(uuid.uuid4())
    body = _limit_body(hot)
    assert client_for(trader).post("/trading/order", body, format="json", HTTP_IDEMPOTENCY_KEY=key).status_code == 201
    assert client_for(other).post("/trading/order", body, format="json", HTTP_IDEMPOTENCY_KEY=key).status_code == 201
    assert len({o.cloid for o in Order.objects.all()}) == 2


def test_an_in_flight_key_answers_409(trader: Any, hot: Any) -> None:
    IdempotencyRecord.objects.create(
        user=trader,
        key="k-in-flight-1",
        endpoint="order",
        request_hash=__import__("execution.services.idempotency", fromlist=["x"]).request_hash(
            endpoint="order", payload=_limit_body(hot)
        ),
    )
    r = client_for(trader).post("/trading/order", _limit_body(hot), format="json", HTTP_IDEMPOTENCY_KEY="k-in-flight-1")
    assert r.status_code == 409 and r.json()["code"] == "idempotency_in_flight"


@pytest.mark.slow
def test_fifty_keys_times_twenty_concurrent_retries_make_exactly_fifty_venue_orders(
    trader: Any, hot: Any, sim_thread: Any, fresh_books: None
) -> None:
    body = _limit_body(hot)
    keys = [f"bulk-{i:03d}-{uuid.uuid4().hex[:8]}" for i in range(50)]
    results: list[tuple[str, int, dict[str, Any]]] = []
    lock = threading.Lock()
    barrier = threading.Barrier(20)

    def worker() -> None:
        c = client_for(trader)
        barrier.wait()
        for key in keys:
            r = c.post("/trading/order", body, format="json", HTTP_IDEMPOTENCY_KEY=key)
            with lock:
                results.append((key, r.status_code, r.json()))

    run_in_threads([worker] * 20, timeout=240)
    assert len(results) == 1000
    stats = sim_thread.sim.stats
    ours = {o.cloid for o in Order.objects.filter(user=trader)}
    assert len(ours) == 50 and Order.objects.filter(user=trader).count() == 50
    venue_cloids = {c for c in stats["orders_by_cloid"] if c in ours}
    by_status = Counter(code for _, code, _ in results)
    codes = Counter(b.get("code") or b.get("order", {}).get("reject_reason") for _, c, b in results if c != 201)
    assert set(by_status) <= {201, 409}, (by_status, codes)
    assert len(venue_cloids) == 50 and all(stats["orders_by_cloid"][c] == 1 for c in venue_cloids)
    by_status = Counter(code for _, code, _ in results)
    codes = Counter(b.get("code") or b.get("order", {}).get("reject_reason") for _, c, b in results if c != 201)
    assert set(by_status) <= {201, 409}, (by_status, codes)
    # Every 201 for a key carries that key's one order.
    per_key = {}
    for key, code, body_ in results:
        if code == 201:
            per_key.setdefault(key, set()).add(body_["order"]["id"])
    assert all(len(ids) == 1 for ids in per_key.values()) and len(per_key) == 50
    print(f"\nidempotency: {dict(by_status)} for 1000 requests; venue orders {len(venue_cloids)}")


def test_new_orders_are_rate_limited_per_user_but_replays_are_free(trader: Any, hot: Any, settings: Any) -> None:
    settings.EXECUTION_ORDERS_PER_MIN = 2
    c = client_for(trader)
    body = _limit_body(hot)
    keys = [str(uuid.uuid4()) for _ in range(3)]
    assert c.post("/trading/order", body, format="json", HTTP_IDEMPOTENCY_KEY=keys[0]).status_code == 201
    assert c.post("/trading/order", body, format="json", HTTP_IDEMPOTENCY_KEY=keys[1]).status_code == 201
    r = c.post("/trading/order", body, format="json", HTTP_IDEMPOTENCY_KEY=keys[2])
    assert r.status_code == 429 and r["Retry-After"]
    for _ in range(5):
        assert c.post("/trading/order", body, format="json", HTTP_IDEMPOTENCY_KEY=keys[0]).status_code == 201
    assert not IdempotencyRecord.objects.filter(key=keys[2]).exists()  # a 429 is not stored under the key


def test_keys_older_than_the_ttl_are_purged(trader: Any, settings: Any) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from execution.services.idempotency import idempotency_purge

    def record(key: str, *, hours_old: int) -> IdempotencyRecord:
        created_at = timezone.now() - timedelta(hours=hours_old)
        return IdempotencyRecord.objects.create(
            user=trader, key=key, endpoint="order", request_hash="x", created_at=created_at
        )

    old, fresh = record("old-key-123", hours_old=49), record("fresh-key-12", hours_old=25)
    assert settings.EXECUTION_IDEMPOTENCY_TTL_HOURS >= 24
    assert idempotency_purge() == 1
    assert not IdempotencyRecord.objects.filter(pk=old.pk).exists()
    assert IdempotencyRecord.objects.filter(pk=fresh.pk).exists()
