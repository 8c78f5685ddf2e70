"""Pytest plugin (registered in tests/conftest.py): a real venue simulator per test, the hot state fed from its
books, and signed-in traders with approved agents — the fixtures of the execution suite, shared with the alpha and
fuzz tests. A directory or module may override `sim_thread` (another simulator configuration); `hot`, `trader` and
`fresh_books` then use that one."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from asgiref.sync import async_to_sync

from accounts.models import User
from hlsim.server import SimConfig, SimulatorThread
from kernel.contracts.snapshot import SymbolSnapshot
from kernel.venue import client as vc
from kernel.venue import meta
from markets.hotstate import MemoryHotState
from tests.factories import SYMBOL, approved_trader, book_snapshot

SIM_SYMBOLS = ("BTC", "ETH", "SOL")


@contextlib.contextmanager
def venue_simulator(settings: Any, **config: Any) -> Iterator[SimulatorThread]:
    """A simulator of SIM_SYMBOLS (`config` overrides its SimConfig) as the process's venue, with a 2 s venue
    timeout; the venue meta cache is cleared on both sides."""
    values: dict[str, Any] = {"port": 0, "seed": 3, "control": True, "backfill_minutes": 5, "symbols": [*SIM_SYMBOLS]}
    runner = SimulatorThread(SimConfig(**(values | config)))
    settings.HYPERSENTRY_VENUE_URL = runner.start().base_url
    settings.EXECUTION_VENUE_TIMEOUT_SEC = 2.0
    meta.clear_meta_cache()
    yield runner
    runner.stop()
    meta.clear_meta_cache()


@pytest.fixture
def sim_thread(settings: Any) -> Iterator[SimulatorThread]:
    with venue_simulator(settings) as runner:
        settings.EXECUTION_CANCEL_RETRY_SEC = 8.0
        yield runner


@pytest.fixture
def hot(sim_thread: SimulatorThread, memory_hot_state: MemoryHotState) -> Callable[..., SymbolSnapshot]:
    """`hot(symbol)` puts a fresh snapshot (book from the simulator's l2Book) into the process's hot state."""

    def feed(symbol: str = SYMBOL, *, age_ms: int = 0) -> SymbolSnapshot:
        book = vc.info({"type": "l2Book", "coin": symbol}, priority="cancel")  # test plumbing: never budgeted
        bids = [[lv["px"], lv["sz"]] for lv in book["levels"][0]]
        asks = [[lv["px"], lv["sz"]] for lv in book["levels"][1]]
        snap = book_snapshot(symbol, bids=bids, asks=asks, age_ms=age_ms)
        async_to_sync(memory_hot_state.put)(snap)
        return snap

    for s in SIM_SYMBOLS:
        feed(s)
    return feed


@pytest.fixture
def trader(sim_thread: SimulatorThread, hot: Any, transactional_db: None) -> User:
    return approved_trader()


@pytest.fixture
def fresh_books(hot: Callable[..., SymbolSnapshot]) -> Iterator[None]:
    """Keep the hot-state books fresh (what the ingest does in a deployment) for long tests."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(1.0):
            for s in SIM_SYMBOLS:
                with contextlib.suppress(Exception):
                    hot(s)

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    yield
    stop.set()
    t.join(timeout=5)
