"""Venue pressure: one user hammering reads cannot spend the shared IP budget or halt anyone; a venue 429 is never a
500; a 10 s 429 storm blocks nothing 5 s after it ends."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.db import connection
from rest_framework.test import APIClient

from execution.models import CircuitBreaker, IdempotencyRecord
from execution.services.breakers import breakers_open
from tests.factories import client_for, make_user

pytestmark = pytest.mark.django_db(transaction=True)


def market(c: APIClient, usd: str = "20") -> Any:
    body = {"symbol": "BTC", "side": "buy", "type": "market", "size_usd": usd}
    return c.post("/trading/order", body, format="json", HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()))


@pytest.mark.slow
def test_a_hammering_user_gets_429_from_us_and_another_users_orders_still_succeed(
    trader: Any, fresh_books: Any, sim_thread: Any
) -> None:
    noisy = make_user()  # signed in, no agent: only reads
    stop = threading.Event()
    answers: Counter[int] = Counter()
    lock = threading.Lock()

    def hammer() -> None:
        c = client_for(noisy)
        try:
            while not stop.is_set():
                status = c.get("/trading/positions").status_code
                with lock:
                    answers[status] += 1
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=8) as pool:
        for _ in range(8):
            pool.submit(hammer)
        c = client_for(trader)
        results = []
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            results.append(market(c))  # buys only: round trips lose fees and would (rightly) trip loss breakers
            time.sleep(0.4)
        stop.set()
    assert answers[429] > 0 and sum(answers.values()) > answers[429], answers
    assert all(s < 500 for s in answers), answers
    assert [r.status_code for r in results] == [201] * len(results), [r.json() for r in results]
    assert breakers_open(user=trader) == ()
    assert not CircuitBreaker.objects.filter(tripped=True).exists()
    assert sim_thread.sim.stats["rate_limited"] == 0  # the venue never had to refuse this IP
    venue_reads = sim_thread.sim.stats["rest_calls"].get("info:clearinghouseState", 0)
    print(
        f"\nhammering: {dict(answers)} answers to the noisy user, {len(results)} orders of another user all 201, "
        f"{venue_reads} clearinghouseState calls reached the venue"
    )


@pytest.mark.slow
def test_a_ten_second_429_storm_is_never_a_500_and_blocks_nothing_five_seconds_after(
    trader: Any, fresh_books: Any, sim_thread: Any
) -> None:
    c = client_for(trader)
    assert c.get("/trading/positions").status_code == 200  # something known to serve during the storm
    assert market(c).status_code == 201
    sim_thread.call(sim_thread.sim.faults.rate_limit, 10.0)
    started = time.monotonic()
    during = []
    while time.monotonic() - started < 9.5:
        during.append(market(c, usd="15"))
        positions = c.get("/trading/positions")
        assert positions.status_code == 200, positions.json()
        time.sleep(0.3)
    codes = Counter((r.status_code, r.json().get("code")) for r in during)
    assert all(status < 500 for status, _ in codes), codes
    assert (429, "venue_rate_limited") in codes, codes
    refused = next(r for r in during if r.status_code == 429)
    assert int(refused["Retry-After"]) >= 1
    assert positions.json()["stale"] is True
    while time.monotonic() - started < 10.0:
        time.sleep(0.05)
    ended = time.monotonic()
    recovered = None
    while time.monotonic() - ended < 5.0:  # the first order that goes through after the storm
        if market(c, usd="15").status_code == 201:
            recovered = time.monotonic() - ended
            break
        time.sleep(0.25)
    assert recovered is not None and recovered < 5.0, "orders still blocked 5 s after the storm"
    print(f"\n429 storm: {sum(codes.values())} orders during it {dict(codes)}; first fill {recovered:.2f} s after it")
    time.sleep(max(0.0, 5.0 - (time.monotonic() - ended)))  # five seconds after the storm
    after = market(c)
    assert after.status_code == 201, after.json()
    assert breakers_open(user=trader) == ()
    assert c.get("/trading/positions").json()["stale"] is False
    assert not IdempotencyRecord.objects.filter(response_status__gte=500).exists()
