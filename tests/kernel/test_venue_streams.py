"""The venue's WebSocket side: frames as the SDK sends them, and the user-feed socket against the simulator."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import orjson
import pytest

from deploy.servers import free_port
from kernel.venue import streams
from kernel.venue.streams import UserFeedSocket

ADDRESS = "0x" + "ab" * 20


def test_frames_and_url_match_the_sdk() -> None:
    assert streams.ws_url("https://api.hyperliquid.xyz/") == "wss://api.hyperliquid.xyz/ws"
    assert streams.ws_url("http://127.0.0.1:9001") == "ws://127.0.0.1:9001/ws"
    assert orjson.loads(streams.sub_frame("subscribe", "l2Book", "kPEPE")) == {
        "method": "subscribe",
        "subscription": {"type": "l2Book", "coin": "kPEPE"},
    }
    assert orjson.loads(streams.sub_frame("unsubscribe", "userFills", user=ADDRESS)) == {
        "method": "unsubscribe",
        "subscription": {"type": "userFills", "user": ADDRESS},
    }


def test_backoff_grows_with_jitter_and_stops_at_the_cap() -> None:
    rng = random.Random(7)
    for attempt in range(12):
        delay = streams.backoff_delay(attempt, base=0.25, cap=5.0, rng=rng)
        assert 0.125 <= delay <= min(5.0, 0.25 * 2**attempt)


def test_user_feed_socket_hands_over_user_channels_only(sim_thread: Any) -> None:
    """Subscribed to one user's three feeds, it receives the simulator's snapshots on orderUpdates / userFills /
    user, skips the subscription acks, and says None when nothing more comes in time."""

    async def scenario() -> tuple[dict[str, Any], Any]:
        seen: dict[str, Any] = {}
        async with UserFeedSocket(sim_thread.sim.base_url, ADDRESS) as feed:
            for _ in range(10):
                push = await feed.next(timeout=2.0)
                if push is None:
                    break
                channel, data = push
                assert channel in streams.USER_CHANNELS
                seen[channel] = data
            quiet = await feed.next(timeout=0.2)
        return seen, quiet

    seen, quiet = asyncio.run(scenario())
    assert set(seen) == {"userFills"}  # the simulator's only snapshot on subscribe (acks are not handed over)
    assert seen["userFills"] == {"isSnapshot": True, "user": ADDRESS, "fills": []}
    assert quiet is None


def test_user_feed_socket_refuses_an_unreachable_venue() -> None:
    async def scenario() -> None:
        async with UserFeedSocket(f"http://127.0.0.1:{free_port()}", ADDRESS, open_timeout=2.0):
            pass

    with pytest.raises(OSError):
        asyncio.run(scenario())
