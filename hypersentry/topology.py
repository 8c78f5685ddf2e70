"""The one-process topology: web server, simulator, ingest, alpha and periodic jobs in one event loop.

Each component is an `async def run(stop: asyncio.Event) -> None` of its app, named here by the function itself, so
split topologies run the very same code from their own management commands.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator

import uvicorn
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections

from alpha import pipeline
from execution import userfeed
from hypersentry import simulator
from kernel import components
from kernel.metrics import COMPONENT_ERRORS
from kernel.schedule import PeriodicJob, periodic_jobs
from markets import ingest

logger = logging.getLogger(__name__)

ComponentRunner = Callable[[asyncio.Event], Awaitable[None]]


def _run_job(job: PeriodicJob) -> None:
    """One run, in a worker thread: fresh database connections in, none left behind for the next job here."""
    close_old_connections()
    try:
        job.func()
    finally:
        close_old_connections()


async def run_jobs(stop: asyncio.Event) -> None:
    """Run every periodic job on its interval (what Celery beat + worker do in split topologies).

    Each run is its own asyncio task in a worker thread, so a slow job (a reconcile waiting out venue timeouts)
    never delays another (the kill-switch upkeep re-arming the dead-man switch). A job still running when it falls
    due again is not started twice: it runs again once it has finished. A failing run is logged with the job name
    and counted; the job runs again at its next interval and the others go on.
    """
    jobs = periodic_jobs()
    now = time.monotonic()
    next_due = {job.name: now if job.run_at_start else now + job.every_sec for job in jobs}
    running: dict[str, asyncio.Task[None]] = {}
    failed_runs = 0

    async def run(job: PeriodicJob) -> None:
        nonlocal failed_runs
        try:
            await sync_to_async(_run_job, thread_sensitive=False)(job)
        except Exception as exc:
            failed_runs += 1
            COMPONENT_ERRORS.labels("jobs").inc()
            logger.exception("periodic job failed", extra={"job": job.name})
            await asyncio.to_thread(components.error_seen_safely, "jobs", f"{job.name}: {type(exc).__name__}: {exc}")

    def beat_detail() -> str:
        return f"{len(jobs)} jobs, {failed_runs} failed runs"

    async with components.AsyncHeartbeat("jobs", detail=beat_detail):
        while not stop.is_set():
            now = time.monotonic()
            for job in jobs:
                in_flight = running.get(job.name)
                if now < next_due[job.name] or (in_flight is not None and not in_flight.done()):
                    continue
                next_due[job.name] = now + job.every_sec
                running[job.name] = asyncio.create_task(run(job), name=f"job:{job.name}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
        # Let runs in progress finish (`serve` cancels us after its own shutdown grace period).
        await asyncio.gather(*running.values())


# Order matters at start-up: the venue first, then what reads from it.
COMPONENT_RUNNERS: dict[str, ComponentRunner] = {
    "hlsim": simulator.run_embedded,
    "ingest": ingest.run_embedded,
    "alpha": pipeline.run_embedded,
    "execution": userfeed.run_embedded,
    "jobs": run_jobs,
}


def available_components() -> list[str]:
    return list(COMPONENT_RUNNERS)


def runner_for(name: str) -> ComponentRunner:
    return COMPONENT_RUNNERS[name]


@contextlib.contextmanager
def _no_signal_capture() -> Iterator[None]:
    yield


async def run_web(stop: asyncio.Event, *, host: str, port: int) -> None:
    """Serve the ASGI app with uvicorn in this loop (per-message deflate off: frames are encoded once).

    Lifespan is on: the app's lifespan handler runs the web heartbeat, as it does under uvicorn on its own."""
    config = uvicorn.Config(
        "hypersentry.asgi:application",
        host=host,
        port=port,
        lifespan="on",
        log_config=None,
        access_log=False,
        ws_per_message_deflate=False,
        # Client frames above this are refused by the protocol layer (close 1009) before being buffered;
        # uvicorn's default would buffer up to 16 MiB per frame per socket.
        ws_max_size=settings.WS_MAX_FRAME_BYTES,
        ws_ping_interval=20,
        ws_ping_timeout=20,
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    server.capture_signals = _no_signal_capture  # type: ignore[method-assign]  # signals belong to `serve`

    async def watch() -> None:
        await stop.wait()
        server.should_exit = True

    watch_task = asyncio.create_task(watch())
    try:
        await server.serve()
    finally:
        watch_task.cancel()
        if not stop.is_set():
            # The server ended by itself (e.g. the port is taken): bring the whole process down.
            stop.set()
