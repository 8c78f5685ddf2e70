"""Market reads share one venue request among identical concurrent callers (singleflight), against the simulator."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from kernel.singleflight import Singleflight
from kernel.venue.market_data import Upstream


@pytest.mark.django_db
def test_identical_concurrent_reads_send_one_request(sim_thread: Any) -> None:
    sim = sim_thread.sim
    sim.faults.latency(300)  # every caller arrives while the first request is still out
    upstream = Upstream(sim.base_url)
    before = sim.stats["rest_calls"].get("info:l2Book", 0)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: upstream.info({"type": "l2Book", "coin": "BTC"}, ttl_sec=0), range(8)))
    sim.faults.clear()
    assert sim.stats["rest_calls"].get("info:l2Book", 0) - before == 1
    assert all(r.fresh and r.data == results[0].data for r in results)
    assert results[0].data["coin"] == "BTC"


def test_followers_share_the_leaders_error_and_a_later_call_runs_again() -> None:
    flights = Singleflight()
    started, release = threading.Event(), threading.Event()
    calls = []

    def failing() -> None:
        calls.append(1)
        started.set()
        release.wait(5)
        raise ValueError("venue said no")

    errors: list[BaseException] = []

    def call() -> None:
        try:
            flights.do("k", failing)
        except ValueError as exc:
            errors.append(exc)

    leader = threading.Thread(target=call)
    leader.start()
    started.wait(5)
    followers = [threading.Thread(target=call) for _ in range(3)]
    for t in followers:
        t.start()
    release.set()
    for t in (leader, *followers):
        t.join(5)
    assert len(calls) == 1 and len(errors) == 4
    assert flights.do("k", lambda: 42) == 42


def test_a_follower_stops_waiting_after_its_bound() -> None:
    flights = Singleflight()
    started, release = threading.Event(), threading.Event()
    leader = threading.Thread(target=lambda: flights.do("k", lambda: (started.set(), release.wait(5))))
    leader.start()
    started.wait(5)
    with pytest.raises(TimeoutError, match="did not finish within"):
        flights.do("k", lambda: None, wait=0.1)
    release.set()
    leader.join(5)
