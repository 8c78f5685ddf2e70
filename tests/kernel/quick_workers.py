"""Workers for tests of the worker shell (kernel.workers): quick rounds, a 10 ms back-off after a failed round, and
`calls`, the rounds started so far (each test worker's run_once counts itself)."""

from __future__ import annotations

from kernel.workers import AsyncWorker, Worker


class QuickAsyncWorker(AsyncWorker):
    interval = 0.0
    error_backoff_max = 0.01
    calls = 0


class QuickWorker(Worker):
    interval = 0.01
    error_backoff_max = 0.01
    calls = 0
