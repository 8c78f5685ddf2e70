"""The shell every long-running worker runs in, written once.

A worker subclasses `AsyncWorker` (or `Worker` for blocking work) and implements `run_once()`; the shell
handles SIGTERM/SIGINT, timeouts on each round, errors caught and logged at the loop boundary (the loop goes
on after a back-off), database connections refreshed every round, and the process's heartbeat (`/system`,
`manage.py healthcheck`): written every few seconds from the start to a clean stop, which deletes it, with the
last error the loop caught.
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

from kernel import components
from kernel.metrics import COMPONENT_ERRORS, COMPONENT_LOOPS
from kernel.runtime import tune_gc

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
        self.rounds = 0
        self.failed_rounds = 0

    async def setup(self) -> None:
        """Called once before the first round."""

    async def teardown(self) -> None:
        """Called once after the last round, also on errors."""

    @abc.abstractmethod
    async def run_once(self) -> None:
        """One round of work."""

    def stop(self) -> None:
        self.stopping.set()

    def beat_detail(self) -> str:
        """What `/system` shows next to this process's heartbeat."""
        return f"{self.rounds} rounds, {self.failed_rounds} failed"

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
        """Run rounds until `stop()`; never raises out of a failing round.

        The heartbeat is a task beside the rounds, from before `setup()` (a start-up reconciliation is work too)
        to after `teardown()`: it proves the event loop answers, and each round is bounded by `round_timeout`."""
        logger.info("worker starting", extra={"component": self.name})
        async with components.AsyncHeartbeat(self.name, detail=self.beat_detail):
            await self.setup()
            try:
                while not self.stopping.is_set():
                    await self._guarded_round()
            finally:
                await self.teardown()
                logger.info("worker stopped", extra={"component": self.name})

    async def _guarded_round(self) -> None:
        """One round and its pause; a failure is logged, counted, recorded on the heartbeat and backed off."""
        try:
            await self._round()
            self._errors_in_row = 0
            self.rounds += 1
            COMPONENT_LOOPS.labels(self.name).inc()
            await self._sleep(self.interval)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._errors_in_row += 1
            self.rounds += 1
            self.failed_rounds += 1
            COMPONENT_ERRORS.labels(self.name).inc()
            delay = min(self.error_backoff_max, 0.5 * 2 ** min(self._errors_in_row, 6))
            logger.exception("worker round failed", extra={"component": self.name, "retry_in_s": delay})
            await asyncio.to_thread(components.error_seen_safely, self.name, exc)
            await self._sleep(delay)

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
        logger.info("worker starting", extra={"component": self.name})
        # A thread beats: the loop blocks in run_once by design.
        heart = components.ThreadHeartbeat(self.name)
        heart.start()
        try:
            self._loop()
        finally:
            heart.stop()
            close_old_connections()
            logger.info("worker stopped", extra={"component": self.name})

    def _loop(self) -> None:
        errors = 0
        while not self.stopping.is_set():
            started = time.monotonic()
            try:
                close_old_connections()
                self.run_once()
                errors = 0
                COMPONENT_LOOPS.labels(self.name).inc()
                self.stopping.wait(max(0.0, self.interval - (time.monotonic() - started)))
            except Exception as exc:
                errors += 1
                COMPONENT_ERRORS.labels(self.name).inc()
                delay = min(self.error_backoff_max, 0.5 * 2 ** min(errors, 6))
                logger.exception("worker round failed", extra={"component": self.name, "retry_in_s": delay})
                components.error_seen_safely(self.name, exc)
                self.stopping.wait(delay)
