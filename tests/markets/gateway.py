"""Helpers for the socket tests (gateway, private streams): a real uvicorn server in the test's loop, envelopes,
sessions."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from importlib import import_module
from typing import Any

import orjson
import uvicorn
import websockets
from asgiref.sync import sync_to_async
from django.conf import settings

from kernel import realtime
from kernel.clock import now_ms
from kernel.contracts.envelope import make_envelope

ORIGIN = "http://127.0.0.1:8000"
ENVELOPE_FIELDS = {"event_type", "symbol", "ts_ms", "source", "seq", "data"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _no_signals() -> Iterator[None]:
    yield


@contextlib.asynccontextmanager
async def serve(allowed_origins: Iterable[str] | None = None) -> AsyncIterator[str]:
    """uvicorn serving the real ASGI application (origin check + auth stack + gateway) on a free port."""
    from hypersentry.asgi import application, build_application

    app = application if allowed_origins is None else build_application(allowed_origins)
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, lifespan="off", log_config=None, ws_per_message_deflate=False
    )
    server = uvicorn.Server(config)
    server.capture_signals = _no_signals  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + 10
    while not server.started:
        if task.done() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        await asyncio.sleep(0.02)
    try:
        yield f"ws://127.0.0.1:{port}/ws"
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 10)


def connect(url: str, *, origin: str | None = ORIGIN, cookie: str | None = None, **kw: Any) -> Any:
    headers = {"Cookie": cookie} if cookie else None
    return websockets.connect(
        url,
        origin=origin,
        additional_headers=headers,
        compression=None,
        open_timeout=5,
        **kw,  # type: ignore[arg-type]
    )


def agg_text(symbol: str, seq: int, *, price: str = "100.0", ts_ms: int | None = None) -> str:
    env = make_envelope(
        event_type="agg_update",
        symbol=symbol,
        ts_ms=ts_ms or now_ms(),
        source="hyperliquid",
        seq=seq,
        data={"symbol": symbol, "price": price},
    )
    return env.encode().decode()


async def recv_json(ws: Any, timeout: float = 3.0) -> dict[str, Any]:
    return orjson.loads(await asyncio.wait_for(ws.recv(), timeout))  # type: ignore[no-any-return]


async def recv_all(ws: Any, timeout: float) -> list[dict[str, Any]]:
    """Every frame until none comes for `timeout` seconds."""
    frames = []
    while True:
        try:
            frames.append(await recv_json(ws, timeout))
        except TimeoutError:
            return frames


async def recv_until(ws: Any, predicate: Any, timeout: float = 3.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no matching frame")
        frame = await recv_json(ws, left)
        if predicate(frame):
            return frame


async def make_user_session(address: str) -> tuple[Any, str]:
    """A user and a logged-in Django session for it; returns (user, session_key)."""
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model

    def build() -> tuple[Any, str]:
        from eth_utils import to_checksum_address

        user = get_user_model().objects.create_user(to_checksum_address(address))
        store = import_module(settings.SESSION_ENGINE).SessionStore()
        store[SESSION_KEY] = str(user.pk)
        store[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]
        store[HASH_SESSION_KEY] = user.get_session_auth_hash()
        store.create()
        return user, store.session_key

    return await sync_to_async(build)()


@contextlib.asynccontextmanager
async def fresh_broadcaster(kind: str = "default") -> AsyncIterator[realtime.Broadcaster]:
    await realtime.reset_broadcaster()
    if kind == "local":
        realtime._broadcaster = realtime.LocalBroadcaster()
    try:
        yield realtime.get_broadcaster()
    finally:
        await realtime.reset_broadcaster()
