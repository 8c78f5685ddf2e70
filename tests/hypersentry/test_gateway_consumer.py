"""GatewayConsumer, /ws's control plane as a Channels consumer, through channels.testing.WebsocketCommunicator.

The end-to-end behaviour (real uvicorn, real clients: limits, origins, 1009, private streams) is in
tests/markets/test_gateway*.py, tests/hypersentry/test_edges*.py, test_websocket_origin.py and
tests/execution/test_private_stream*.py; this file covers what being a consumer
adds: routing, the channel layer as the way in for groups, and no consumer dispatch for data frames."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from importlib import import_module
from typing import Any

import orjson
import pytest
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings

from hypersentry.gateway import MAX_STRIKES, GatewayConsumer
from hypersentry.routing import websocket_urlpatterns
from kernel import realtime
from kernel.channel_layer import CLOSE, EVENT, FRAME, RealtimeChannelLayer, public_group, session_group, user_group
from markets.hotstate import MemoryHotState
from tests.factories import symbol_snapshot
from tests.markets.gateway import fresh_broadcaster, make_user_session

pytestmark = pytest.mark.django_db(transaction=True)


class CountingConsumer(GatewayConsumer):
    """GatewayConsumer that counts what went through consumer dispatch."""

    dispatched: list[str] = []

    async def dispatch(self, message: dict[str, Any]) -> None:
        CountingConsumer.dispatched.append(message["type"])
        await super().dispatch(message)


@pytest.fixture(params=["memory", "redis"])
async def layer(request: pytest.FixtureRequest) -> AsyncIterator[RealtimeChannelLayer]:
    async with fresh_broadcaster("local" if request.param == "memory" else "default"):
        layer = get_channel_layer()
        assert isinstance(layer, RealtimeChannelLayer) and layer.transport == request.param
        yield layer


@contextlib.asynccontextmanager
async def communicator(*, user: Any = None, session_key: str | None = None) -> AsyncIterator[WebsocketCommunicator]:
    """A connected socket to the consumer, disconnected at the end of the block whatever happened in it."""
    CountingConsumer.dispatched = []
    comm = WebsocketCommunicator(CountingConsumer.as_asgi(), "/ws")
    if user is not None:
        store = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
        comm.scope["user"], comm.scope["session"] = user, store
    connected, _ = await comm.connect(timeout=5)
    assert connected
    try:
        yield comm
    finally:
        await comm.disconnect()


async def send(comm: WebsocketCommunicator, frame: dict[str, Any]) -> dict[str, Any]:
    await comm.send_to(text_data=orjson.dumps(frame).decode())
    return orjson.loads(await comm.receive_from(timeout=3))  # type: ignore[no-any-return]


def test_ws_is_routed_to_a_channels_consumer() -> None:
    (route,) = websocket_urlpatterns
    assert str(route.pattern) == "ws"
    assert route.callback.consumer_class is GatewayConsumer
    assert issubclass(GatewayConsumer, AsyncWebsocketConsumer)


async def test_data_frames_bypass_consumer_dispatch_and_control_frames_skip_the_db_hop(
    layer: RealtimeChannelLayer, monkeypatch: pytest.MonkeyPatch
) -> None:
    hops: list[int] = []

    async def counting_hop() -> None:
        hops.append(1)

    # Channels' own per-dispatch hop (a sync_to_async round trip): counted where stock consumers call it.
    monkeypatch.setattr("channels.consumer.aclose_old_connections", counting_hop)
    monkeypatch.setattr("channels.generic.websocket.aclose_old_connections", counting_hop)
    async with communicator() as comm:
        ack = await send(comm, {"type": "subscribe", "coin": "BTC", "channels": ["public.market", "public.alpha"]})
        assert ack == {"type": "subscribed", "coin": "BTC", "channels": ["public.market", "public.alpha"]}
        assert (await send(comm, {"type": "ping"}))["type"] == "pong"
        for i in range(20):
            await layer.group_send(
                public_group("public.market", "BTC"),
                {"type": FRAME, "text": f'{{"n":{i}}}', "event_type": "agg_update"},
            )
        got = [orjson.loads(await comm.receive_from(timeout=3))["n"] for _ in range(20)]
        assert got == list(range(20))
        assert CountingConsumer.dispatched == ["websocket.connect", "websocket.receive", "websocket.receive"]
    assert hops == []


async def test_subscribe_acks_then_sends_the_snapshot_and_unsubscribe_leaves_the_group(
    layer: RealtimeChannelLayer, memory_hot_state: MemoryHotState
) -> None:
    await memory_hot_state.put_many([symbol_snapshot("ETH")])
    async with communicator() as comm:
        ack = await send(comm, {"type": "subscribe", "coin": "eth"})
        assert ack == {"type": "subscribed", "coin": "ETH", "channels": ["public.market"]}
        snap = orjson.loads(await comm.receive_from(timeout=3))
        assert (snap["event_type"], snap["symbol"], snap["source"]) == ("agg_update", "ETH", "snapshot")
        (conn,) = layer.hub.connections
        assert conn.topics == {realtime.topic_for("public.market", "ETH")}
        left = await send(comm, {"type": "unsubscribe", "coin": "ETH", "channels": ["public.market", "public.alpha"]})
        assert left == {"type": "unsubscribed", "coin": "ETH", "channels": ["public.market"]}
        assert conn.topics == set() and not layer.hub.topics
        await layer.group_send(public_group("public.market", "ETH"), {"type": FRAME, "text": '{"late":1}'})
        assert await comm.receive_nothing(timeout=0.3)
    assert not layer.hub.connections and not layer.hub.channels and not layer.hub.bound


async def test_private_channels_need_a_signed_in_user(layer: RealtimeChannelLayer) -> None:
    async with communicator() as comm:
        error = await send(comm, {"type": "subscribe_private"})
        assert (error["type"], error["code"]) == ("error", "authentication_required")
        assert not layer.hub.users


async def test_a_signed_in_socket_gets_its_private_events_and_closes_4001_on_logout(
    layer: RealtimeChannelLayer,
) -> None:
    user, session_key = await make_user_session("0x" + "ab" * 20)
    other, _ = await make_user_session("0x" + "cd" * 20)
    async with communicator(user=user, session_key=session_key) as comm:
        ack = await send(comm, {"type": "subscribe_private", "channels": ["private.execution"]})
        assert ack == {"type": "subscribed_private", "channels": ["private.execution"]}
        for uid in (other.pk, user.pk):
            await layer.group_send(
                user_group(uid, "private.execution"),
                {"type": EVENT, "event_type": "order_update", "data": {"uid": uid}, "symbol": "BTC", "seq": 5},
            )
        frame = orjson.loads(await comm.receive_from(timeout=3))
        assert (frame["event_type"], frame["seq"], frame["data"]) == ("order_update", 5, {"uid": user.pk})

        await layer.group_send(session_group(session_key), {"type": CLOSE, "reason": "logout"})
        assert await comm.receive_output(timeout=3) == {"type": "websocket.close", "code": 4001, "reason": "logout"}
        await asyncio.wait_for(comm.future, 3)  # the consumer ended by itself: no cancellation, no error
        assert comm.future.exception() is None
    assert not layer.hub.connections and not layer.hub.users and not layer.hub.sessions


async def test_abuse_closes_with_4008_and_ends_the_consumer(layer: RealtimeChannelLayer) -> None:
    async with communicator() as comm:
        for _ in range(MAX_STRIKES):
            await comm.send_to(text_data="not json")
            assert orjson.loads(await comm.receive_from(timeout=3))["code"] == "invalid_json"
        await comm.send_to(text_data="not json")
        assert await comm.receive_output(timeout=3) == {
            "type": "websocket.close",
            "code": realtime.CLOSE_POLICY,
            "reason": "policy_violation",
        }
        await asyncio.wait_for(comm.future, 3)
        assert comm.future.exception() is None
    assert not layer.hub.connections


async def test_the_consumer_refuses_to_run_on_another_channel_layer(settings) -> None:  # type: ignore[no-untyped-def]
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    comm = WebsocketCommunicator(GatewayConsumer.as_asgi(), "/ws")
    with pytest.raises(Exception, match="RealtimeChannelLayer"):
        await comm.connect(timeout=3)
