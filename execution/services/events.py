"""The user's private execution stream: every event numbered and kept in the database, then delivered through the
one realtime helper (`kernel.realtime.get_broadcaster().publish_private`).

* Sequence numbers come from the user's `StreamCursor` row (one upsert that increments and returns): durable, so
  they never go backwards or repeat, whatever restarts (Redis only delivers).
* The event row is written and delivered while that row is locked, so one user's events reach the broadcaster
  in sequence order from every process (the relay in a web process, the user feed, reconciliation, Celery).
* An event the broadcaster could not take (Redis down) stays `delivered_at = null`; the periodic outbox sweep
  (`private_events_redeliver`) delivers it when Redis is back. The REST resync reads the rows, so a client that
  missed frames gets them from here, and a purged range is reported as a gap, never silently skipped.
* Inside a caller's transaction the whole thing runs on commit: an event never describes a rolled-back change.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from execution.models import PrivateEvent, StreamCursor
from kernel.contracts.envelope import ALL_SYMBOLS
from kernel.realtime import get_broadcaster

logger = logging.getLogger(__name__)
SOURCE = "execution"


def jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value == value else str(value)
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


# --- sequence + outbox ----------------------------------------------------------------------------------------
_NEXT_SEQ_SQL = (
    "INSERT INTO execution_streamcursor (user_id, last_seq) VALUES (%s, 1) "
    "ON CONFLICT (user_id) DO UPDATE SET last_seq = execution_streamcursor.last_seq + 1 RETURNING last_seq"
)


def _next_seq(user_id: int) -> int:
    """Increment and return the user's sequence; the row stays locked until the surrounding transaction ends."""
    with connection.cursor() as cursor:
        cursor.execute(_NEXT_SEQ_SQL, [user_id])
        return int(cursor.fetchone()[0])


def stream_last_seq(*, user_id: int) -> int:
    return int(StreamCursor.objects.filter(user_id=user_id).values_list("last_seq", flat=True).first() or 0)


def envelope_dict(event: PrivateEvent) -> dict[str, Any]:
    return {
        "event_type": event.event_type,
        "symbol": event.symbol,
        "ts_ms": int(event.created_at.timestamp() * 1000),
        "source": event.source,
        "seq": event.seq,
        "data": event.data,
    }


def _deliver(event: PrivateEvent) -> bool:
    """Hand one numbered event to the broadcaster; False when it could not take it (it stays in the outbox)."""
    try:
        _broadcast(
            user_id=event.user_id,
            event_type=event.event_type,
            data=event.data,
            symbol=event.symbol,
            source=event.source,
            seq=event.seq,
        )
        return True
    except Exception:
        logger.warning(
            "private event not delivered; kept for redelivery",
            extra={"user_id": event.user_id, "seq": event.seq, "event_type": event.event_type},
            exc_info=True,
        )
        return False


def _record_and_deliver(*, user_id: int, event_type: str, data: dict[str, Any], symbol: str) -> PrivateEvent:
    with transaction.atomic():
        seq = _next_seq(user_id)
        event = PrivateEvent.objects.create(
            user_id=user_id, seq=seq, event_type=event_type, symbol=symbol, source=SOURCE, data=jsonable(data)
        )
        if _deliver(event):
            PrivateEvent.objects.filter(pk=event.pk).update(delivered_at=timezone.now())
    return event


def publish_private(*, user_id: int, event_type: str, data: dict[str, Any], symbol: str | None = None) -> None:
    """Number, keep and deliver one private event for `user_id` only; failures are logged, never raised into the
    caller (an order's outcome never depends on its notification)."""

    def go() -> None:
        try:
            _record_and_deliver(user_id=user_id, event_type=event_type, data=data, symbol=symbol or ALL_SYMBOLS)
        except Exception:
            logger.exception("private event not recorded", extra={"user_id": user_id, "event_type": event_type})

    transaction.on_commit(go)


@dataclass(frozen=True, slots=True)
class Resync:
    events: list[dict[str, Any]]
    gap: bool  # some events after `since` are no longer kept: refresh everything
    last_seq: int  # the newest sequence number of the stream


def private_events_since(*, user_id: int, since: int, limit: int | None = None) -> Resync:
    """Events after `since`, oldest first. `gap` is honest: events purged, more than `limit` waiting, or a `since`
    the stream never reached (a client from before a reset)."""
    limit = limit or settings.WS_PRIVATE_REPLAY
    last = stream_last_seq(user_id=user_id)
    rows = list(PrivateEvent.objects.filter(user_id=user_id, seq__gt=since).order_by("seq")[: limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    gap = since > last or more or (since < last and (not rows or rows[0].seq > since + 1) and since > 0)
    if since == 0 and rows and rows[0].seq > 1:
        gap = True  # the oldest events of the stream were purged
    return Resync(events=[envelope_dict(r) for r in rows], gap=gap, last_seq=last)


def private_events_redeliver(*, older_than_sec: float = 2.0, batch: int = 500) -> int:
    """The outbox sweep: deliver events the broadcaster could not take (in order per user); periodic job."""
    cutoff = timezone.now() - timedelta(seconds=older_than_sec)
    pending = list(
        PrivateEvent.objects.filter(delivered_at__isnull=True, created_at__lt=cutoff).order_by("user_id", "seq")[:batch]
    )
    delivered = 0
    for event in pending:
        if not _deliver(event):
            break  # the broadcaster is still down: try again next round, in order
        PrivateEvent.objects.filter(pk=event.pk).update(delivered_at=timezone.now())
        delivered += 1
    return delivered


def private_events_purge(*, keep_hours: float | None = None) -> int:
    """Delete events older than EXECUTION_PRIVATE_EVENTS_KEEP_HOURS (a resync asking for them reports a gap)."""
    hours = settings.EXECUTION_PRIVATE_EVENTS_KEEP_HOURS if keep_hours is None else keep_hours
    deleted, _ = PrivateEvent.objects.filter(created_at__lt=timezone.now() - timedelta(hours=hours)).delete()
    return deleted


# --- delivery through the broadcaster from synchronous code ---------------------------------------------------
def _broadcast(**kwargs: Any) -> None:

    broadcaster = get_broadcaster()
    loop = getattr(broadcaster, "_loop", None)
    if loop is not None and loop.is_running() and not loop.is_closed():
        # The hub's sockets belong to the gateway's loop (one-process topology): deliver there.
        asyncio.run_coroutine_threadsafe(broadcaster.publish_private(**kwargs), loop).result(timeout=5)
        return
    # No gateway loop in this process (commands, Celery, workers): one long-lived publishing loop, so the Redis
    # broadcaster keeps one client instead of a new loop and connection per event.
    asyncio.run_coroutine_threadsafe(broadcaster.publish_private(**kwargs), _publisher_loop()).result(timeout=5)


_loop_lock = threading.Lock()
_own_loop: asyncio.AbstractEventLoop | None = None


def _publisher_loop() -> asyncio.AbstractEventLoop:
    global _own_loop
    with _loop_lock:
        if _own_loop is None or _own_loop.is_closed():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="execution-publisher", daemon=True).start()
            _own_loop = loop
        return _own_loop
