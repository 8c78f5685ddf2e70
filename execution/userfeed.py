"""Venue user feeds → local state and private streams.

The venue serves user-specific WS subscriptions for at most 10 distinct users per IP, and `orderUpdates` /
`userEvents` pushes do not say which user they are for — so each streamed user gets its own connection
(orderUpdates + userFills + userEvents), for the USERFEED_MAX_STREAMED_USERS most recently active users. Everyone
else with an agent is polled (reconcile_user) every USERFEED_POLL_SEC under the REST budget.

Runs as `python manage.py run_userfeed` or inside the one-process topology (`run_embedded`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections, connection
from django.db.models import Max
from django.utils import timezone

from accounts.models import AgentStatus, AgentWallet, User
from execution.models import Order
from execution.services import sync
from execution.services.sync import (
    RECONCILE_WEIGHT,
    feed_catch_up,
    reconcile_all,
    reconcile_budget_take,
    reconcile_user,
    user_feed_mark,
)
from kernel.venue import client as vc
from kernel.venue.streams import UserFeedSocket
from kernel.workers import AsyncWorker

logger = logging.getLogger(__name__)


def _closing(fn: Any) -> Any:
    """Run `fn` in a worker thread and close that thread's DB connection afterwards (threads are reused)."""

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        finally:
            connection.close()

    return wrapped


def active_users(limit: int) -> tuple[list[tuple[int, str]], list[int]]:
    """(streamed [(id, address)], polled [id]): users with an approved agent, most recently active first."""
    ids = set(
        AgentWallet.objects.filter(status=AgentStatus.APPROVED, valid_until__gt=timezone.now()).values_list(
            "user_id", flat=True
        )
    )
    users = (
        User.objects.filter(pk__in=ids)
        .annotate(last_order=Max("orders__created_at"), last_seen=Max("sessions__last_seen"))
        .order_by("-last_order", "-last_seen", "-pk")
    )
    rows = [(u.pk, u.address) for u in users]
    return rows[:limit], [pk for pk, _ in rows[limit:]]


def _apply_frame(user_id: int, channel: str, data: Any) -> None:
    """One venue push for one user (runs in a worker thread)."""

    close_old_connections()
    try:
        user = User.objects.get(pk=user_id)
        touched_fills = False
        if channel == "orderUpdates":
            for upd in data or []:
                vo = upd.get("order") or {}
                cloid = (vo.get("cloid") or "").lower()
                order = Order.objects.filter(user=user, cloid=cloid).first() if cloid else None
                if order is None and vo.get("oid") is not None:
                    order = Order.objects.filter(user=user, venue_oid=int(vo["oid"])).first()
                if order is not None:
                    sync.order_apply_venue(
                        order=order,
                        status=str(upd.get("status")),
                        venue_order=vo,
                        cid=order.correlation_id,
                        discrepancy=False,
                    )
                elif upd.get("status") == "open":
                    # Placed outside HyperSentry (the venue's UI, another client of the master wallet): every order
                    # we send is stored with its cloid before it leaves, so an open order we cannot match is adopted
                    # now rather than at the next reconciliation.
                    sync.order_adopt_from_feed(user=user, venue_order=vo)
        elif channel == "userFills" and isinstance(data, dict):
            # The snapshot sent on (re)subscribing too: fills made while the connection was down land here (known
            # ones are skipped by their (tid, oid)).
            for raw in data.get("fills") or []:
                touched_fills |= sync.fill_record(user=user, raw=raw, cid="feed", source="userfeed") is not None
        elif channel == "user" and isinstance(data, dict) and data.get("fills"):
            for raw in data["fills"]:
                touched_fills |= sync.fill_record(user=user, raw=raw, cid="feed", source="userfeed") is not None
        if touched_fills:
            sync.pnl_breakers_check(user=user)
            try:
                sync.positions_sync(user=user, quiet=True)
            except (vc.VenueError, vc.VenueTimeout) as exc:
                # The fills are recorded; positions follow at the next read or reconciliation round.
                logger.info("positions not refreshed after a fill", extra={"user_id": user_id, "reason": str(exc)})
    finally:
        connection.close()


CATCH_UP_RETRY_SEC = 5.0


@_closing
def _catch_up(user_id: int) -> bool:

    try:
        fixes = feed_catch_up(user=User.objects.get(pk=user_id))
    except (vc.VenueError, vc.VenueTimeout) as exc:
        logger.info("user feed catch-up deferred", extra={"user_id": user_id, "reason": str(exc)})
        return False
    if fixes:
        logger.info("user feed caught up", extra={"user_id": user_id, "fixes": fixes})
    return True


def _feed_mark(user_id: int) -> None:

    user_feed_mark(user_id=user_id)


async def stream_user(user_id: int, address: str, stop: asyncio.Event) -> None:
    """One connection for one user; returns when it breaks (the worker restarts it)."""
    async with UserFeedSocket(vc.base_url(), address) as feed:
        last_mark = last_try = 0.0
        caught_up = False
        while not stop.is_set():
            now = time.monotonic()
            if not caught_up and now - last_try > CATCH_UP_RETRY_SEC:
                # Subscribed: read once what happened while no feed ran (retried until it succeeds; until then the
                # user is not marked as streamed, so the relay and reconciliation keep reading by REST).
                last_try = now
                caught_up = await sync_to_async(_catch_up, thread_sensitive=False)(user_id)
            if caught_up and now - last_mark > 3:
                # While this connection is up, the relay leaves this user's fills to it (no REST fills read) and
                # reconciliation compares the user in full only every EXECUTION_RECONCILE_STREAMED_SEC.
                await sync_to_async(_feed_mark, thread_sensitive=False)(user_id)
                last_mark = now
            push = await feed.next(timeout=1.0)
            if push is not None:
                await sync_to_async(_apply_frame, thread_sensitive=False)(user_id, *push)


class UserFeedWorker(AsyncWorker):
    name = "execution"
    interval = 2.0
    round_timeout = 120.0

    def __init__(self) -> None:
        super().__init__()
        self.tasks: dict[int, asyncio.Task[None]] = {}
        self.last_poll = 0.0
        self.started_at_ms = 0

    async def setup(self) -> None:

        # Reconciliation also runs at start-up: orders that went unknown while we were down get resolved.
        try:
            result = await sync_to_async(_closing(reconcile_all), thread_sensitive=False)()
            logger.info("start-up reconciliation", extra={"result": result})
        except Exception:
            logger.exception("start-up reconciliation failed")

    async def teardown(self) -> None:
        for task in self.tasks.values():
            task.cancel()
        for task in self.tasks.values():
            with contextlib.suppress(BaseException):
                await task

    async def run_once(self) -> None:
        streamed, polled = await sync_to_async(_closing(active_users), thread_sensitive=False)(
            settings.USERFEED_MAX_STREAMED_USERS
        )
        wanted = dict(streamed)
        for uid in list(self.tasks):
            task = self.tasks[uid]
            if uid not in wanted or task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
                del self.tasks[uid]
        for uid, address in wanted.items():
            if uid not in self.tasks:
                self.tasks[uid] = asyncio.create_task(self._guarded(uid, address), name=f"userfeed-{uid}")
        if polled and time.monotonic() - self.last_poll >= settings.USERFEED_POLL_SEC:
            self.last_poll = time.monotonic()
            await sync_to_async(_closing(_poll), thread_sensitive=False)(polled)

    async def _guarded(self, uid: int, address: str) -> None:
        try:
            await stream_user(uid, address, self.stopping)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - restarted next round
            logger.info("user feed connection ended", extra={"user_id": uid, "error": str(exc)})
            await asyncio.sleep(2.0)


def _poll(user_ids: list[int]) -> None:

    close_old_connections()

    for user in User.objects.filter(pk__in=user_ids):
        if not reconcile_budget_take(RECONCILE_WEIGHT):
            logger.info("user poll deferred: reconciliation REST budget used up", extra={"user_id": user.pk})
            break
        try:
            reconcile_user(user=user)
        except (vc.VenueError, vc.VenueTimeout):
            logger.warning("poll failed", extra={"user_id": user.pk})
    close_old_connections()


async def run_embedded(stop: asyncio.Event) -> None:
    """One-process topology entry point."""
    if not settings.EXECUTION_EMBEDDED:
        await stop.wait()
        return
    worker = UserFeedWorker()
    task = asyncio.create_task(worker.run())
    await stop.wait()
    worker.stop()
    with contextlib.suppress(BaseException):
        await asyncio.wait_for(task, 10)
