"""kernel.channel_layer: Channels' layer API over the realtime broadcaster, in memory and on a real Redis."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from channels.layers import BaseChannelLayer, get_channel_layer

from kernel import realtime
from kernel.channel_layer import (
    CLOSE,
    EVENT,
    FRAME,
    RealtimeChannelLayer,
    parse_public,
    parse_user,
    public_group,
    session_group,
    user_group,
)
from tests.markets.gateway import fresh_broadcaster


class Socket:
    """A socket's ASGI `send`: what reached it."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    async def __call__(self, message: dict[str, Any]) -> None:
        self.messages.append(message)

    @property
    def texts(self) -> list[str]:
        return [m["text"] for m in self.messages if m["type"] == "websocket.send"]


@pytest.fixture(params=["memory", "redis"])
async def layer(request: pytest.FixtureRequest) -> AsyncIterator[RealtimeChannelLayer]:
    """The configured layer over a fresh broadcaster: in memory (one process) or Redis pub/sub (split)."""
    async with fresh_broadcaster("local" if request.param == "memory" else "default") as broadcaster:
        layer = get_channel_layer()
        assert isinstance(layer, RealtimeChannelLayer)
        assert layer.transport == request.param
        assert isinstance(
            broadcaster, realtime.RedisBroadcaster if request.param == "redis" else realtime.LocalBroadcaster
        )
        await layer.ensure_receiving()
        yield layer


async def bound_socket(
    layer: RealtimeChannelLayer, *, user_id: int | None = None, session_key: str | None = None
) -> tuple[str, realtime.Connection, Socket]:
    """What GatewayConsumer does on connect: a channel name bound to the socket's Connection in the hub."""
    sock = Socket()
    conn = realtime.Connection(send=sock, user_id=user_id, session_key=session_key, max_private=100)
    name = await layer.new_channel()
    layer.hub.bind(name, conn)
    layer.hub.add(conn)
    return name, conn, sock


async def eventually(check: Any, timeout: float = 3.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if check():
            return
        await asyncio.sleep(0.01)
    assert check()


@pytest.mark.parametrize("symbol", ["BTC", "kPEPE", "PURR/USDC", "@107", "A_B-C.D", "x_2f"])
def test_group_names_are_valid_channels_groups_and_map_back_to_the_symbol(symbol: str) -> None:
    group = public_group("public.market", symbol)
    assert BaseChannelLayer().require_valid_group_name(group)
    assert parse_public(group) == ("public.market", symbol)
    assert parse_user(user_group(7, "private.account")) == (7, "private.account")
    assert BaseChannelLayer().require_valid_group_name(session_group("abc123def"))


def test_private_and_public_groups_refuse_the_other_kind_of_channel() -> None:
    with pytest.raises(ValueError):
        public_group("private.execution", "BTC")
    with pytest.raises(ValueError):
        user_group(7, "public.market")


async def test_group_send_to_a_public_group_reaches_every_subscribed_socket_once(layer: RealtimeChannelLayer) -> None:
    a_name, _, a = await bound_socket(layer)
    b_name, _, b = await bound_socket(layer)
    _, _, other = await bound_socket(layer)
    await layer.group_add(public_group("public.market", "PURR/USDC"), a_name)
    await layer.group_add(public_group("public.market", "PURR/USDC"), b_name)
    await layer.group_add(public_group("public.alpha", "PURR/USDC"), b_name)

    await layer.group_send(
        public_group("public.market", "PURR/USDC"), {"type": FRAME, "text": '{"n":1}', "event_type": "agg_update"}
    )
    await eventually(lambda: a.texts and b.texts)
    await asyncio.sleep(0.1)  # nothing else arrives
    assert a.texts == ['{"n":1}'] and b.texts == ['{"n":1}'] and other.texts == []

    await layer.group_discard(public_group("public.market", "PURR/USDC"), b_name)
    await layer.group_send(public_group("public.market", "PURR/USDC"), {"type": FRAME, "text": '{"n":2}'})
    await eventually(lambda: len(a.texts) == 2)
    await asyncio.sleep(0.1)
    assert a.texts == ['{"n":1}', '{"n":2}'] and b.texts == ['{"n":1}']


async def test_group_send_and_the_broadcaster_are_one_path(layer: RealtimeChannelLayer) -> None:
    name, conn, sock = await bound_socket(layer)
    await layer.group_add(public_group("public.market", "BTC"), name)
    assert conn.topics == {realtime.topic_for("public.market", "BTC")}
    offered = realtime.STATS.offered
    await realtime.get_broadcaster().publish(channel="public.market", symbol="BTC", text="a", event_type="agg_update")
    await layer.group_send(
        public_group("public.market", "BTC"), {"type": FRAME, "text": "b", "event_type": "agg_update"}
    )
    await eventually(lambda: len(sock.texts) == 2)
    assert sock.texts == ["a", "b"]
    assert realtime.STATS.offered - offered == 2  # both counted by the hub's one dispatch


async def test_private_groups_reach_only_that_users_sockets_on_that_channel(layer: RealtimeChannelLayer) -> None:
    mine, _, me = await bound_socket(layer, user_id=7)
    _, _, other_channel = await bound_socket(layer, user_id=7)
    theirs, _, them = await bound_socket(layer, user_id=8)
    await layer.group_add(user_group(7, "private.execution"), mine)
    await layer.group_add(user_group(8, "private.execution"), theirs)
    with pytest.raises(PermissionError):
        await layer.group_add(user_group(8, "private.execution"), mine)

    await layer.group_send(
        user_group(7, "private.execution"),
        {"type": EVENT, "event_type": "order_update", "data": {"oid": 1}, "symbol": "BTC", "seq": 42},
    )
    await layer.group_send(user_group(7, "private.execution"), {"type": FRAME, "text": '{"raw":true}'})
    await eventually(lambda: len(me.texts) == 2)
    await asyncio.sleep(0.1)
    assert '"event_type":"order_update"' in me.texts[0] and '"seq":42' in me.texts[0]
    assert me.texts[1] == '{"raw":true}'
    assert them.texts == [] and other_channel.texts == []
    with pytest.raises(ValueError):  # an account event is not an execution-channel event
        await layer.group_send(
            user_group(7, "private.execution"), {"type": EVENT, "event_type": "account_update", "data": {}}
        )


async def test_a_session_group_close_ends_that_sessions_sockets_with_4001(layer: RealtimeChannelLayer) -> None:
    _, ended, ended_sock = await bound_socket(layer, user_id=7, session_key="s1")
    _, kept, _ = await bound_socket(layer, user_id=7, session_key="s2")
    await layer.group_send(session_group("s1"), {"type": CLOSE, "reason": "logout"})
    await eventually(lambda: ended.closed)
    await asyncio.sleep(0.1)
    assert (ended.close_code, ended.close_reason) == (realtime.CLOSE_SESSION_ENDED, "logout")
    assert {"type": "websocket.close", "code": 4001, "reason": "logout"} in ended_sock.messages
    assert not kept.closed


async def test_plain_groups_and_channels_work_as_channels_layers_do(layer: RealtimeChannelLayer) -> None:
    one, two = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("chat.lobby", one)
    await layer.group_add("chat.lobby", two)
    await layer.group_send("chat.lobby", {"type": "chat.message", "text": "hi"})
    for name in (one, two):
        assert await asyncio.wait_for(layer.receive(name), 3) == {"type": "chat.message", "text": "hi"}
    await layer.group_discard("chat.lobby", two)
    await layer.send(two, {"type": "direct"})
    await layer.group_send("chat.lobby", {"type": "chat.message", "text": "again"})
    assert await asyncio.wait_for(layer.receive(one), 3) == {"type": "chat.message", "text": "again"}
    assert await asyncio.wait_for(layer.receive(two), 3) == {"type": "direct"}
    layer.discard_channel(one)
    assert one not in layer.hub.channels and "chat.lobby" not in layer.hub.groups


async def test_our_groups_take_only_bound_sockets_and_their_own_message_type(layer: RealtimeChannelLayer) -> None:
    unbound = await layer.new_channel()
    with pytest.raises(ValueError):
        await layer.group_add(public_group("public.market", "BTC"), unbound)
    with pytest.raises(ValueError):
        await layer.group_send(public_group("public.market", "BTC"), {"type": "chat.message", "text": "x"})
    with pytest.raises(ValueError):
        await layer.group_send(session_group("s1"), {"type": FRAME, "text": "x"})


@contextlib.asynccontextmanager
async def second_process(url: str) -> AsyncIterator[realtime.RedisBroadcaster]:
    """Another web process's receiving side: its own broadcaster, hub and Redis subscription."""
    other = realtime.RedisBroadcaster(url)
    await other.ensure_started()
    try:
        yield other
    finally:
        await other.stop()


async def test_on_redis_one_group_send_is_one_publish_that_every_process_fans_out(redis_url: str) -> None:
    import redis.asyncio as aioredis

    async with fresh_broadcaster() as broadcaster, second_process(redis_url) as other:
        layer = get_channel_layer()
        assert isinstance(layer, RealtimeChannelLayer) and isinstance(broadcaster, realtime.RedisBroadcaster)
        await layer.ensure_receiving()
        here, _, here_sock = await bound_socket(layer)
        await layer.group_add(public_group("public.market", "ETH"), here)
        there_socks = []
        for _ in range(3):
            sock = Socket()
            conn = realtime.Connection(send=sock, max_private=10)
            other.hub.add(conn)
            other.hub.join(conn, realtime.topic_for("public.market", "ETH"))
            there_socks.append(sock)

        client = aioredis.Redis.from_url(redis_url)

        async def publishes() -> int:
            return int((await client.info("commandstats")).get("cmdstat_publish", {}).get("calls", 0))

        try:
            before = await publishes()
            await layer.group_send(public_group("public.market", "ETH"), {"type": FRAME, "text": "eth-1"})
            after = await publishes()
        finally:
            await client.aclose()
        assert after - before == 1  # four sockets in two processes: one PUBLISH
        await eventually(lambda: here_sock.texts and all(s.texts for s in there_socks))
        assert here_sock.texts == ["eth-1"] and [s.texts for s in there_socks] == [["eth-1"]] * 3
