"""Private streams over real WebSockets, signed in through the real /auth endpoints of the same ASGI app."""

from __future__ import annotations

import asyncio

import aiohttp
import orjson
import pytest
import websockets
from eth_account import Account

from kernel import realtime
from tests.accounts.siwe import sign_text
from tests.markets.gateway import ORIGIN, connect, fresh_broadcaster, recv_all, recv_json, serve

pytestmark = pytest.mark.django_db(transaction=True)
USERS = 50


async def _sign_in(http: str, account) -> tuple[aiohttp.ClientSession, str, int]:
    session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with session.get(f"{http}/auth/nonce", params={"address": account.address}) as r:
        assert r.status == 200, await r.text()
        challenge = await r.json()
    csrf = next(c.value for c in session.cookie_jar if c.key == "csrftoken")
    body = {"message": challenge["message"], "signature": sign_text(account, challenge["message"])}
    async with session.post(f"{http}/auth/verify", json=body, headers={"X-CSRFToken": csrf}) as r:
        assert r.status == 200, await r.text()
    key = next(c.value for c in session.cookie_jar if c.key == "sessionid")
    from accounts.models import User

    user_id = await User.objects.filter(address=account.address).values_list("pk", flat=True).aget()
    return session, key, user_id


async def _logout(session: aiohttp.ClientSession, http: str) -> None:
    csrf = next(c.value for c in session.cookie_jar if c.key == "csrftoken")
    async with session.post(f"{http}/auth/logout", json={}, headers={"X-CSRFToken": csrf}) as r:
        assert r.status == 200, await r.text()


async def test_fifty_users_get_only_their_own_events_and_logout_closes_the_socket(settings) -> None:
    settings.AUTH_RATE_LIMIT_PER_IP = 10_000
    async with fresh_broadcaster() as broadcaster, serve() as ws_url:
        http = ws_url.replace("ws://", "http://").removesuffix("/ws")
        accounts = [Account.create() for _ in range(USERS)]
        signed = await asyncio.gather(*(_sign_in(http, a) for a in accounts))
        sockets = []
        try:
            for _, key, _ in signed:
                ws = await connect(ws_url, cookie=f"sessionid={key}").__aenter__()
                sockets.append(ws)
                await ws.send('{"type":"subscribe_private"}')
                assert (await recv_json(ws))["type"] == "subscribed_private"
            for _, _, user_id in signed:
                for n in range(2):
                    await broadcaster.publish_private(
                        user_id=user_id, event_type="order_update", data={"owner": user_id, "n": n}
                    )
            received = await asyncio.gather(*(recv_all(ws, 0.5) for ws in sockets))
            leaks = sum(
                1
                for (_, _, uid), frames in zip(signed, received, strict=True)
                for f in frames
                if f["data"]["owner"] != uid
            )
            assert leaks == 0
            assert [len(frames) for frames in received] == [2] * USERS

            # Logout of the first five: their sockets close and no private frame reaches them afterwards.
            for session, _, _ in signed[:5]:
                await _logout(session, http)
            for (_, _, user_id), ws in zip(signed[:5], sockets[:5], strict=True):
                await broadcaster.publish_private(user_id=user_id, event_type="order_update", data={"owner": user_id})
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    while True:
                        frame = await recv_json(ws, 3.0)
                        assert frame.get("type") != "order_update" and "seq" not in frame, frame
                assert closed.value.rcvd is not None and closed.value.rcvd.code == realtime.CLOSE_SESSION_ENDED
            # Everyone else is still served.
            _, _, other = signed[5]
            await broadcaster.publish_private(user_id=other, event_type="order_update", data={"owner": other})
            assert (await recv_json(sockets[5]))["data"] == {"owner": other}
        finally:
            for ws in sockets:
                await ws.close()
            for session, _, _ in signed:
                await session.close()
            from asgiref.sync import sync_to_async
            from django.db import connections

            await sync_to_async(connections.close_all)()  # the ASGI views' thread holds one


@pytest.mark.parametrize(
    ("allowed", "origin"),
    [
        (["http://127.0.0.1:8000"], "http://evil.example"),
        (["http://127.0.0.1:8000"], None),
        (["https://hs.example"], "http://hs.example"),
    ],
)
async def test_a_websocket_from_a_foreign_or_missing_or_downgraded_origin_is_refused(allowed, origin) -> None:
    async with fresh_broadcaster("local"), serve(allowed) as url:
        with pytest.raises((websockets.InvalidStatus, websockets.ConnectionClosed)):
            async with connect(url, origin=origin) as ws:
                await ws.send('{"type":"ping"}')
                await recv_json(ws)


async def test_a_websocket_from_the_pinned_origin_is_accepted() -> None:
    async with fresh_broadcaster("local"), serve() as url, connect(url, origin=ORIGIN) as ws:
        await ws.send('{"type":"ping"}')
        assert orjson.loads(await asyncio.wait_for(ws.recv(), 3))["type"] == "pong"
