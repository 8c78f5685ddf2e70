"""The /ws gateway (architecture seed §9): `GatewayConsumer`, a Channels consumer behind
OriginValidator(AuthMiddlewareStack(...)), for the connection's control plane.

The data plane is not consumer dispatch: frames arrive pre-encoded from `kernel.realtime` (publishers, or
`get_channel_layer().group_send` through kernel.channel_layer) and the hub writes them straight to this socket's
`send`. This module parses and validates client frames (pure functions below), keeps the per-connection limits and
joins and leaves the socket's groups through the channel layer.

Client frames:
    {"type":"subscribe","coin":"BTC","channels":["public.market","public.alpha"]}
    {"type":"unsubscribe","coin":"BTC","channels":["public.alpha"]}      (channels omitted: all of the coin's)
    {"type":"subscribe_private","channels":["private.execution","private.account"]}
    {"type":"unsubscribe_private"}
    {"type":"ping"}
Server frames: envelopes (event_type, symbol, ts_ms, source, seq, data), acks
{"type":"subscribed"|"unsubscribed"|"subscribed_private"|"unsubscribed_private"|"pong", ...} and
{"type":"error","code":...,"message":...}.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import orjson
from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from accounts.selectors import session_is_valid
from kernel import clock, realtime
from kernel.channel_layer import RealtimeChannelLayer, public_group, session_group, user_group
from kernel.contracts import channels as ch
from kernel.contracts.envelope import dumps_text
from kernel.contracts.symbols import symbol_valid
from markets.hotstate import get_hot_state

logger = logging.getLogger(__name__)


async def snapshot_for(symbol: str) -> Any:
    """The hot-state snapshot for `symbol` (the first frame a new subscriber gets), or None before any is seen."""
    return await get_hot_state().get(symbol)


# Bad frames tolerated within STRIKE_WINDOW_SEC before the socket is closed with CLOSE_POLICY.
MAX_STRIKES = 10
STRIKE_WINDOW_SEC = 10.0
_snapshot_seq = itertools.count(1)
# Initial-snapshot reads in flight at once (per process): a connect storm must not exhaust the hot state's Redis
# pool (redis-py's async pool raises MaxConnectionsError beyond its limit and the subscriber would get no snapshot).
SNAPSHOT_LOOKUPS = 32
_lookup_slots: dict[asyncio.AbstractEventLoop, asyncio.Semaphore] = {}


def _snapshot_slot() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    slot = _lookup_slots.get(loop)
    if slot is None:
        _lookup_slots.clear()  # one loop per process outside tests
        slot = _lookup_slots[loop] = asyncio.Semaphore(SNAPSHOT_LOOKUPS)
    return slot


class FrameError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class ClientFrame:
    type: str
    coin: str | None = None
    channels: tuple[str, ...] = field(default_factory=tuple)


def _parse_channels(value: object, allowed: frozenset[str], default: tuple[str, ...]) -> tuple[str, ...]:
    if value is None:
        return default
    if not isinstance(value, list) or not value or not all(isinstance(c, str) for c in value):
        raise FrameError("invalid_channel", "channels must be a non-empty list of channel names")
    unknown = [c for c in value if c not in allowed]
    if unknown:
        raise FrameError("invalid_channel", f"unknown or forbidden channel(s): {', '.join(unknown[:5])[:200]}")
    return tuple(dict.fromkeys(value))


def _parse_coin(value: object) -> str:
    if not isinstance(value, str):
        raise FrameError("invalid_symbol", "coin must be a symbol string such as 'BTC'")
    coin = value.strip().upper()
    if not symbol_valid(coin):
        raise FrameError("invalid_symbol", "coin must be 1-32 characters of A-Z 0-9 / _ - @ .")
    return coin


def parse_frame(raw: str | bytes, *, max_bytes: int) -> ClientFrame:
    """Validate one client frame (pure: no I/O). Raises FrameError with a stable code."""
    if len(raw) > max_bytes:
        raise FrameError("frame_too_large", f"frames are limited to {max_bytes} bytes")
    try:
        obj: Any = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise FrameError("invalid_json", "frame is not valid JSON") from None
    if not isinstance(obj, dict):
        raise FrameError("invalid_frame", "frame must be a JSON object")
    kind = obj.get("type")
    if not isinstance(kind, str) or kind not in ch.CLIENT_FRAME_TYPES:
        raise FrameError("unknown_type", f"unknown frame type {str(kind)[:40]!r}")
    if kind in (ch.CLIENT_SUBSCRIBE, ch.CLIENT_UNSUBSCRIBE):
        coin = _parse_coin(obj.get("coin"))
        default = (ch.PUBLIC_MARKET,) if kind == ch.CLIENT_SUBSCRIBE else tuple(sorted(ch.PUBLIC_CHANNELS))
        return ClientFrame(kind, coin, _parse_channels(obj.get("channels"), ch.PUBLIC_CHANNELS, default))
    if kind == ch.CLIENT_SUBSCRIBE_PRIVATE:
        default = tuple(sorted(ch.PRIVATE_CHANNELS))
        return ClientFrame(kind, None, _parse_channels(obj.get("channels"), ch.PRIVATE_CHANNELS, default))
    return ClientFrame(kind)


class RateLimiter:
    """Token bucket: `rate` messages per second, bursts up to `rate`."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.tokens = rate
        self.stamp = time.monotonic()

    def allow(self, now: float) -> bool:
        self.tokens = min(self.rate, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


def server_send(send: Any) -> Any:
    """The server's own `send` under Channels' session wrapper(s).

    `channels.sessions.InstanceSessionWrapper.send` only acts on `http.response.start` (session save + cookie);
    for `websocket.*` messages it is a pass-through that still costs a coroutine and several lazy-object reads
    on every frame. The gateway sends nothing but `websocket.*`, so it holds the wrapped send directly. Only that
    Channels wrapper is peeled (server-agnostic: nothing of the server is touched)."""
    from channels.sessions import InstanceSessionWrapper

    while True:
        owner = getattr(send, "__self__", None)
        if not isinstance(owner, InstanceSessionWrapper) or getattr(send, "__func__", None) is not (
            InstanceSessionWrapper.send
        ):
            return send
        acts_on = set(owner.save_message_types) | set(owner.cookie_response_message_types)
        if any(t.startswith("websocket.") for t in acts_on):
            return send
        send = owner.real_send


def _error(code: str, message: str) -> str:
    return dumps_text({"type": "error", "code": code, "message": message})


class GatewayConsumer(AsyncWebsocketConsumer):  # type: ignore[misc]
    """/ws: one socket's control plane as a Channels consumer — connect, client frames (subscribe/unsubscribe,
    private join, ping), limits, the session re-check and closing.

    The data plane does not pass through it: the consumer binds its channel name to its socket
    (`realtime.Connection`) in the channel layer (kernel.channel_layer), joins groups with `group_add`, and
    `group_send` / the broadcaster write pre-encoded frames straight to the socket's `send`. Only client frames and
    the consumer's own channel messages are dispatched here."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conn: realtime.Connection | None = None
        self.user_id: int | None = None
        self.session_key: str | None = None
        self.recheck: asyncio.Task[None] | None = None
        self.limiter = RateLimiter(settings.WS_MAX_MESSAGES_PER_SEC)
        self.strikes: deque[float] = deque()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:  # every exit: client close, our close, error, cancellation at shutdown
            self._teardown()

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Stock dispatch, without `aclose_old_connections()` before every handler: that is a sync_to_async hop
        (~65 µs, performance.md) per client frame. No handler here uses the ORM directly; the session re-check goes
        through database_sync_to_async, which closes stale connections around its own call."""
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    # --- connection ---------------------------------------------------------------------------------------------

    async def connect(self) -> None:
        """scope carries "user" and "session" from AuthMiddlewareStack (already resolved: no database read here)."""
        if not isinstance(self.channel_layer, RealtimeChannelLayer):
            raise ImproperlyConfigured(
                "/ws needs CHANNEL_LAYERS['default'] = kernel.channel_layer.RealtimeChannelLayer"
            )
        await self.accept()
        user = self.scope.get("user")
        session = self.scope.get("session")
        self.user_id = user.pk if user is not None and user.is_authenticated else None
        self.session_key = getattr(session, "session_key", None) if self.user_id else None
        self.conn = realtime.Connection(
            send=server_send(self.base_send),
            user_id=self.user_id,
            session_key=self.session_key,
            on_close=self._on_close,
        )
        await self.channel_layer.ensure_receiving()
        hub = self.channel_layer.hub
        hub.bind(self.channel_name, self.conn)
        hub.add(self.conn)
        if self.session_key is not None:
            await self.channel_layer.group_add(session_group(self.session_key), self.channel_name)
            self.recheck = asyncio.create_task(self.recheck_session())

    def _on_close(self) -> None:
        # Connection.close() is synchronous (the fan-out loop, the sweep, a session close call it): it tells this
        # consumer through its own channel, and `realtime_closed` ends it.
        self.channel_layer.hub.deliver(self.channel_name, {"type": "realtime.closed"})

    async def realtime_closed(self, message: dict[str, Any]) -> None:
        raise StopConsumer()

    async def websocket_receive(self, message: dict[str, Any]) -> None:
        text = message.get("text")
        await self.handle(text if text is not None else message.get("bytes") or b"")
        if self.conn is not None and self.conn.closed:
            raise StopConsumer()

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        # Stock: group_discard of `groups` (none) and aclose_old_connections() (no ORM here); _teardown cleans up.
        raise StopConsumer()

    def _teardown(self) -> None:
        conn = self.conn
        layer = self.channel_layer
        if isinstance(layer, RealtimeChannelLayer) and getattr(self, "channel_name", None):
            if conn is not None:
                layer.hub.remove(conn)
            layer.discard_channel(self.channel_name)
        if self.recheck is not None:
            self.recheck.cancel()
        if conn is None:
            return
        if not conn.closed:
            conn.closed = True
            realtime.WS_DISCONNECTS.labels("client_closed").inc()
            if conn.inflight is not None:
                conn.inflight.cancel()
        logger.info("ws closed", extra={"user_id": self.user_id, "reason": conn.close_reason or "client_closed"})

    # --- client frames ------------------------------------------------------------------------------------------

    def reply(self, obj: dict[str, Any]) -> None:
        assert self.conn is not None
        self.conn.offer_direct(dumps_text(obj))

    def strike(self, code: str, message: str) -> None:
        """An error frame; continued abuse closes the socket."""
        assert self.conn is not None
        now = time.monotonic()
        self.strikes.append(now)
        while self.strikes and now - self.strikes[0] > STRIKE_WINDOW_SEC:
            self.strikes.popleft()
        if len(self.strikes) > MAX_STRIKES:
            logger.info("closing abusive socket", extra={"user_id": self.user_id, "code": code})
            self.conn.close(realtime.CLOSE_POLICY, "policy_violation")
            return
        self.conn.offer_direct(_error(code, message))

    async def handle(self, raw: str | bytes) -> None:
        if not self.limiter.allow(time.monotonic()):
            self.strike("rate_limited", f"at most {settings.WS_MAX_MESSAGES_PER_SEC} messages per second")
            return
        try:
            frame = parse_frame(raw, max_bytes=settings.WS_MAX_FRAME_BYTES)
        except FrameError as exc:
            self.strike(exc.code, exc.message)
            return
        if frame.type == ch.CLIENT_PING:
            self.reply({"type": "pong", "ts_ms": clock.now_ms()})
        elif frame.type == ch.CLIENT_SUBSCRIBE:
            await self.subscribe(frame)
        elif frame.type == ch.CLIENT_UNSUBSCRIBE:
            await self.unsubscribe(frame)
        elif frame.type == ch.CLIENT_SUBSCRIBE_PRIVATE:
            await self.subscribe_private(frame)
        elif frame.type == ch.CLIENT_UNSUBSCRIBE_PRIVATE:
            await self.unsubscribe_private()

    async def subscribe(self, frame: ClientFrame) -> None:
        assert frame.coin is not None and self.conn is not None
        topics = [realtime.topic_for(c, frame.coin) for c in frame.channels]
        new = [t for t in topics if t not in self.conn.topics]
        if len(self.conn.topics) + len(new) > settings.WS_MAX_SUBSCRIPTIONS:
            self.strike("too_many_subscriptions", f"at most {settings.WS_MAX_SUBSCRIPTIONS} subscriptions")
            return
        snapshot = None
        if ch.PUBLIC_MARKET in frame.channels:
            try:
                async with _snapshot_slot():
                    snapshot = await snapshot_for(frame.coin)
            except Exception:
                logger.exception("snapshot lookup failed", extra={"symbol": frame.coin})
        for channel in frame.channels:
            await self.channel_layer.group_add(public_group(channel, frame.coin), self.channel_name)
        self.reply({"type": "subscribed", "coin": frame.coin, "channels": list(frame.channels)})
        if snapshot is not None:
            key = f"{ch.PUBLIC_MARKET}|{frame.coin}|{ch.AGG_UPDATE}"
            self.conn.offer_public(key, realtime.snapshot_text(snapshot, seq=next(_snapshot_seq)))

    async def unsubscribe(self, frame: ClientFrame) -> None:
        assert frame.coin is not None and self.conn is not None
        left = [c for c in frame.channels if realtime.topic_for(c, frame.coin) in self.conn.topics]
        for channel in left:
            await self.channel_layer.group_discard(public_group(channel, frame.coin), self.channel_name)
        self.reply({"type": "unsubscribed", "coin": frame.coin, "channels": left})

    async def subscribe_private(self, frame: ClientFrame) -> None:
        assert self.conn is not None
        if self.user_id is None:
            self.strike("authentication_required", "sign in to subscribe to private channels")
            return
        # The group is the signed-in user's (from the session), never from client input.
        for channel in frame.channels:
            await self.channel_layer.group_add(user_group(self.user_id, channel), self.channel_name)
        self.reply({"type": "subscribed_private", "channels": sorted(self.conn.private_channels)})

    async def unsubscribe_private(self) -> None:
        assert self.conn is not None
        if self.user_id is not None:
            for channel in sorted(self.conn.private_channels):
                await self.channel_layer.group_discard(user_group(self.user_id, channel), self.channel_name)
        self.reply({"type": "unsubscribed_private"})

    async def recheck_session(self) -> None:
        """Close the socket once its session is gone, expired, revoked or its user deactivated
        (accounts.selectors.session_is_valid, every WS_SESSION_RECHECK_SEC ≤ 60 s)."""

        assert self.session_key is not None and self.user_id is not None and self.conn is not None
        check = database_sync_to_async(session_is_valid)
        while not self.conn.closed:
            await asyncio.sleep(settings.WS_SESSION_RECHECK_SEC)
            try:
                valid = await check(session_key=self.session_key)
            except Exception:
                logger.warning("session re-check failed; will retry", exc_info=True)
                continue
            if not valid:
                logger.info("closing socket: session ended", extra={"user_id": self.user_id})
                self.conn.close(realtime.CLOSE_SESSION_ENDED, "session_ended")
                return
