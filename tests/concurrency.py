"""Test code run in threads at once: many users, or the same user racing itself (docs: every money-path rule is
tested that way)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

from django.db import connection


def run_in_threads(calls: Iterable[Callable[[], object]], *, timeout: float | None = None) -> None:
    """Start every call in a thread of its own, then wait for each (up to `timeout` seconds). Each thread closes its
    database connection when its call ends: Django opens one per thread, and one left open blocks the test
    database's teardown."""

    def run(call: Callable[[], object]) -> None:
        try:
            call()
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
