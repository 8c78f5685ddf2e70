"""The one-process topology: web server, simulator, ingest, alpha and periodic jobs in one event loop.

Each component is an `async def run(stop: asyncio.Event) -> None` found by dotted path, so split topologies
run the very same code from their own management commands.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator

from asgiref.sync import sync_to_async
from django.db import close_old_connections
from django.utils.module_loading import import_string

from hypersentry import components
from hypersentry.schedule import PERIODIC_JOBS

logger = logging.getLogger(__name__)

ComponentRunner = Callable[[asyncio.Event], Awaitable[None]]

# Order matters at start-up: the venue first, then what reads from it.
COMPONENT_RUNNERS: dict[str, str] = {
    "hlsim": "hypersentry.simulator.run_embedded",
    "ingest": "markets.ingest.run_embedded",
    "alpha": "alpha.pipeline.run_embedded",
    "execution": "execution.userfeed.run_embedded",
    "jobs": "hypersentry.topology.run_jobs",
}


def available_components() -> list[str]:
    """Components whose code is importable in this build."""
    names = []
    for name, path in COMPONENT_RUNNERS.items():
        try:
            import_string(path)
        except ImportError:
            continue
        names.append(name)
    return names


def runner_for(name: str) -> ComponentRunner:
    return import_string(COMPONENT_RUNNERS[name])  # type: ignore[no-any-return]


def _run_job(task_path: str) -> None:
    close_old_connections()
    try:
        import_string(task_path)()
    finally:
        close_old_connections()


async def run_jobs(stop: asyncio.Event) -> None:
    """Run every periodic job on its interval (what Celery beat + worker do in split topologies)."""
    next_due = {job.name: (0.0 if job.run_at_start else time.monotonic() + job.every_sec) for job in PERIODIC_JOBS}
    while not stop.is_set():
        components.heartbeat("jobs", detail=f"{len(PERIODIC_JOBS)} jobs")
        now = time.monotonic()
        for job in list(PERIODIC_JOBS):
            if now < next_due.get(job.name, 0.0):
                continue
            next_due[job.name] = now + job.every_sec
            try:
                await sync_to_async(_run_job, thread_sensitive=False)(job.task)
            except Exception:
                logger.exception("periodic job failed", extra={"job": job.name})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)


@contextlib.contextmanager
def _no_signal_capture() -> Iterator[None]:
    yield


async def run_web(stop: asyncio.Event, *, host: str, port: int) -> None:
    """Serve the ASGI app with uvicorn in this loop (per-message deflate off: frames are encoded once)."""
    import uvicorn

    config = uvicorn.Config(
        "hypersentry.asgi:application",
        host=host,
        port=port,
        lifespan="off",
        log_config=None,
        access_log=False,
        ws_per_message_deflate=False,
        ws_ping_interval=20,
        ws_ping_timeout=20,
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    server.capture_signals = _no_signal_capture  # type: ignore[method-assign]  # signals belong to `serve`

    async def beat() -> None:
        while not stop.is_set():
            components.heartbeat("web", detail=f"http://{host}:{port}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 2.0)
        server.should_exit = True

    beat_task = asyncio.create_task(beat())
    try:
        await server.serve()
    finally:
        beat_task.cancel()
        if not stop.is_set():
            # The server ended by itself (e.g. the port is taken): bring the whole process down.
            stop.set()
