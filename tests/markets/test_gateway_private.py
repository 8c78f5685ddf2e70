"""Private plumbing, slow clients and the split topology (publisher in another process)."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import orjson
import pytest
import websockets
from asgiref.sync import sync_to_async

from kernel import realtime
from tests.markets.gateway import (
    agg_text,
    connect,
    fresh_broadcaster,
    make_user_session,
    recv_json,
    recv_until,
    serve,
)

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parents[2]


async def test_anonymous_subscribe_private_is_refused() -> None:
    async with fresh_broadcaster(), serve() as url, connect(url) as ws:
        await ws.send('{"type":"subscribe_private","channels":["private.execution","private.account"]}')
        error = await recv_json(ws)
        assert error["type"] == "error" and error["code"] == "authentication_required"


@pytest.mark.parametrize("kind", ["redis", "local"])
async def test_a_user_gets_only_their_own_private_events_and_logout_closes_the_socket(kind: str) -> None:
    alice, alice_key = await make_user_session("0x" + "a" * 40)
    bob, bob_key = await make_user_session("0x" + "b" * 40)
    async with (
        fresh_broadcaster("local" if kind == "local" else "default") as broadcaster,
        serve() as url,
        connect(url, cookie=f"sessionid={alice_key}") as ws_a,
        connect(url, cookie=f"sessionid={bob_key}") as ws_b,
    ):
        for ws in (ws_a, ws_b):
            await ws.send('{"type":"subscribe_private"}')
            ack = await recv_json(ws)
            assert ack == {"type": "subscribed_private", "channels": ["private.account", "private.execution"]}
        # Sequence numbers are assigned durably by execution.services.events; the broadcaster carries them.
        seq1 = await broadcaster.publish_private(
            user_id=alice.pk, event_type="order_update", data={"oid": 1}, symbol="BTC", seq=41
        )
        seq2 = await broadcaster.publish_private(
            user_id=alice.pk, event_type="account_update", data={"equity": "10"}, seq=42
        )
        await broadcaster.publish_private(user_id=bob.pk, event_type="order_update", data={"oid": 99}, seq=7)
        assert (seq1, seq2) == (41, 42)
        first, second = await recv_json(ws_a), await recv_json(ws_a)
        assert (first["event_type"], first["symbol"], first["source"], first["seq"], first["data"]) == (
            "order_update",
            "BTC",
            "execution",
            seq1,
            {"oid": 1},
        )
        assert (second["event_type"], second["symbol"], second["seq"]) == ("account_update", "*", seq2)
        assert (await recv_json(ws_b))["data"] == {"oid": 99}
        with pytest.raises(TimeoutError):
            await recv_json(ws_a, timeout=0.3)

        await broadcaster.close_session_sockets(alice_key, "logout")
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await recv_json(ws_a)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == realtime.CLOSE_SESSION_ENDED
        await ws_b.send('{"type":"ping"}')
        assert (await recv_json(ws_b))["type"] == "pong"


async def test_a_deleted_session_is_noticed_by_the_periodic_recheck(settings) -> None:  # type: ignore[no-untyped-def]
    settings.WS_SESSION_RECHECK_SEC = 0.3
    _, key = await make_user_session("0x" + "c" * 40)
    async with fresh_broadcaster("local"), serve() as url, connect(url, cookie=f"sessionid={key}") as ws:
        await ws.send('{"type":"ping"}')
        assert (await recv_json(ws))["type"] == "pong"
        from django.contrib.sessions.models import Session

        await sync_to_async(Session.objects.filter(session_key=key).delete)()
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await recv_json(ws, timeout=3)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == realtime.CLOSE_SESSION_ENDED


async def test_a_slow_client_is_skipped_then_closed_and_nobody_else_slows_down(settings) -> None:  # type: ignore[no-untyped-def]
    settings.WS_SLOW_CLIENT_TIMEOUT_SEC = 1.0
    big = "x" * 200_000  # large frames fill the stalled socket's buffers quickly
    async with fresh_broadcaster("local") as broadcaster, serve() as url:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", int(url.split(":")[2].split("/")[0])))
        async with connect(url, sock=sock, max_queue=1) as slow, connect(url) as fast:
            for ws in (slow, fast):
                await ws.send('{"type":"subscribe","coin":"BTC"}')
                await recv_json(ws)
            # `slow` stops reading from here on.
            latencies = []
            hub = broadcaster.hub
            deadline = time.monotonic() + 15
            seq = 0
            while len(hub.connections) > 1 and time.monotonic() < deadline:
                seq += 1
                text = agg_text("BTC", seq).replace('"price":"100.0"', f'"price":"100.0","pad":"{big}"')
                await broadcaster.publish(channel="public.market", symbol="BTC", text=text, event_type="agg_update")
                frame = await recv_json(fast, timeout=2)
                latencies.append(time.time() * 1000 - frame["ts_ms"])
                await asyncio.sleep(0.02)
            assert len(hub.connections) == 1, "the stalled client was not closed"
            assert max(latencies) < 100, latencies
            with pytest.raises(websockets.ConnectionClosed):
                while True:
                    await asyncio.wait_for(slow.recv(), 5)


async def test_split_topology_a_publisher_process_reaches_a_web_process_client() -> None:
    async with fresh_broadcaster() as broadcaster, serve() as url:
        assert isinstance(broadcaster, realtime.RedisBroadcaster)
        async with connect(url) as ws:
            await ws.send('{"type":"subscribe","coin":"SOL"}')
            await recv_json(ws)
            script = textwrap.dedent(
                """
                import asyncio, django, time
                django.setup()
                from kernel.realtime import get_broadcaster
                from tests.markets.gateway import agg_text
                async def main():
                    b = get_broadcaster()
                    for seq in range(1, 30):
                        await b.publish(channel="public.market", symbol="SOL", text=agg_text("SOL", seq, price="42.5"),
                                        event_type="agg_update")
                        await asyncio.sleep(0.05)
                asyncio.run(main())
                """
            )
            env = {**os.environ, "DJANGO_SETTINGS_MODULE": "hypersentry.settings", "PYTHONPATH": str(ROOT)}
            proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, env=env)
            try:
                frame = await recv_until(ws, lambda f: f.get("event_type") == "agg_update", timeout=15)
                assert frame["symbol"] == "SOL" and frame["data"]["price"] == "42.5"
            finally:
                await asyncio.to_thread(proc.wait, 30)
            assert proc.returncode == 0
            assert orjson.loads(orjson.dumps(frame))["source"] == "hyperliquid"
