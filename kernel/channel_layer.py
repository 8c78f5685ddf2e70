"""HyperSentry's Channels channel layer: Channels' API over the realtime broadcaster (kernel.realtime).

    CHANNEL_LAYERS = {"default": {"BACKEND": "kernel.channel_layer.RealtimeChannelLayer"}}

    from channels.layers import get_channel_layer
    from kernel.channel_layer import public_group, session_group, user_group

    layer = get_channel_layer()
    await layer.group_send(public_group("public.market", "BTC"),
                           {"type": FRAME, "text": envelope_text, "event_type": "agg_update"})
    await layer.group_send(user_group(7, "private.execution"),
                           {"type": EVENT, "event_type": "order_update", "data": {...}, "symbol": "BTC", "seq": 42})
    await layer.group_send(session_group(session_key), {"type": CLOSE, "reason": "logout"})

There is one transport and one fan-out: the layer calls the process's broadcaster (`realtime.get_broadcaster()`), the
same object ingest, alpha and execution publish through. With REDIS_URL (split topologies) a group_send is ONE Redis
PUBLISH whatever the group's size, and every web process's one pattern subscription fans it out to its own sockets;
without it (one process) it is the in-memory hub. Nothing here is a second implementation of either.

Groups:
* `public_group(channel, symbol)`, `user_group(user_id, channel)`, `session_group(session_key)` are the sockets'
  groups. Their members are gateway sockets (hypersentry.gateway.GatewayConsumer binds its channel name to its
  socket); their messages are written pre-encoded straight to each socket's `send`, never through consumer
  dispatch (performance.md: a dispatch costs a sync_to_async hop).
* Any other valid Channels group is a plain group: members are channel names, messages are queued for consumers that
  take them through dispatch (stock Channels semantics; a full queue drops the message, as Channels' layers do).
"""

from __future__ import annotations

import random
import re
import string
from typing import Any

from channels.exceptions import ChannelFull
from channels.layers import BaseChannelLayer

from kernel import realtime
from kernel.contracts import channels as ch
from kernel.contracts.envelope import ALL_SYMBOLS

# Message types of the sockets' groups.
FRAME = "realtime.frame"  # {"text": pre-encoded envelope, "event_type": ...}: public and private groups
EVENT = "realtime.event"  # {"event_type", "data", "symbol", "source", "seq"}: private groups (the envelope is built)
CLOSE = "realtime.close"  # {"reason": ...}: session groups (close code CLOSE_SESSION_ENDED)

GROUP_PREFIX = "hs."
_PUBLIC = "hs.pub."
_USER = "hs.usr."
_SESSION = "hs.ses."
# Channels group names are ASCII letters, digits, "-", "_" and "." only; symbols also have "/" and "@". Those, and
# "_" itself, are written as "_" + two hex digits, so the mapping is one-to-one.
_ESCAPE_RE = re.compile(r"[^A-Za-z0-9.\-]")
_UNESCAPE_RE = re.compile(r"_([0-9a-f]{2})")
_PROCESS = re.sub(r"[^a-zA-Z\d\-_.]", "-", realtime.PROCESS_ID)[:40]


def _escape(symbol: str) -> str:
    return _ESCAPE_RE.sub(lambda m: f"_{ord(m.group()):02x}", symbol)


def _unescape(text: str) -> str:
    return _UNESCAPE_RE.sub(lambda m: chr(int(m.group(1), 16)), text)


def public_group(channel: str, symbol: str) -> str:
    """The group of one public stream (realtime.topic_for(channel, symbol) in the hub)."""
    if channel not in ch.PUBLIC_CHANNELS:
        raise ValueError(f"{channel!r} is not a public channel")
    return f"{_PUBLIC}{channel}.{_escape(symbol)}"


def user_group(user_id: int, channel: str) -> str:
    """The group of one user's private channel. Built from the authenticated user, never from client input."""
    if channel not in ch.PRIVATE_CHANNELS:
        raise ValueError(f"{channel!r} is not a private channel")
    return f"{_USER}{int(user_id)}.{channel}"


def session_group(session_key: str) -> str:
    """The sockets opened with one Django session (closed on logout, revocation, expiry)."""
    return f"{_SESSION}{session_key}"


def parse_public(group: str) -> tuple[str, str] | None:
    """(channel, symbol) of a public group, None for any other name."""
    if not group.startswith(_PUBLIC):
        return None
    parts = group[len(_PUBLIC) :].split(".", 2)
    if len(parts) != 3 or f"{parts[0]}.{parts[1]}" not in ch.PUBLIC_CHANNELS:
        raise ValueError(f"malformed public group {group!r}")
    return f"{parts[0]}.{parts[1]}", _unescape(parts[2])


def parse_user(group: str) -> tuple[int, str] | None:
    """(user_id, channel) of a private group, None for any other name."""
    if not group.startswith(_USER):
        return None
    user_id, _, channel = group[len(_USER) :].partition(".")
    if not user_id.isdigit() or channel not in ch.PRIVATE_CHANNELS:
        raise ValueError(f"malformed private group {group!r}")
    return int(user_id), channel


def parse_session(group: str) -> str | None:
    if not group.startswith(_SESSION):
        return None
    return group[len(_SESSION) :]


class RealtimeChannelLayer(BaseChannelLayer):  # type: ignore[misc]
    """Channels' layer API (groups and flush extensions) over kernel.realtime's broadcaster and hub."""

    extensions = ["groups", "flush"]

    def __init__(self, expiry: int = 60, capacity: int = 1000, channel_capacity: Any = None, **kwargs: Any) -> None:
        super().__init__(expiry=expiry, capacity=capacity, channel_capacity=channel_capacity, **kwargs)
        self.channel_capacity = self.compile_capacities(channel_capacity or {})

    @property
    def broadcaster(self) -> realtime.Broadcaster:
        return realtime.get_broadcaster()

    @property
    def transport(self) -> str:
        """ "redis" (split topologies: Redis pub/sub between processes) or "memory" (one process)."""
        return "redis" if isinstance(self.broadcaster, realtime.RedisBroadcaster) else "memory"

    @property
    def hub(self) -> realtime.Hub:
        return realtime.get_broadcaster().hub

    # channels
    async def ensure_receiving(self) -> None:
        """Start this process's receiving side (idempotent): the one Redis pattern subscription in split topologies,
        without which nothing sent from another process arrives here, and the hub's housekeeping."""
        await self.broadcaster.ensure_started()

    async def new_channel(self, prefix: str = "specific.") -> str:
        """A process-local channel (its name carries "!", as Channels' specific channels do)."""
        suffix = "".join(random.choices(string.ascii_letters, k=12))
        name = f"{prefix}{_PROCESS}!{suffix}"
        self.hub.open_channel(name, self.get_capacity(name))
        return name

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        assert isinstance(message, dict), "message is not a dict"
        self.require_valid_channel_name(channel)
        queue = self.hub.channels.get(channel)
        if queue is not None and queue.full():
            raise ChannelFull(channel)
        await self.broadcaster.send_channel(channel, message)

    async def receive(self, channel: str) -> dict[str, Any]:
        self.require_valid_channel_name(channel)
        hub = self.hub
        if channel not in hub.channels:
            hub.open_channel(channel, self.get_capacity(channel))
        return await hub.channels[channel].get()

    def discard_channel(self, channel: str) -> None:
        """Forget a channel of this process (a consumer that ended): its queue, its binding, its plain groups."""
        self.hub.close_channel(channel)

    async def flush(self) -> None:
        hub = self.hub
        for name in list(hub.channels):
            hub.close_channel(name)
        hub.groups.clear()

    async def close(self) -> None:
        return None

    # groups
    def _socket_group(self, group: str, channel: str) -> tuple[Any, Any, Any] | None:
        """(public, private, session) parts of a sockets' group after the name checks; None for a plain group."""
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        parts = parse_public(group), parse_user(group), parse_session(group)
        return None if parts == (None, None, None) else parts

    async def group_add(self, group: str, channel: str) -> None:
        hub = self.hub
        parts = self._socket_group(group, channel)
        if parts is None:
            hub.group_add(group, channel)
            return
        public, private, session = parts
        conn = hub.bound.get(channel)
        if conn is None:
            raise ValueError(f"{group!r} takes gateway sockets only; {channel!r} is not bound to one")
        if public is not None:
            hub.join(conn, realtime.topic_for(*public))
        elif private is not None:
            if conn.user_id != private[0]:
                raise PermissionError("a socket joins its own user's private groups only")
            hub.join_private(conn, {private[1]})
        elif conn.session_key != session:
            raise PermissionError("a socket's session group is the session it was opened with")

    async def group_discard(self, group: str, channel: str) -> None:
        hub = self.hub
        parts = self._socket_group(group, channel)
        if parts is None:
            hub.group_discard(group, channel)
            return
        public, private, _ = parts
        conn = hub.bound.get(channel)
        if conn is None:
            return
        if public is not None:
            hub.leave(conn, realtime.topic_for(*public))
        elif private is not None and conn.user_id == private[0]:
            hub.leave_private(conn, {private[1]})

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        """ONE publish through the broadcaster (one Redis PUBLISH in split topologies, whatever the group's size)."""
        assert isinstance(message, dict), "message is not a dict"
        self.require_valid_group_name(group)
        broadcaster = self.broadcaster
        kind = message.get("type")
        public = parse_public(group)
        if public is not None:
            _expect(kind, FRAME, group)
            await broadcaster.publish(
                channel=public[0], symbol=public[1], text=message["text"], event_type=message.get("event_type", "")
            )
            return
        private = parse_user(group)
        if private is not None:
            await _send_private(broadcaster, private, message)
            return
        session_key = parse_session(group)
        if session_key is not None:
            _expect(kind, CLOSE, group)
            await broadcaster.close_session_sockets(session_key, str(message.get("reason", "revoked")))
            return
        await broadcaster.publish_group(group, message)


def _expect(kind: object, expected: str, group: str) -> None:
    if kind != expected:
        raise ValueError(f"{group!r} takes {expected!r} messages, not {kind!r}")


async def _send_private(broadcaster: realtime.Broadcaster, group: tuple[int, str], message: dict[str, Any]) -> None:
    user_id, channel = group
    kind = message.get("type")
    if kind == FRAME:
        await broadcaster.publish_private_text(user_id=user_id, channel=channel, text=message["text"])
        return
    _expect(kind, EVENT, f"{_USER}{user_id}.{channel}")
    event_type = message["event_type"]
    if not ch.is_private_event(event_type) or ch.channel_for_event(event_type) != channel:
        raise ValueError(f"{event_type!r} is not an event of {channel!r}")
    await broadcaster.publish_private(
        user_id=user_id,
        event_type=event_type,
        data=message["data"],
        symbol=message.get("symbol", ALL_SYMBOLS),
        source=message.get("source", ""),
        seq=message.get("seq", 0),
    )
