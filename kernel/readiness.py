"""Readiness checks for /readyz. Apps register extra checks (e.g. market freshness) with `register`."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.db import connection


@dataclass(frozen=True, slots=True)
class CheckResult:
    ok: bool
    detail: str
    latency_ms: float


ReadinessCheck = Callable[[], Awaitable[tuple[bool, str]]]
_CHECKS: dict[str, ReadinessCheck] = {}


def register(name: str, check: ReadinessCheck) -> None:
    _CHECKS[name] = check


def _db_ping() -> tuple[bool, str]:
    """A fresh connection each time, closed afterwards: a connection kept by the worker thread would outlive a
    database restart (and answer "not ready" long after the database is back) and pile up across threads."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        return True, connection.vendor
    finally:
        connection.close()


async def check_database() -> tuple[bool, str]:
    return await sync_to_async(_db_ping, thread_sensitive=False)()


async def check_channel_layer() -> tuple[bool, str]:
    """A round trip through the configured channel layer. With kernel.channel_layer's layer in a split topology
    that is a PUBLISH to Redis read back through this process's own pattern subscription: the path every realtime
    frame takes to this process's sockets."""
    layer = get_channel_layer()
    if layer is None:
        return False, "no channel layer configured"
    ensure_receiving = getattr(layer, "ensure_receiving", None)
    if ensure_receiving is not None:
        await ensure_receiving()
    channel = await layer.new_channel("readyz.")
    try:
        token = uuid.uuid4().hex
        await layer.send(channel, {"type": "readyz.ping", "token": token})
        message = await layer.receive(channel)
    finally:
        discard = getattr(layer, "discard_channel", None)
        if discard is not None:
            discard(channel)
    if message.get("token") != token:
        return False, "round trip returned another message"
    transport = getattr(layer, "transport", "")
    return True, f"{type(layer).__name__}/{transport}" if transport else type(layer).__name__


register("database", check_database)
register("channel_layer", check_channel_layer)


async def run_checks(timeout: float = 3.0) -> dict[str, CheckResult]:
    async def one(name: str, check: ReadinessCheck) -> tuple[str, CheckResult]:
        started = time.perf_counter()
        try:
            ok, detail = await asyncio.wait_for(check(), timeout)
        except TimeoutError:
            ok, detail = False, f"timed out after {timeout:.1f}s"
        except Exception as exc:  # noqa: BLE001 - a failing dependency is a readiness answer, not a crash
            ok, detail = False, f"{type(exc).__name__}: {exc}"
        return name, CheckResult(ok=ok, detail=detail, latency_ms=round((time.perf_counter() - started) * 1000, 2))

    results = await asyncio.gather(*(one(n, c) for n, c in list(_CHECKS.items())))
    return dict(results)
