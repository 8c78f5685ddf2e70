"""Realtime fan-out: one publish path for every frame that reaches a browser socket.

Publishers (ingest, alpha, execution) hand over an already-encoded envelope; nothing is serialised per client.

    from kernel.realtime import get_broadcaster
    await get_broadcaster().publish(channel="public.market", symbol="BTC", text=envelope.encode().decode(),
                                    event_type="agg_update")
    await get_broadcaster().publish_private(user_id=7, event_type="order_update", data={...}, symbol="BTC", seq=42)
    await get_broadcaster().close_session_sockets(session_key, "logout")

* The same path under Channels' API: `get_channel_layer().group_send(...)` (kernel.channel_layer, the configured
  CHANNEL_LAYERS backend) maps the sockets' groups onto these calls; there is no second fan-out.
* Without REDIS_URL (one-process topology) the broadcaster is in memory and hands frames straight to the local
  hub. With REDIS_URL it is Redis pub/sub: publishers PUBLISH on `hs:ws:*` channels and every web process holds
  ONE pattern subscription, then fans out to its own sockets by looping and sending the same text.
* `agg_update` data is a full `SymbolSnapshot.as_dict()` (optionally with "staleness"): full snapshots are what
  make conflation safe. Public frames are conflated per (channel, symbol, event_type) for a lagging client:
  it skips intermediates and gets the latest one when its socket drains.
* Private frames are never conflated and never dropped silently: a client whose private backlog overflows is closed
  with CLOSE_RESYNC. Events the client must not miss carry the user's durable sequence number, assigned and kept in
  the database by execution.services.events (the REST resync reads them there, so a Redis restart loses nothing and
  numbers never go backwards); live telemetry (alpha) carries seq 0.
* The hub records per-symbol demand in hot state (`set_demand`) so ingest can start on-demand symbols.
"""

from __future__ import annotations

import abc
import asyncio
import collections
import contextlib
import inspect
import logging
import os
import re
import socket
import time
import types
from collections.abc import Awaitable, Callable, Coroutine, Generator, Sequence
from typing import Any

import orjson
from django.conf import settings

from kernel import clock
from kernel.contracts import channels as ch
from kernel.contracts.envelope import ALL_SYMBOLS, dumps_text, make_envelope
from kernel.contracts.snapshot import staleness_dict
from kernel.metrics import Counter, Gauge, Histogram

logger = logging.getLogger(__name__)

# Close codes (4000-4999 are the application's).
CLOSE_SESSION_ENDED = 4001  # logout, revocation, expiry, user deactivated
CLOSE_POLICY = 4008  # abuse: bad frames or message rate beyond the limits
CLOSE_RESYNC = 4009  # private backlog overflowed: reconnect and resync over REST
CLOSE_SLOW = 4010  # the socket accepted nothing for WS_SLOW_CLIENT_TIMEOUT_SEC

REDIS_PREFIX = "hs:ws:"
DEMAND_TTL_SEC = 30
DEMAND_REFRESH_SEC = 10.0
SWEEP_SEC = 0.5

WS_CONNECTIONS = Gauge("hs_ws_connections", "Open /ws connections in this process")
WS_SUBSCRIPTIONS = Gauge("hs_ws_subscriptions", "Open (symbol, channel) subscriptions in this process")
WS_BROADCAST_LATENCY = Histogram(
    "hs_ws_broadcast_latency_seconds",
    "Envelope ts_ms to the end of the local fan-out loop",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
WS_FRAMES_SENT = Counter("hs_ws_frames_total", "Frames handed to sockets", ["kind"])
WS_DROPS = Counter("hs_ws_dropped_frames_total", "Frames not delivered", ["reason"])
WS_DISCONNECTS = Counter("hs_ws_disconnects_total", "Closed /ws connections by reason", ["reason"])
# Bound once: `labels()` takes a lock and a dict lookup, too much for every frame.
_SENT_PUBLIC = WS_FRAMES_SENT.labels("public")
_SENT_PRIVATE = WS_FRAMES_SENT.labels("private")
_DROP_CONFLATED = WS_DROPS.labels("conflated")

_TS_RE = re.compile(r'"ts_ms":(\d{13})')
PROCESS_ID = f"{socket.gethostname()}:{os.getpid()}"

SendFn = Callable[[dict[str, Any]], Awaitable[None]]


# One pre-encoded public frame for `publish_many`: (channel, symbol, text, event_type).
PublicFrame = tuple[str, str, str, str]


def topic_for(channel: str, symbol: str) -> str:
    """The one name of a public stream (the group of style guide §4)."""
    return f"{channel}|{symbol}"


# --- Sending without a task per frame -------------------------------------------------------------------
# An ASGI `send` normally completes without suspending (uvicorn writes to the transport unless it is paused
# above its high-water mark). Stepping the coroutine by hand keeps the common case free of any task or
# scheduling; only a blocked send becomes a task, and then the connection is "lagging".


@types.coroutine
def _resume(coro: Coroutine[Any, Any, Any], yielded: Any) -> Generator[Any, Any, Any]:
    """Finish a coroutine that already yielded `yielded` (what `yield from` does, from the middle)."""
    while True:
        try:
            value = yield yielded
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:  # noqa: BLE001 - forwarded into the coroutine, as `yield from` does
            try:
                yielded = coro.throw(exc)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                yielded = coro.send(value)
            except StopIteration as stop:
                return stop.value


def send_now(send: SendFn, message: dict[str, Any]) -> Generator[Any, Any, Any] | None:
    """Run `send(message)` up to its first suspension; None when it completed, else an awaitable rest."""
    coro = send(message)
    try:
        yielded = coro.send(None)  # type: ignore[attr-defined]
    except StopIteration:
        return None
    except AttributeError:
        if not inspect.isawaitable(coro):  # a plain function returned without a coroutine
            return None
        raise
    return _resume(coro, yielded)  # type: ignore[arg-type]


async def _await_quietly(rest: Generator[Any, Any, Any]) -> None:
    with contextlib.suppress(Exception):
        await rest  # type: ignore[misc]  # a @types.coroutine generator (_resume) is awaitable


async def _cancel(task: asyncio.Task[Any]) -> None:
    """Cancel and wait for a task; one left on a loop that has closed since (a request served by a short-lived loop,
    such as Django's test client or async_to_sync) is only dropped: that loop runs nothing any more."""
    if task.get_loop().is_closed():
        return
    task.cancel()
    if task.get_loop() is asyncio.get_running_loop():
        with contextlib.suppress(BaseException):
            await task


class FanoutStats:
    """Process-wide delivery counters, kept off the per-socket path (bench and /metrics read them).

    frames handed to sockets = offered - conflated - (frames pending when a socket closed)."""

    __slots__ = ("offered", "sent_inline", "sent_drained", "lagging", "conflated", "private_overflow", "slow_closed")

    def __init__(self) -> None:
        self.offered = 0  # public frames offered to sockets (one per subscriber per frame)
        self.sent_inline = 0  # sends that completed without suspending (no task)
        self.sent_drained = 0  # sends made by a lagging socket's drain task
        self.lagging = 0  # times a socket's send blocked and it entered the lagging path
        self.conflated = 0  # public frames replaced by a newer one of the same key while lagging
        self.private_overflow = 0
        self.slow_closed = 0

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


STATS = FanoutStats()
_UNSET: Any = object()


def text_message(text: str) -> dict[str, Any]:
    """The ASGI message for one text frame. A dispatch builds it once and hands the same dict to every socket's
    `send` (servers read it and do not keep or mutate it)."""
    return {"type": "websocket.send", "text": text}


class Connection:
    """One socket's delivery state. Synchronous `offer_*` methods are called from the fan-out loop."""

    __slots__ = (
        "send",
        "user_id",
        "session_key",
        "topics",
        "private_channels",
        "pending",
        "private",
        "inflight",
        "last_progress",
        "closed",
        "close_code",
        "close_reason",
        "on_close",
        "max_private",
        "sent",
        "conflated",
    )

    def __init__(
        self,
        *,
        send: SendFn,
        user_id: int | None = None,
        session_key: str | None = None,
        on_close: Callable[[], None] | None = None,
        max_private: int | None = None,
    ) -> None:
        self.send = send
        self.user_id = user_id
        self.session_key = session_key
        self.topics: set[str] = set()
        self.private_channels: set[str] = set()
        self.pending: dict[str, dict[str, Any]] = {}
        self.private: collections.deque[dict[str, Any]] = collections.deque()
        self.inflight: asyncio.Task[None] | None = None
        self.last_progress = time.monotonic()
        self.closed = False
        self.close_code = 0
        self.close_reason = ""
        self.on_close = on_close
        self.max_private = max_private if max_private is not None else settings.WS_SEND_BUFFER
        self.sent = 0  # frames handed to this socket's send
        self.conflated = 0  # public frames this socket skipped (a newer one of the same key replaced them)

    @property
    def lagging(self) -> bool:
        return self.inflight is not None

    def offer_public(self, key: str, text: str, message: dict[str, Any] | None = None) -> None:
        if self.closed:
            return
        if self.inflight is not None:
            if key in self.pending:
                self.conflated += 1
                STATS.conflated += 1
                _DROP_CONFLATED.inc()
            self.pending[key] = message or text_message(text)
            return
        self._start(message or text_message(text))

    def offer_private(self, text: str, message: dict[str, Any] | None = None) -> None:
        if self.closed:
            return
        if self.inflight is None:
            self._start(message or text_message(text))
            return
        if len(self.private) >= self.max_private:
            # Never drop a private frame silently: the client reconnects and resyncs over REST.
            STATS.private_overflow += 1
            WS_DROPS.labels("private_overflow").inc()
            self.close(CLOSE_RESYNC, "resync_required")
            return
        self.private.append(message or text_message(text))

    def offer_direct(self, text: str) -> None:
        """Acks and errors: ordered with the data, never conflated."""
        if self.closed:
            return
        if self.inflight is None:
            self._start(text_message(text))
        else:
            self.private.append(text_message(text))

    def _start(self, message: dict[str, Any]) -> None:
        # The hot path: one call per subscriber per frame. send_now() inlined: no extra call, no task.
        coro: Any = _UNSET
        try:
            coro = self.send(message)
            yielded = coro.send(None)
        except StopIteration:
            self.sent += 1
            STATS.sent_inline += 1
            return
        except AttributeError:
            if coro is _UNSET or inspect.iscoroutine(coro):  # raised inside send
                self.close(0, "disconnected", send_close=False)
                return
            if not inspect.isawaitable(coro):  # a plain function: it has sent already
                self.sent += 1
                STATS.sent_inline += 1
                return
            rest: Awaitable[Any] = coro  # an awaitable that is not a coroutine (a Future, say)
        except Exception:  # noqa: BLE001 - the peer went away under us
            self.close(0, "disconnected", send_close=False)
            return
        else:
            rest = _resume(coro, yielded)
        self.sent += 1
        STATS.lagging += 1
        self.last_progress = time.monotonic()
        self.inflight = asyncio.get_running_loop().create_task(self._drain(rest))

    async def _drain(self, rest: Awaitable[Any]) -> None:
        try:
            await rest
            self.last_progress = time.monotonic()
            while not self.closed and (self.private or self.pending):
                if self.private:
                    message = self.private.popleft()
                else:
                    key = next(iter(self.pending))
                    message = self.pending.pop(key)
                self.sent += 1
                STATS.sent_drained += 1
                await self.send(message)
                self.last_progress = time.monotonic()
        except asyncio.CancelledError:
            return
        except Exception:  # noqa: BLE001 - the peer went away while we waited
            self.inflight = None
            self.close(0, "disconnected", send_close=False)
            return
        finally:
            if self.inflight is asyncio.current_task():
                self.inflight = None

    def stuck_for(self, now: float) -> float:
        return now - self.last_progress if self.inflight is not None else 0.0

    def close(self, code: int, reason: str, *, send_close: bool = True) -> None:
        """Stop delivering; send a close frame when the socket can take one; tell the owner (the gateway)."""
        if self.closed:
            return
        self.closed = True
        self.close_code, self.close_reason = code, reason
        WS_DISCONNECTS.labels(reason).inc()
        self.pending.clear()
        self.private.clear()
        blocked = self.inflight is not None
        if self.inflight is not None:
            self.inflight.cancel()
            self.inflight = None
        if send_close and not blocked and code:
            # A blocked socket cannot take a close frame: the server drops it when the gateway returns.
            with contextlib.suppress(Exception):
                rest = send_now(self.send, {"type": "websocket.close", "code": code, "reason": reason})
                if rest is not None:
                    asyncio.get_running_loop().create_task(_await_quietly(rest))
        if self.on_close is not None:
            self.on_close()


class Hub:
    """This process's sockets, indexed by topic, user and session."""

    def __init__(self) -> None:
        self.connections: set[Connection] = set()
        self.topics: dict[str, set[Connection]] = {}
        self.users: dict[int, set[Connection]] = {}
        self.sessions: dict[str, set[Connection]] = {}
        self.symbol_demand: collections.Counter[str] = collections.Counter()
        self.demand_dirty: set[str] = set()
        self.subscription_count = 0
        # Channel-layer receivers of this process (kernel.channel_layer): a queue per channel name, the socket a
        # gateway consumer's channel name stands for, and plain Channels groups (channel names, for consumers that
        # take their messages through dispatch). Data-plane frames never use the queues.
        self.channels: dict[str, asyncio.Queue[dict[str, Any]]] = {}
        self.bound: dict[str, Connection] = {}
        self.groups: dict[str, set[str]] = {}

    # membership
    def add(self, conn: Connection) -> None:
        self.connections.add(conn)
        if conn.session_key:
            self.sessions.setdefault(conn.session_key, set()).add(conn)
        WS_CONNECTIONS.set(len(self.connections))

    def remove(self, conn: Connection) -> None:
        for topic in list(conn.topics):
            self._leave(conn, topic)
        self.leave_private(conn)
        if conn.session_key and conn.session_key in self.sessions:
            self.sessions[conn.session_key].discard(conn)
            if not self.sessions[conn.session_key]:
                del self.sessions[conn.session_key]
        self.connections.discard(conn)
        WS_CONNECTIONS.set(len(self.connections))

    def join(self, conn: Connection, topic: str) -> bool:
        if topic in conn.topics:
            return False
        conn.topics.add(topic)
        self.topics.setdefault(topic, set()).add(conn)
        self.subscription_count += 1
        symbol = topic.rsplit("|", 1)[1]
        if not any(t.endswith("|" + symbol) for t in conn.topics - {topic}):
            self.symbol_demand[symbol] += 1
            self.demand_dirty.add(symbol)
        WS_SUBSCRIPTIONS.set(self.subscription_count)
        return True

    def leave(self, conn: Connection, topic: str) -> bool:
        if topic not in conn.topics:
            return False
        self._leave(conn, topic)
        return True

    def _leave(self, conn: Connection, topic: str) -> None:
        conn.topics.discard(topic)
        members = self.topics.get(topic)
        if members is not None:
            members.discard(conn)
            if not members:
                del self.topics[topic]
        self.subscription_count -= 1
        symbol = topic.rsplit("|", 1)[1]
        if not any(t.endswith("|" + symbol) for t in conn.topics):
            self.symbol_demand[symbol] -= 1
            if self.symbol_demand[symbol] <= 0:
                del self.symbol_demand[symbol]
            self.demand_dirty.add(symbol)
        WS_SUBSCRIPTIONS.set(self.subscription_count)

    def join_private(self, conn: Connection, channels: set[str]) -> None:
        assert conn.user_id is not None, "private streams need an authenticated user"
        conn.private_channels |= channels
        self.users.setdefault(conn.user_id, set()).add(conn)

    def leave_private(self, conn: Connection, channels: set[str] | None = None) -> None:
        """Leave `channels` (all of them when None); the user index forgets the socket once it has none left."""
        if channels is None:
            conn.private_channels.clear()
        else:
            conn.private_channels -= channels
        if conn.private_channels:
            return
        if conn.user_id is not None and conn.user_id in self.users:
            self.users[conn.user_id].discard(conn)
            if not self.users[conn.user_id]:
                del self.users[conn.user_id]

    # channel-layer receivers (kernel.channel_layer)
    def open_channel(self, name: str, capacity: int) -> None:
        self.channels.setdefault(name, asyncio.Queue(maxsize=capacity))

    def close_channel(self, name: str) -> None:
        """Forget a channel name: its queue, the socket bound to it, its plain group memberships."""
        self.channels.pop(name, None)
        self.bound.pop(name, None)
        for group in [g for g, members in self.groups.items() if name in members]:
            self.group_discard(group, name)

    def bind(self, name: str, conn: Connection) -> None:
        """Let `name` (a consumer's channel name) stand for `conn` in group_add/group_discard of our groups."""
        self.bound[name] = conn

    def deliver(self, name: str, message: dict[str, Any]) -> bool:
        """Queue a message for a channel of this process; False when it is not here or its queue is full."""
        queue = self.channels.get(name)
        if queue is None:
            return False
        try:
            queue.put_nowait(message)
        except asyncio.QueueFull:
            WS_DROPS.labels("channel_full").inc()
            return False
        return True

    def group_add(self, group: str, name: str) -> None:
        self.groups.setdefault(group, set()).add(name)

    def group_discard(self, group: str, name: str) -> None:
        members = self.groups.get(group)
        if members is not None:
            members.discard(name)
            if not members:
                del self.groups[group]

    def dispatch_group(self, group: str, message: dict[str, Any]) -> int:
        """A plain group's message to its members in this process (a shallow copy each: consumers may mutate)."""
        count = 0
        for name in tuple(self.groups.get(group, ())):
            count += self.deliver(name, dict(message))
        return count

    # delivery
    def dispatch(self, *, channel: str, symbol: str, text: str, event_type: str = "") -> int:
        """Hand one pre-encoded public frame to every local subscriber; returns how many were offered it."""
        members = self.topics.get(topic_for(channel, symbol))
        if not members:
            return 0
        key = f"{channel}|{symbol}|{event_type}"
        message = text_message(text)  # one message for every socket
        for conn in tuple(members):
            conn.offer_public(key, text, message)
        count = len(members)
        STATS.offered += count
        _SENT_PUBLIC.inc(count)
        match = _TS_RE.search(text, 0, 200)
        if match is not None:
            WS_BROADCAST_LATENCY.observe(max(0.0, time.time() - int(match.group(1)) / 1000))
        return count

    def dispatch_private(self, *, user_id: int, channel: str, text: str) -> int:
        members = self.users.get(user_id)
        if not members:
            return 0
        count = 0
        message = text_message(text)
        for conn in tuple(members):
            if channel in conn.private_channels:
                conn.offer_private(text, message)
                count += 1
        _SENT_PRIVATE.inc(count)
        return count

    def close_session(self, session_key: str, reason: str) -> int:
        members = tuple(self.sessions.get(session_key, ()))
        for conn in members:
            conn.close(CLOSE_SESSION_ENDED, reason)
        return len(members)

    def sweep(self, now: float, slow_after: float) -> int:
        """Close sockets that accepted nothing for `slow_after` seconds."""
        closed = 0
        for conn in tuple(self.connections):
            if conn.inflight is not None and conn.stuck_for(now) > slow_after:
                logger.info("closing slow client", extra={"user_id": conn.user_id, "topics": len(conn.topics)})
                conn.close(CLOSE_SLOW, "slow_client")
                STATS.slow_closed += 1
                closed += 1
        return closed


class Broadcaster(abc.ABC):
    """Base: the local hub and its housekeeping; subclasses decide how frames travel between processes."""

    def __init__(self, hub: Hub | None = None) -> None:
        self.hub = hub or Hub()
        self._housekeeping: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @abc.abstractmethod
    async def publish(self, *, channel: str, symbol: str, text: str, event_type: str = "") -> None: ...

    async def publish_many(self, frames: Sequence[PublicFrame]) -> None:
        """Several public frames at once (ingest's flush): in split topologies one Redis round trip, so every web
        process reads the batch in one wake-up instead of one per frame."""
        for channel, symbol, text, event_type in frames:
            await self.publish(channel=channel, symbol=symbol, text=text, event_type=event_type)

    async def publish_private(
        self,
        *,
        user_id: int,
        event_type: str,
        data: dict[str, Any],
        symbol: str = ALL_SYMBOLS,
        source: str = "",
        seq: int = 0,
    ) -> int:
        """Deliver one private event to the user's sockets in every process. `seq` is the user's durable sequence
        number for events the client must not miss (execution.services.events numbers and keeps them); 0 marks
        live state that needs none (alpha's risk/plan telemetry, superseded by the next one)."""
        text = self._private_envelope(event_type=event_type, symbol=symbol, source=source, seq=seq, data=data)
        await self.publish_private_text(user_id=user_id, channel=ch.channel_for_event(event_type), text=text)
        return seq

    @abc.abstractmethod
    async def publish_private_text(self, *, user_id: int, channel: str, text: str) -> None:
        """An already-encoded private frame to the user's sockets subscribed to `channel`, in every process."""

    @abc.abstractmethod
    async def close_session_sockets(self, session_key: str, reason: str) -> None: ...

    @abc.abstractmethod
    async def publish_group(self, group: str, message: dict[str, Any]) -> None:
        """A channel-layer message to a plain group's members in every process (kernel.channel_layer)."""

    @abc.abstractmethod
    async def send_channel(self, name: str, message: dict[str, Any]) -> None:
        """A channel-layer message to one channel, wherever its process is (kernel.channel_layer)."""

    async def ensure_started(self) -> None:
        """Start this process's receiving side (idempotent); the gateway calls it on every connect."""
        loop = asyncio.get_running_loop()
        if self._housekeeping is None or self._housekeeping.done() or self._loop is not loop:
            self._loop = loop
            self._housekeeping = loop.create_task(self._housekeep(), name="realtime-housekeeping")

    async def stop(self) -> None:
        if self._housekeeping is not None:
            await _cancel(self._housekeeping)
            self._housekeeping = None

    def _private_envelope(self, *, event_type: str, symbol: str, source: str, seq: int, data: dict[str, Any]) -> str:
        if not ch.is_private_event(event_type):
            raise ValueError(f"{event_type!r} is not a private event type")
        source = source or ("alpha" if event_type == ch.EXEC_PLAN else "execution")
        envelope = make_envelope(
            event_type=event_type, symbol=symbol, ts_ms=clock.now_ms(), source=source, seq=seq, data=data
        )
        return envelope.encode().decode()

    async def _housekeep(self) -> None:
        last_refresh = 0.0
        while True:
            await asyncio.sleep(SWEEP_SEC)
            try:
                now = time.monotonic()
                self.hub.sweep(now, settings.WS_SLOW_CLIENT_TIMEOUT_SEC)
                if now - last_refresh >= DEMAND_REFRESH_SEC:
                    last_refresh = now
                    dirty = set(self.hub.symbol_demand) | self.hub.demand_dirty
                else:
                    dirty = set(self.hub.demand_dirty)
                self.hub.demand_dirty.clear()
                if dirty:
                    await self._record_demand(dirty)
            except Exception:
                logger.exception("realtime housekeeping failed")

    async def _record_demand(self, symbols: set[str]) -> None:
        sink = _demand_sink
        if sink is None:
            return
        for symbol in symbols:
            count = self.hub.symbol_demand.get(symbol, 0)
            try:
                await sink(symbol, PROCESS_ID, count, DEMAND_TTL_SEC)
            except Exception:
                logger.exception("recording symbol demand failed", extra={"symbol": symbol})


class LocalBroadcaster(Broadcaster):
    """One process: frames go straight to the local hub."""

    async def publish(self, *, channel: str, symbol: str, text: str, event_type: str = "") -> None:
        self.hub.dispatch(channel=channel, symbol=symbol, text=text, event_type=event_type)

    async def publish_private_text(self, *, user_id: int, channel: str, text: str) -> None:
        self.hub.dispatch_private(user_id=user_id, channel=channel, text=text)

    async def close_session_sockets(self, session_key: str, reason: str) -> None:
        self.hub.close_session(session_key, reason)

    async def publish_group(self, group: str, message: dict[str, Any]) -> None:
        self.hub.dispatch_group(group, message)

    async def send_channel(self, name: str, message: dict[str, Any]) -> None:
        self.hub.deliver(name, message)


class RedisBroadcaster(Broadcaster):
    """Split topologies: Redis pub/sub between processes, one pattern subscription per web process."""

    def __init__(self, url: str, hub: Hub | None = None) -> None:
        super().__init__(hub)
        self.url = url
        self._redis: Any = None
        self._redis_loop: asyncio.AbstractEventLoop | None = None
        self._listener: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()

    def _client(self) -> Any:
        import redis.asyncio as aioredis

        loop = asyncio.get_running_loop()
        if self._redis is None or self._redis_loop is not loop:
            self._redis = aioredis.Redis.from_url(self.url, socket_timeout=5, socket_connect_timeout=5)
            self._redis_loop = loop
        return self._redis

    async def publish(self, *, channel: str, symbol: str, text: str, event_type: str = "") -> None:
        await self._client().publish(f"{REDIS_PREFIX}pub|{channel}|{symbol}|{event_type}", text)

    async def publish_many(self, frames: Sequence[PublicFrame]) -> None:
        if not frames:
            return
        async with self._client().pipeline(transaction=False) as pipe:
            for channel, symbol, text, event_type in frames:
                pipe.publish(f"{REDIS_PREFIX}pub|{channel}|{symbol}|{event_type}", text)
            await pipe.execute()

    async def publish_private_text(self, *, user_id: int, channel: str, text: str) -> None:
        await self._client().publish(f"{REDIS_PREFIX}usr|{user_id}|{channel}", text)

    async def close_session_sockets(self, session_key: str, reason: str) -> None:
        payload = dumps_text({"op": "close_session", "session_key": session_key, "reason": reason})
        await self._client().publish(f"{REDIS_PREFIX}ctl", payload)

    async def publish_group(self, group: str, message: dict[str, Any]) -> None:
        await self._client().publish(f"{REDIS_PREFIX}grp|{group}", orjson.dumps(message))

    async def send_channel(self, name: str, message: dict[str, Any]) -> None:
        # Every web process reads it on its one subscription; only the one that holds the channel keeps it.
        await self._client().publish(f"{REDIS_PREFIX}chn|{name}", orjson.dumps(message))

    async def ensure_started(self) -> None:
        await super().ensure_started()
        loop = asyncio.get_running_loop()
        if self._listener is None or self._listener.done() or self._listener.get_loop() is not loop:
            self._listening = asyncio.Event()
            self._listener = loop.create_task(self._listen(), name="realtime-redis-listener")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._listening.wait(), 3.0)

    async def stop(self) -> None:
        if self._listener is not None:
            await _cancel(self._listener)
            self._listener = None
        if self._redis is not None:
            with contextlib.suppress(Exception):
                await self._redis.aclose()
            self._redis = None
        await super().stop()

    async def _listen(self) -> None:
        """The process's one subscription; reconnects with backoff (frames published meanwhile are lost:
        public data is conflated snapshots and heals, private gaps show in `seq`)."""
        import redis.asyncio as aioredis

        backoff = 0.2
        while True:
            client = aioredis.Redis.from_url(self.url, socket_connect_timeout=5)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.psubscribe(f"{REDIS_PREFIX}*")
                self._listening.set()
                backoff = 0.2
                while True:
                    message = await pubsub.get_message(timeout=None)
                    if message is not None:
                        self._on_message(message["channel"], message["data"])
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("realtime subscription lost; reconnecting in %.1fs", backoff, exc_info=True)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                    await client.aclose()

    def _on_message(self, raw_channel: bytes, data: bytes) -> None:
        name = raw_channel.decode()[len(REDIS_PREFIX) :]
        kind, _, rest = name.partition("|")
        try:
            if kind == "pub":
                channel, symbol, event_type = rest.split("|", 2)
                self.hub.dispatch(channel=channel, symbol=symbol, text=data.decode(), event_type=event_type)
            elif kind == "usr":
                user_id, channel = rest.split("|", 1)
                self.hub.dispatch_private(user_id=int(user_id), channel=channel, text=data.decode())
            elif kind == "grp":
                self.hub.dispatch_group(rest, orjson.loads(data))
            elif kind == "chn":
                self.hub.deliver(rest, orjson.loads(data))
            elif name == "ctl":
                command = orjson.loads(data)
                if command.get("op") == "close_session":
                    self.hub.close_session(str(command["session_key"]), str(command.get("reason", "revoked")))
        except Exception:
            logger.exception("bad realtime message", extra={"channel": name})


_broadcaster: Broadcaster | None = None


def get_broadcaster() -> Broadcaster:
    """The process's broadcaster: Redis pub/sub when REDIS_URL is set, in memory otherwise."""
    global _broadcaster
    if _broadcaster is None:
        _broadcaster = RedisBroadcaster(settings.REDIS_URL) if settings.REDIS_URL else LocalBroadcaster()
    return _broadcaster


# Where the hub records how many of this process's sockets watch each symbol (ingest subscribes on demand). The kernel
# knows no hot state: the markets app registers its own at start-up (markets.apps).
DemandSink = Callable[[str, str, int, float], Awaitable[None]]
_demand_sink: DemandSink | None = None


def set_demand_sink(sink: DemandSink | None) -> None:
    """`sink(symbol, process_id, watchers, ttl_sec)` is awaited for every symbol whose watcher count changed."""
    global _demand_sink
    _demand_sink = sink


async def reset_broadcaster() -> None:
    """Tests: stop and forget the process's broadcaster (a new event loop gets a fresh one)."""
    global _broadcaster
    if _broadcaster is not None:
        await _broadcaster.stop()
    _broadcaster = None


def snapshot_text(snapshot: Any, *, seq: int, source: str = "snapshot") -> str:
    """An agg_update envelope for a SymbolSnapshot (data = as_dict() + staleness), encoded once."""
    now = clock.now_ms()
    data = snapshot.as_dict()
    data["staleness"] = staleness_dict(snapshot, now)
    ts = snapshot.updated_at or now
    envelope = make_envelope(
        event_type=ch.AGG_UPDATE, symbol=snapshot.symbol, ts_ms=ts, source=source, seq=seq, data=data
    )
    return envelope.encode().decode()
