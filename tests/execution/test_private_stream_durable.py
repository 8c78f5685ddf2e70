"""The private stream survives restarts: sequence numbers live in the database (never backwards, never repeated),
events the broadcaster could not take are redelivered from the outbox in order, and the resync reports gaps
honestly."""

from __future__ import annotations

import functools
import threading
from typing import Any

import pytest
from asgiref.sync import async_to_sync

from execution.models import PrivateEvent, StreamCursor
from execution.services import events
from tests.concurrency import run_in_threads
from tests.factories import make_user

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def user() -> Any:
    return make_user()


class Recorder:
    """Stands in for the broadcaster's delivery: what reached it, in order, or an outage."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, int, str]] = []
        self.down = False
        self.lock = threading.Lock()

    def __call__(self, **kw: Any) -> None:
        if self.down:
            raise ConnectionError("redis is down")
        with self.lock:
            self.seen.append((kw["user_id"], kw["seq"], kw["event_type"]))


@pytest.fixture
def delivered(monkeypatch: Any) -> Recorder:
    rec = Recorder()
    monkeypatch.setattr(events, "_broadcast", rec)
    return rec


def test_sequence_numbers_are_durable_and_per_user(user: Any, delivered: Recorder) -> None:
    other = make_user()
    for i in range(3):
        events.publish_private(user_id=user.pk, event_type="order_update", data={"i": i}, symbol="BTC")
    events.publish_private(user_id=other.pk, event_type="fill_update", data={})
    assert [(u, s) for u, s, _ in delivered.seen] == [(user.pk, 1), (user.pk, 2), (user.pk, 3), (other.pk, 1)]
    assert StreamCursor.objects.get(user=user).last_seq == 3
    # A "restart" of everything but the database: the next number continues, never repeats.
    events.publish_private(user_id=user.pk, event_type="account_update", data={})
    assert delivered.seen[-1][:2] == (user.pk, 4)


def test_parallel_publishers_never_share_a_number_and_deliver_in_order(user: Any, delivered: Recorder) -> None:
    def publish(n: int) -> None:
        for i in range(10):
            events.publish_private(user_id=user.pk, event_type="order_update", data={"t": n, "i": i})

    run_in_threads([functools.partial(publish, n) for n in range(6)], timeout=30)
    seqs = [s for _, s, _ in delivered.seen]
    assert seqs == list(range(1, 61))  # delivered in sequence order: the cursor row is held while delivering
    assert PrivateEvent.objects.filter(user=user).count() == 60


def test_events_the_broadcaster_could_not_take_are_redelivered_in_order(user: Any, delivered: Recorder) -> None:
    delivered.down = True
    for i in range(4):
        events.publish_private(user_id=user.pk, event_type="order_update", data={"i": i})
    assert delivered.seen == []
    assert PrivateEvent.objects.filter(user=user, delivered_at__isnull=True).count() == 4
    assert events.private_events_redeliver(older_than_sec=0) == 0  # still down: nothing lost, nothing marked
    delivered.down = False
    assert events.private_events_redeliver(older_than_sec=0) == 4
    assert [s for _, s, _ in delivered.seen] == [1, 2, 3, 4]
    assert not PrivateEvent.objects.filter(delivered_at__isnull=True).exists()


def test_a_resync_returns_what_was_missed_and_reports_purged_ranges_as_gaps(user: Any, delivered: Recorder) -> None:
    for i in range(6):
        events.publish_private(user_id=user.pk, event_type="order_update", data={"i": i})
    r = events.private_events_since(user_id=user.pk, since=2)
    assert [e["seq"] for e in r.events] == [3, 4, 5, 6] and r.gap is False and r.last_seq == 6
    PrivateEvent.objects.filter(user=user, seq__lte=4).delete()  # purged
    r = events.private_events_since(user_id=user.pk, since=2)
    assert [e["seq"] for e in r.events] == [5, 6] and r.gap is True
    assert events.private_events_since(user_id=user.pk, since=0).gap is True
    r = events.private_events_since(user_id=user.pk, since=99)  # a client from before a reset
    assert r.gap is True and r.last_seq == 6
    assert events.private_events_since(user_id=user.pk, since=6).events == []
    assert events.private_events_since(user_id=user.pk, since=6).gap is False
    r = events.private_events_since(user_id=user.pk, since=4, limit=1)
    assert [e["seq"] for e in r.events] == [5] and r.gap is True  # more waiting than one answer carries


def test_events_of_a_rolled_back_change_are_never_published(user: Any, delivered: Recorder) -> None:
    from django.db import transaction

    with pytest.raises(RuntimeError), transaction.atomic():
        events.publish_private(user_id=user.pk, event_type="order_update", data={})
        raise RuntimeError("rolled back")
    assert delivered.seen == [] and not PrivateEvent.objects.exists()


def test_a_redis_broadcaster_restart_keeps_numbers_going_up(user: Any, redis_url: str, settings: Any) -> None:
    """Through the real Redis broadcaster: numbers come from the database, so losing Redis state changes nothing."""
    from kernel import realtime

    settings.REDIS_URL = redis_url
    async_to_sync(realtime.reset_broadcaster)()
    try:
        events.publish_private(user_id=user.pk, event_type="order_update", data={})
        import redis

        redis.Redis.from_url(redis_url).flushall()  # what a restart without persistence leaves
        events.publish_private(user_id=user.pk, event_type="order_update", data={})
        assert list(PrivateEvent.objects.filter(user=user).values_list("seq", flat=True)) == [1, 2]
        assert PrivateEvent.objects.filter(delivered_at__isnull=False).count() == 2
    finally:
        async_to_sync(realtime.reset_broadcaster)()
