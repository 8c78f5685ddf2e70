"""The one venue client's shared IP budget: priorities with ceilings and reserves, cancels never refused, per-user
read quotas, the backoff after a 429, per-item extras, and what happens without the shared cache."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.test import override_settings

from deploy.servers import free_port
from kernel.venue import client as vc
from tests.factories import unreachable_redis_caches

CAP = 1000.0


def test_room_keeps_the_other_priorities_unused_reserves() -> None:
    idle = dict.fromkeys(vc.PRIORITIES, 0)
    # Idle: market data may fill up to its ceiling minus orders', reconciliation's and reads' reserves.
    assert vc.room_for(vc.MARKET, idle, CAP) == pytest.approx(750 - 150 - 150 - 50)
    assert vc.room_for(vc.ORDER, idle, CAP) == pytest.approx(1000 - 150 - 50)
    # A market burst at its limit leaves reconciliation its reserve and more, and orders theirs and more.
    burst = {**idle, vc.MARKET: 400}
    assert vc.room_for(vc.MARKET, burst, CAP) == 0
    assert vc.room_for(vc.BACKGROUND, burst, CAP) == pytest.approx(850 - 150 - 50 - 400)
    assert vc.room_for(vc.ORDER, burst, CAP) == pytest.approx(1000 - 150 - 50 - 400)
    # Orders flooding the minute still leave reconciliation its reserve (and account reads theirs).
    flood = {**idle, vc.ORDER: 800}
    assert vc.room_for(vc.ORDER, flood, CAP) == 0
    assert vc.room_for(vc.BACKGROUND, flood, CAP) == pytest.approx(150)
    assert vc.room_for(vc.ACCOUNT, flood, CAP) == pytest.approx(50)


def test_market_data_and_reconciliation_at_their_ceilings_never_starve_orders() -> None:
    """Orders past their own reserve (a busy minute) still find the room above the lower priorities' ceilings."""
    busy = {**dict.fromkeys(vc.PRIORITIES, 0), vc.ORDER: 250, vc.ACCOUNT: 50, vc.MARKET: 400}
    assert vc.room_for(vc.BACKGROUND, busy, CAP) == pytest.approx(850 - 700)
    busy[vc.BACKGROUND] = 150
    assert vc.room_for(vc.BACKGROUND, busy, CAP) == 0 and vc.room_for(vc.MARKET, busy, CAP) == 0
    assert vc.room_for(vc.ORDER, busy, CAP) == pytest.approx(150)
    # Never past the whole budget, even for a priority's own reserve.
    full = {**dict.fromkeys(vc.PRIORITIES, 0), vc.ORDER: 990}
    assert vc.room_for(vc.BACKGROUND, full, CAP) == pytest.approx(10)


def test_each_priority_is_refused_at_its_own_limit_but_cancels_never(settings: Any) -> None:
    settings.VENUE_WEIGHT_PER_MIN = 100
    now = time.time()
    for _ in range(20):
        vc.budget_take(2, priority=vc.MARKET, now=now)  # 40 = its room (75 - 15 - 15 - 5)
    with pytest.raises(vc.VenueError) as refused:
        vc.budget_take(2, priority=vc.MARKET, now=now)
    assert refused.value.kind == "budget" and refused.value.not_sent and refused.value.retry_after > 0
    vc.budget_take(15, priority=vc.BACKGROUND, now=now)  # reconciliation still has its reserve
    vc.budget_take(15, priority=vc.ORDER, now=now)  # and orders theirs
    for _ in range(50):
        vc.budget_take(1, priority=vc.CANCEL, now=now)  # counted, never refused
    assert vc.budget_used(now)["by_priority"][vc.CANCEL] == 50


def test_one_users_read_quota_stops_that_user_only(settings: Any) -> None:
    settings.VENUE_USER_WEIGHT_PER_MIN = 6
    now = time.time()
    for _ in range(3):
        vc.user_quota_take(1, 2, now=now)
    with pytest.raises(vc.VenueError):
        vc.user_quota_take(1, 2, now=now)
    vc.user_quota_take(2, 2, now=now)


def test_a_429_backs_off_doubling_to_the_cap_and_a_success_resets_it(settings: Any) -> None:
    settings.VENUE_BACKOFF_MAX_SEC = 2.0
    assert [vc.backoff_start() for _ in range(4)] == [0.5, 1.0, 2.0, 2.0]
    assert 1.5 < vc.backoff_remaining() <= 2.0
    vc._backoff_clear_level()
    assert vc.backoff_start() == 0.5


def test_per_item_extras_are_charged_after_the_answer() -> None:
    assert vc.info_weight({"type": "userFills"}) == 20
    assert vc.info_extra_weight({"type": "userFills"}, [{}] * 45) == 2
    assert vc.info_extra_weight({"type": "candleSnapshot"}, [{}] * 130) == 2
    assert vc.info_extra_weight({"type": "l2Book"}, {"levels": []}) == 0
    assert vc.exchange_weight({"type": "order", "orders": [{}] * 85}) == 3


def test_a_backoff_refuses_everything_but_cancels_without_sending(settings: Any) -> None:
    client = vc.VenueClient(f"http://127.0.0.1:{free_port()}")  # nothing listens: a send would fail differently
    vc.backoff_start()
    with pytest.raises(vc.VenueError) as refused:
        client.info({"type": "l2Book", "coin": "BTC"}, priority=vc.ORDER)
    assert refused.value.kind == "backoff"
    with pytest.raises(vc.VenueError) as sent:
        client.info({"type": "l2Book", "coin": "BTC"}, priority=vc.CANCEL, timeout=1)
    assert sent.value.kind == "server"  # the cancel went out (and found nobody listening)


def test_without_the_shared_cache_requests_go_through_and_nothing_raises() -> None:
    with override_settings(CACHES=unreachable_redis_caches(timeout=0.2)):
        vc.budget_take(300, priority=vc.MARKET)
        vc.user_quota_take(1, 100000)
        assert vc.backoff_remaining() == 0.0
        assert vc.backoff_start() == 0.5
