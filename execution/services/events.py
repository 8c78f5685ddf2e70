"""Private stream publishing from synchronous code (relay threads, commands, Celery) through the one helper
`markets.realtime.get_broadcaster().publish_private` — per-user sequence numbers and the replay buffer live there.
Inside a transaction the publish runs on commit."""

from __future__ import annotations

import asyncio
import logging
import threading
from decimal import Decimal
from typing import Any

from django.db import transaction

logger = logging.getLogger(__name__)


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


def _publish_now(*, user_id: int, event_type: str, data: dict[str, Any], symbol: str | None) -> int | None:
    from markets.realtime import get_broadcaster

    broadcaster = get_broadcaster()
    kwargs: dict[str, Any] = {"user_id": user_id, "event_type": event_type, "data": jsonable(data)}
    if symbol:
        kwargs["symbol"] = symbol
    loop = getattr(broadcaster, "_loop", None)
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is not None:
        # Called from async code by mistake: never block the loop.
        running.create_task(broadcaster.publish_private(**kwargs))
        return None
    if loop is not None and loop.is_running() and not loop.is_closed():
        # The hub's sockets belong to the gateway's loop (one-process topology): publish there.
        fut = asyncio.run_coroutine_threadsafe(broadcaster.publish_private(**kwargs), loop)
        return int(fut.result(timeout=5))
    # No gateway loop in this process (commands, Celery, tests): one long-lived publishing loop, so the Redis
    # broadcaster keeps one client instead of a new loop and connection per event.
    fut = asyncio.run_coroutine_threadsafe(broadcaster.publish_private(**kwargs), _publisher_loop())
    return int(fut.result(timeout=5))


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


def publish_private(*, user_id: int, event_type: str, data: dict[str, Any], symbol: str | None = None) -> None:
    """Publish one private event to `user_id` only; failures are logged, never raised into the relay."""

    def go() -> None:
        try:
            _publish_now(user_id=user_id, event_type=event_type, data=data, symbol=symbol)
        except Exception:
            logger.exception("private publish failed", extra={"user_id": user_id, "event_type": event_type})

    transaction.on_commit(go)
