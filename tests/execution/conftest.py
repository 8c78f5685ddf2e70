"""Shared fixtures: a real venue simulator per test, hot state fed from it, signed-in traders with approved agents."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data

from hlsim.server import SimConfig, SimulatorThread

SYMBOL = "BTC"


@pytest.fixture
def sim_thread(settings: Any) -> Iterator[SimulatorThread]:
    runner = SimulatorThread(
        SimConfig(port=0, seed=3, speed=1.0, control=True, backfill_minutes=5, symbols=["BTC", "ETH", "SOL"])
    )
    sim = runner.start()
    settings.HYPERSENTRY_VENUE_URL = sim.base_url
    settings.EXECUTION_VENUE_TIMEOUT_SEC = 2.0
    settings.EXECUTION_CANCEL_RETRY_SEC = 8.0
    from execution import venue

    venue.clear_meta_cache()
    yield runner
    runner.stop()
    venue.clear_meta_cache()


@pytest.fixture
def hot(sim_thread: SimulatorThread) -> Iterator[Callable[..., Any]]:
    """`hot(symbol)` puts a fresh snapshot (book from the simulator's l2Book) into the process's hot state."""
    from asgiref.sync import async_to_sync

    from execution import venue
    from kernel.contracts.snapshot import SymbolSnapshot
    from markets.hotstate import MemoryHotState, set_hot_state

    state = MemoryHotState()
    set_hot_state(state)

    def feed(symbol: str = SYMBOL, *, age_ms: int = 0) -> SymbolSnapshot:
        book = venue.info({"type": "l2Book", "coin": symbol}, priority="cancel")  # test plumbing: never budgeted
        bids = [[lv["px"], lv["sz"]] for lv in book["levels"][0]]
        asks = [[lv["px"], lv["sz"]] for lv in book["levels"][1]]
        now = int(time.time() * 1000) - age_ms
        mid = (Decimal(bids[0][0]) + Decimal(asks[0][0])) / 2
        snap = SymbolSnapshot(
            symbol=symbol, price=str(mid), price_ts=now, book={"bids": bids, "asks": asks}, book_ts=now, updated_at=now
        )
        async_to_sync(state.put)(snap)
        return snap

    for s in ("BTC", "ETH", "SOL"):
        feed(s)
    yield feed
    set_hot_state(None)


def make_trader(*, role: str = "trader") -> tuple[Any, Any]:
    """A user with a wallet we hold the key of (so the test can sign approveAgent like a browser wallet)."""
    from accounts.models import User

    wallet = Account.create()
    user = User.objects.create_user(wallet.address, role=role)
    return user, wallet


def approve_agent(user: Any, wallet: Any) -> None:
    """The accounts flow: prepare an agent, sign approveAgent with the user's wallet, post it to the venue."""
    from accounts.services import agent_approve, agent_prepare
    from accounts.services.agents import typed_data_for

    row = agent_prepare(user=user)
    signed = wallet.sign_message(encode_typed_data(full_message=typed_data_for(row)))
    agent_approve(user=user, signature="0x" + signed.signature.hex().removeprefix("0x"))


@pytest.fixture
def trader(sim_thread: SimulatorThread, hot: Any, transactional_db: None) -> Any:
    user, wallet = make_trader()
    approve_agent(user, wallet)
    return user


@pytest.fixture
def fresh_books(hot: Any) -> Iterator[None]:
    """Keep the hot-state books fresh (what the ingest does in a deployment) for long tests."""
    import threading

    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(1.0):
            for s in ("BTC", "ETH", "SOL"):
                with contextlib.suppress(Exception):
                    hot(s)

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    yield
    stop.set()
    t.join(timeout=5)
