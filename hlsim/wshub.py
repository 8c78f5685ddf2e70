"""WebSocket subscriptions: parsing/validation, per-IP limits and fan-out (serialise once, send to all)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from hlsim.candles import INTERVAL_MS
from hlsim.orders import ADDRESS_RE

logger = logging.getLogger(__name__)

COIN_TYPES = ("l2Book", "trades", "bbo", "candle", "activeAssetCtx")
USER_TYPES = ("orderUpdates", "userFills", "userEvents", "userFundings", "notification")
# Push channel per subscription type (userEvents is pushed on `user`, as on the venue).
CHANNEL = {"userEvents": "user"}
MAX_QUEUED_FRAMES = 10_000


class SubscriptionError(Exception):
    pass


def subscription_key(*, sub: Any, coins: dict) -> tuple:
    """Canonical key of a subscription; raises SubscriptionError with the venue-style text."""
    if not isinstance(sub, dict) or not isinstance(sub.get("type"), str):
        raise SubscriptionError(f"Error parsing JSON into valid websocket request: {orjson.dumps(sub).decode()}")
    kind = sub["type"]
    raw = orjson.dumps(sub).decode()
    if kind == "allMids":
        return ("allMids",)
    if kind in COIN_TYPES:
        coin = sub.get("coin")
        if not isinstance(coin, str):
            raise SubscriptionError(f"Error parsing JSON into valid websocket request: {raw}")
        if coin not in coins:
            raise SubscriptionError(f"Invalid subscription: unknown coin {coin}")
        if kind == "candle":
            if sub.get("interval") not in INTERVAL_MS:
                raise SubscriptionError(f"Error parsing JSON into valid websocket request: {raw}")
            return ("candle", coin, sub["interval"])
        if kind == "l2Book":
            n_sig, mantissa = sub.get("nSigFigs"), sub.get("mantissa")
            if n_sig is not None and (not isinstance(n_sig, int) or not 2 <= n_sig <= 5):
                raise SubscriptionError(f"Error parsing JSON into valid websocket request: {raw}")
            if mantissa is not None and (mantissa not in (1, 2, 5) or n_sig != 5):
                raise SubscriptionError(f"Error parsing JSON into valid websocket request: {raw}")
            return ("l2Book", coin, n_sig, mantissa)
        return (kind, coin)
    if kind in USER_TYPES:
        user = sub.get("user")
        if not isinstance(user, str) or not ADDRESS_RE.match(user):
            raise SubscriptionError(f"Error parsing JSON into valid websocket request: {raw}")
        return (kind, user.lower())
    raise SubscriptionError(f"Error parsing JSON into valid websocket request: {raw}")


class WsConn:
    """One client connection with its own writer task, so a slow client never blocks the fan-out."""

    def __init__(self, *, ws: web.WebSocketResponse, ip: str, latency_ms: Any) -> None:
        self.ws = ws
        self.ip = ip
        self.subs: dict[tuple, dict] = {}
        self._frames: deque[tuple[float, bytes]] = deque()
        self._wake = asyncio.Event()
        self._latency_ms = latency_ms  # callable returning the current injected latency
        self.task = asyncio.get_running_loop().create_task(self._writer())

    def push(self, text: bytes) -> None:
        if len(self._frames) >= MAX_QUEUED_FRAMES:
            logger.info("dropping slow websocket client", extra={"ip": self.ip})
            self.close_soon()
            return
        self._frames.append((time.monotonic(), text))
        self._wake.set()

    def close_soon(self, *, code: int = 1000) -> None:
        asyncio.get_running_loop().create_task(self.ws.close(code=code))

    async def _writer(self) -> None:
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self._frames:
                    queued, text = self._frames.popleft()
                    delay = self._latency_ms() / 1000.0 - (time.monotonic() - queued)
                    if delay > 0:
                        await asyncio.sleep(delay)
                    if self.ws.closed:
                        return
                    await self.ws.send_frame(text, WSMsgType.TEXT)  # pre-encoded once for all
        except (ConnectionResetError, RuntimeError, asyncio.CancelledError):
            return


class Hub:
    def __init__(self) -> None:
        self.subs: dict[tuple, set[WsConn]] = {}
        self.by_coin: dict[tuple[str, str], set[tuple]] = {}
        self.conns: set[WsConn] = set()
        self.frames_sent = 0

    def add(self, conn: WsConn, key: tuple, sub: dict) -> None:
        conn.subs[key] = sub
        self.subs.setdefault(key, set()).add(conn)
        if len(key) >= 2 and key[0] in COIN_TYPES:
            self.by_coin.setdefault((key[0], key[1]), set()).add(key)

    def remove(self, conn: WsConn, key: tuple) -> None:
        conn.subs.pop(key, None)
        members = self.subs.get(key)
        if members is not None:
            members.discard(conn)
            if not members:
                del self.subs[key]
                if key[0] in COIN_TYPES:
                    keys = self.by_coin.get((key[0], key[1]))
                    if keys is not None:
                        keys.discard(key)

    def drop(self, conn: WsConn) -> None:
        for key in list(conn.subs):
            self.remove(conn, key)
        self.conns.discard(conn)

    def has(self, key: tuple) -> bool:
        return key in self.subs

    def keys_for(self, kind: str, coin: str) -> set[tuple]:
        return self.by_coin.get((kind, coin), set())

    def publish(self, key: tuple, data: Any) -> None:
        members = self.subs.get(key)
        if not members:
            return
        channel = CHANNEL.get(key[0], key[0])
        text = orjson.dumps({"channel": channel, "data": data})  # serialised once, same bytes to everyone
        for conn in members:
            conn.push(text)
        self.frames_sent += len(members)

    def broadcast_raw(self, text: str) -> None:
        for conn in self.conns:
            conn.push(text.encode())

    def ip_stats(self, ip: str) -> tuple[int, int, set[str]]:
        """(connections, subscriptions, distinct users in user-specific subscriptions) for one IP."""
        n_conn = n_sub = 0
        users: set[str] = set()
        for c in self.conns:
            if c.ip == ip:
                n_conn += 1
                n_sub += len(c.subs)
                users.update(k[1] for k in c.subs if k[0] in USER_TYPES)
        return n_conn, n_sub, users
