"""The /ws gateway end to end: a real uvicorn server, real `websockets` clients, the real publish path."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import orjson
import pytest
import websockets

from kernel import realtime
from tests.markets.gateway import (
    ENVELOPE_FIELDS,
    agg_text,
    connect,
    fresh_broadcaster,
    recv_json,
    recv_until,
    serve,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(params=["redis", "local"])
async def server(request: pytest.FixtureRequest) -> AsyncIterator[tuple[str, realtime.Broadcaster]]:
    async with fresh_broadcaster("local" if request.param == "local" else "default") as broadcaster:
        assert isinstance(
            broadcaster, realtime.LocalBroadcaster if request.param == "local" else realtime.RedisBroadcaster
        )
        async with serve() as url:
            yield url, broadcaster


@contextlib.asynccontextmanager
async def feeding(broadcaster: realtime.Broadcaster, symbols: list[str], every: float = 0.05) -> AsyncIterator[None]:
    async def run() -> None:
        seq = 0
        while True:
            seq += 1
            for s in symbols:
                await broadcaster.publish(
                    channel="public.market", symbol=s, text=agg_text(s, seq), event_type="agg_update"
                )
            await asyncio.sleep(every)

    task = asyncio.create_task(run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_subscriber_gets_btc_agg_updates_within_two_seconds(server: tuple[str, realtime.Broadcaster]) -> None:
    url, broadcaster = server
    async with connect(url) as ws, feeding(broadcaster, ["BTC", "ETH"]):
        started = time.monotonic()
        await ws.send(orjson.dumps({"type": "subscribe", "coin": "btc", "channels": ["public.market"]}))
        ack = await recv_json(ws)
        assert ack == {"type": "subscribed", "coin": "BTC", "channels": ["public.market"]}
        envelopes = [await recv_until(ws, lambda f: "event_type" in f, timeout=2.0) for _ in range(3)]
        assert time.monotonic() - started < 2.0
        for env in envelopes:
            assert set(env) == ENVELOPE_FIELDS
            assert env["event_type"] == "agg_update" and env["symbol"] == "BTC"  # symbol filter: no ETH
        assert envelopes[0]["seq"] < envelopes[-1]["seq"]


async def test_ping_is_answered_and_unsubscribe_stops_delivery(server: tuple[str, realtime.Broadcaster]) -> None:
    url, broadcaster = server
    async with connect(url) as ws, feeding(broadcaster, ["BTC"]):
        await ws.send('{"type":"ping"}')
        assert (await recv_json(ws))["type"] == "pong"
        await ws.send('{"type":"subscribe","coin":"BTC"}')
        await recv_until(ws, lambda f: f.get("event_type") == "agg_update")
        await ws.send('{"type":"unsubscribe","coin":"BTC"}')
        await recv_until(ws, lambda f: f.get("type") == "unsubscribed")
        await asyncio.sleep(0.15)
        while True:  # drain what was in flight, then nothing more arrives
            try:
                await asyncio.wait_for(ws.recv(), 0.3)
            except TimeoutError:
                break


BAD_FRAMES = [
    ("not json", "invalid_json"),
    ("[1, 2]", "invalid_frame"),
    ('{"type":"launch_missiles"}', "unknown_type"),
    ('{"coin":"BTC"}', "unknown_type"),
    ('{"type":"subscribe","coin":"BTC","channels":["public.nope"]}', "invalid_channel"),
    ('{"type":"subscribe","coin":"BTC","channels":["private.account"]}', "invalid_channel"),
    ('{"type":"subscribe","coin":"BTC","channels":"public.market"}', "invalid_channel"),
    ('{"type":"subscribe","coin":"B TC!"}', "invalid_symbol"),
    ('{"type":"subscribe","coin":42}', "invalid_symbol"),
    ('{"type":"subscribe","coin":"' + "A" * 40 + '"}', "invalid_symbol"),
    ('{"type":"ping","pad":"' + "x" * 5000 + '"}', "frame_too_large"),
]


@pytest.mark.parametrize(("frame", "code"), BAD_FRAMES, ids=[c for _, c in BAD_FRAMES])
async def test_a_bad_frame_gets_an_error_code_and_the_socket_stays_open(frame: str, code: str) -> None:
    async with fresh_broadcaster("local"), serve() as url, connect(url) as ws:
        await ws.send(frame)
        error = await recv_json(ws)
        assert error["type"] == "error" and error["code"] == code and error["message"]
        await ws.send('{"type":"ping"}')
        assert (await recv_json(ws))["type"] == "pong"


async def test_too_many_subscriptions_are_refused(settings) -> None:  # type: ignore[no-untyped-def]
    settings.WS_MAX_SUBSCRIPTIONS = 2
    async with fresh_broadcaster("local"), serve() as url, connect(url) as ws:
        await ws.send('{"type":"subscribe","coin":"BTC","channels":["public.market","public.alpha"]}')
        assert (await recv_json(ws))["type"] == "subscribed"
        await ws.send('{"type":"subscribe","coin":"ETH"}')
        error = await recv_json(ws)
        assert error["code"] == "too_many_subscriptions"
        await ws.send('{"type":"unsubscribe","coin":"BTC","channels":["public.alpha"]}')
        assert (await recv_json(ws))["type"] == "unsubscribed"
        await ws.send('{"type":"subscribe","coin":"ETH"}')
        assert (await recv_json(ws))["type"] == "subscribed"


async def test_message_rate_is_limited_and_continued_abuse_closes_with_policy(settings) -> None:  # type: ignore[no-untyped-def]
    settings.WS_MAX_MESSAGES_PER_SEC = 5
    async with fresh_broadcaster("local"), serve() as url, connect(url) as ws:
        for _ in range(30):
            await ws.send('{"type":"ping"}')
        codes = []
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                codes.append((await recv_json(ws)).get("code"))
        assert codes.count(None) == 5  # the burst's pongs
        assert "rate_limited" in codes
        assert closed.value.rcvd is not None and closed.value.rcvd.code == realtime.CLOSE_POLICY


async def test_continued_bad_frames_close_the_socket_with_a_reason() -> None:
    async with fresh_broadcaster("local"), serve() as url, connect(url) as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            for _ in range(20):
                await ws.send("garbage")
                await recv_json(ws)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == realtime.CLOSE_POLICY and closed.value.rcvd.reason == "policy_violation"


@pytest.mark.parametrize(
    "origin", ["https://evil.example", "http://127.0.0.1:8001", None, "http://terminal.example.com"]
)
async def test_foreign_missing_or_downgraded_origins_are_refused(origin: str | None) -> None:
    async with fresh_broadcaster("local"), serve(["https://terminal.example.com"]) as url:
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with connect(url, origin=origin):
                pass
        assert refused.value.response.status_code == 403
        async with connect(url, origin="https://terminal.example.com") as ws:
            await ws.send('{"type":"ping"}')
            assert (await recv_json(ws))["type"] == "pong"


async def _lagging_connection(
    sent: list[str], gate: asyncio.Event
) -> tuple[realtime.LocalBroadcaster, realtime.Connection]:
    async def send(message: dict) -> None:  # type: ignore[type-arg]
        sent.append(message.get("text", ""))
        if len(sent) == 1:
            await gate.wait()  # the first frame blocks: the socket is lagging until the gate opens

    hub = realtime.Hub()
    conn = realtime.Connection(send=send, max_private=10)
    hub.add(conn)
    hub.join(conn, realtime.topic_for("public.market", "BTC"))
    return realtime.LocalBroadcaster(hub), conn


async def test_a_lagging_socket_gets_the_latest_frame_per_key_and_candles_keep_their_own_key() -> None:
    sent: list[str] = []
    gate = asyncio.Event()
    broadcaster, conn = await _lagging_connection(sent, gate)
    before = realtime.STATS.conflated

    async def publish(text: str, event_type: str) -> None:
        await broadcaster.publish(channel="public.market", symbol="BTC", text=text, event_type=event_type)

    await publish("snap1", "agg_update")
    assert conn.lagging
    await publish("snap2", "agg_update")
    await publish("candle1", "agg_update:candle")  # ingest's candle frames: same wire event_type, own key
    await publish("snap3", "agg_update")
    gate.set()
    for _ in range(100):
        if not conn.lagging:
            break
        await asyncio.sleep(0.01)
    assert sent == ["snap1", "snap3", "candle1"]  # snap2 conflated away; the candle is not replaced by snap3
    assert conn.conflated == 1 and realtime.STATS.conflated - before == 1
    assert conn.sent == 3


async def test_the_gateway_sends_past_channels_session_wrapper_only() -> None:
    from channels.sessions import InstanceSessionWrapper

    from hypersentry.gateway import server_send

    async def raw(message: dict) -> None:  # type: ignore[type-arg]
        return None

    wrapper = InstanceSessionWrapper({"cookies": {}}, raw)
    outer = InstanceSessionWrapper({"cookies": {}}, wrapper.send)
    assert server_send(outer.send) is raw  # nested wrappers are peeled
    assert server_send(raw) is raw
    wrapper.save_message_types = ["http.response.start", "websocket.send"]  # a wrapper that acts on ws frames
    assert server_send(wrapper.send) == wrapper.send


async def test_a_send_that_is_a_plain_function_or_raises_does_not_break_the_fan_out() -> None:
    delivered: list[str] = []

    def plain(message: dict) -> None:  # type: ignore[type-arg]
        delivered.append(message["text"])

    async def broken(message: dict) -> None:  # type: ignore[type-arg]
        raise OSError("peer gone")

    hub = realtime.Hub()
    ok, bad = realtime.Connection(send=plain, max_private=10), realtime.Connection(send=broken, max_private=10)
    for conn in (ok, bad):
        hub.add(conn)
        hub.join(conn, realtime.topic_for("public.market", "ETH"))
    assert hub.dispatch(channel="public.market", symbol="ETH", text="x", event_type="agg_update") == 2
    assert delivered == ["x"] and not ok.closed and ok.sent == 1
    assert bad.closed and bad.close_reason == "disconnected"
