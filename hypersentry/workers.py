"""The shell every long-running worker runs in, written once.

A worker subclasses `AsyncWorker` (or `Worker` for blocking work) and implements `run_once()`; the shell
handles SIGTERM/SIGINT, timeouts on each round, errors caught and logged at the loop boundary (the loop goes
on after a back-off), database connections refreshed every round, and a heartbeat for the index page.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import signal
import threading
import time
from typing import ClassVar

from asgiref.sync import sync_to_async
from django.db import close_old_connections

from hypersentry import components
from hypersentry.metrics import COMPONENT_ERRORS, COMPONENT_LOOPS
from hypersentry.runtime import tune_gc

logger = logging.getLogger(__name__)


class AsyncWorker(abc.ABC):
    """Base for asyncio workers. Subclasses set `name` and implement `run_once`."""

    name: ClassVar[str] = "worker"
    interval: float = 1.0  # seconds to wait between rounds (0 = straight on)
    round_timeout: float = 30.0  # a round taking longer than this is cancelled and counted as an error
    error_backoff_max: float = 30.0

    def __init__(self) -> None:
        self.stopping = asyncio.Event()
        self._errors_in_row = 0

    async def setup(self) -> None:
        """Called once before the first round."""

    async def teardown(self) -> None:
        """Called once after the last round, also on errors."""

    @abc.abstractmethod
    async def run_once(self) -> None:
        """One round of work."""

    def stop(self) -> None:
        self.stopping.set()

    async def _sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), seconds)

    async def _round(self) -> None:
        await sync_to_async(close_old_connections, thread_sensitive=False)()
        await asyncio.wait_for(self.run_once(), self.round_timeout)

    async def run(self) -> None:
        """Run rounds until `stop()`; never raises out of a failing round."""
        logger.info("worker starting", extra={"component": self.name})
        await self.setup()
        try:
            while not self.stopping.is_set():
                try:
                    await self._round()
                    self._errors_in_row = 0
                    COMPONENT_LOOPS.labels(self.name).inc()
                    components.heartbeat(self.name)
                    await self._sleep(self.interval)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    self._errors_in_row += 1
                    COMPONENT_ERRORS.labels(self.name).inc()
                    delay = min(self.error_backoff_max, 0.5 * 2 ** min(self._errors_in_row, 6))
                    logger.exception("worker round failed", extra={"component": self.name, "retry_in_s": delay})
                    await self._sleep(delay)
        finally:
            await self.teardown()
            logger.info("worker stopped", extra={"component": self.name})

    def run_forever(self) -> None:
        """Entry point for management commands: own event loop, graceful on SIGTERM/SIGINT."""
        tune_gc()
        asyncio.run(self._main())

    async def _main(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)
        await self.run()


class Worker(abc.ABC):
    """Base for blocking workers (run_once is synchronous, e.g. ORM-heavy reconciliation)."""

    name: ClassVar[str] = "worker"
    interval: float = 1.0
    error_backoff_max: float = 30.0

    def __init__(self) -> None:
        self.stopping = threading.Event()

    @abc.abstractmethod
    def run_once(self) -> None:
        """One round of work."""

    def stop(self, *_: object) -> None:
        self.stopping.set()

    def run_forever(self) -> None:
        tune_gc()
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self.stop)
            signal.signal(signal.SIGINT, self.stop)
        errors = 0
        logger.info("worker starting", extra={"component": self.name})
        while not self.stopping.is_set():
            started = time.monotonic()
            try:
                close_old_connections()
                self.run_once()
                errors = 0
                COMPONENT_LOOPS.labels(self.name).inc()
                components.heartbeat(self.name)
                self.stopping.wait(max(0.0, self.interval - (time.monotonic() - started)))
            except Exception:
                errors += 1
                COMPONENT_ERRORS.labels(self.name).inc()
                delay = min(self.error_backoff_max, 0.5 * 2 ** min(errors, 6))
                logger.exception("worker round failed", extra={"component": self.name, "retry_in_s": delay})
                self.stopping.wait(delay)
        close_old_connections()
        logger.info("worker stopped", extra={"component": self.name})
