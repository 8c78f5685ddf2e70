"""The venue's WebSocket side: URL, subscription frames, keep-alive, reconnect back-off and the user-feed socket.

Market data (markets.ingest owns the socket loop, because it owns the state) uses the pure pieces here; the user
feed (execution.userfeed) reads pushes for one user through `UserFeedSocket`, which subscribes, keeps the socket
alive and hands over only the channels a caller acts on.

Venue rules (protocol reference): the server closes a socket it has heard nothing on for 60 s, so clients ping;
user-specific subscriptions are limited to 10 distinct users per IP and the pushes of `orderUpdates` / `userEvents`
do not name the user, hence one socket per streamed user.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from types import TracebackType
from typing import Any, Final

import orjson
import websockets

logger = logging.getLogger(__name__)

PER_SYMBOL_TYPES: Final = ("l2Book", "trades", "activeAssetCtx")
USER_TYPES: Final = ("orderUpdates", "userFills", "userEvents")
# Channels the venue pushes for USER_TYPES ("userEvents" arrives on channel "user").
USER_CHANNELS: Final = frozenset({"orderUpdates", "userFills", "user"})
PING_FRAME: Final = '{"method":"ping"}'
PING_SEC: Final = 20.0


def ws_url(base_url: str) -> str:
    """What the SDK does: http(s)://host → ws(s)://host/ws."""
    return "ws" + base_url.rstrip("/")[len("http") :] + "/ws"


def sub_frame(method: str, sub_type: str, coin: str | None = None, *, user: str | None = None) -> str:
    subscription: dict[str, Any] = {"type": sub_type}
    if coin is not None:
        subscription["coin"] = coin
    if user is not None:
        subscription["user"] = user
    return orjson.dumps({"method": method, "subscription": subscription}).decode()


def backoff_delay(attempt: int, *, base: float = 0.25, cap: float = 30.0, rng: random.Random | None = None) -> float:
    """Exponential back-off with full jitter in [base/2, min(cap, base*2^attempt)]."""
    upper = min(cap, base * (2 ** max(0, attempt)))
    return (rng or random).uniform(min(base / 2, upper), upper)


class UserFeedSocket:
    """One venue socket streaming one user's orderUpdates, userFills and userEvents.

    async with UserFeedSocket(base_url, address) as feed:
        while not stop.is_set():
            push = await feed.next(timeout=1.0)   # (channel, data), or None when nothing came in time
    """

    def __init__(self, base_url: str, address: str, *, open_timeout: float = 10.0, ping_sec: float = PING_SEC) -> None:
        self.url = ws_url(base_url)
        self.address = address
        self.open_timeout = open_timeout
        self.ping_sec = ping_sec
        self._ws: Any = None
        self._last_ping = 0.0

    async def __aenter__(self) -> UserFeedSocket:
        self._ws = await websockets.connect(
            self.url, open_timeout=self.open_timeout, ping_interval=None, max_size=1 << 22
        )
        try:
            for kind in USER_TYPES:
                await self._ws.send(sub_frame("subscribe", kind, user=self.address))
        except BaseException:
            await self._ws.close()
            raise
        self._last_ping = time.monotonic()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._ws.close()

    async def next(self, *, timeout: float) -> tuple[str, Any] | None:
        """The next push on a user channel, or None after `timeout` (the socket is pinged as it waits).
        Raises websockets.ConnectionClosed when the socket ends (the caller reconnects)."""
        deadline = time.monotonic() + timeout
        while True:
            now = time.monotonic()
            if now - self._last_ping >= self.ping_sec:
                await self._ws.send(PING_FRAME)
                self._last_ping = now
            left = deadline - now
            if left <= 0:
                return None
            try:
                raw = await asyncio.wait_for(self._ws.recv(), left)
            except TimeoutError:
                return None
            push = self._parse(raw)
            if push is not None:
                return push

    def _parse(self, raw: str | bytes) -> tuple[str, Any] | None:
        try:
            msg = orjson.loads(raw)
        except orjson.JSONDecodeError:
            logger.info("non-JSON frame from venue user feed", extra={"address": self.address})
            return None
        channel = msg.get("channel") if isinstance(msg, dict) else None
        if channel in USER_CHANNELS:
            return channel, msg.get("data")
        if channel == "error":
            logger.warning("venue user feed error", extra={"address": self.address, "detail": str(msg.get("data"))})
        return None
