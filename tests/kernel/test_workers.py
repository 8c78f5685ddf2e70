"""The worker shell: errors are caught at the loop boundary, the loop goes on, stop is graceful."""

from __future__ import annotations

import asyncio
import threading

import pytest

from tests.kernel.quick_workers import QuickAsyncWorker, QuickWorker

pytestmark = pytest.mark.django_db(transaction=True)


class Flaky(QuickAsyncWorker):
    name = "test-flaky"
    torn_down = False

    async def run_once(self) -> None:
        self.calls += 1
        if self.calls == 2:
            raise RuntimeError("boom")
        if self.calls >= 4:
            self.stop()

    async def teardown(self) -> None:
        self.torn_down = True


async def test_a_failing_round_is_logged_and_the_loop_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    worker = Flaky()
    await asyncio.wait_for(worker.run(), 10)
    assert worker.calls == 4
    assert worker.torn_down
    assert any(r.message == "worker round failed" and r.exc_info for r in caplog.records)


class Slow(QuickAsyncWorker):
    name = "test-slow"
    round_timeout = 0.05

    async def run_once(self) -> None:
        self.calls += 1
        if self.calls >= 2:
            self.stop()
            return
        await asyncio.sleep(5)


async def test_a_round_that_hangs_is_cut_by_its_timeout() -> None:
    worker = Slow()
    await asyncio.wait_for(worker.run(), 5)
    assert worker.calls == 2


class Counting(QuickWorker):
    name = "test-sync"

    def run_once(self) -> None:
        self.calls += 1
        if self.calls == 1:
            raise ValueError("first round fails")


def test_the_blocking_worker_stops_when_asked() -> None:
    worker = Counting()
    thread = threading.Thread(target=worker.run_forever)
    thread.start()
    while worker.calls < 3:
        threading.Event().wait(0.01)
    worker.stop()
    thread.join(5)
    assert not thread.is_alive()
