"""The markets tests' fixtures: a REST client, a simulator on its own thread as the venue, an in-process simulator
for the ingest."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from rest_framework.test import APIClient

from hlsim import SimConfig, Simulator, SimulatorThread
from markets.hotstate import set_hot_state
from tests.markets.ingest import SYMBOLS


@pytest.fixture
def api() -> APIClient:
    set_hot_state(None)
    return APIClient()


@pytest.fixture
def sim_thread(settings: Any) -> Iterator[SimulatorThread]:
    """The venue for the REST tests (overrides tests/plugins/venue.py's: other seed and symbols, no execution)."""
    thread = SimulatorThread(SimConfig(port=0, seed=5, symbols=["BTC", "ETH", "kPEPE"], control=True))
    sim = thread.start()
    settings.HYPERSENTRY_VENUE_URL = sim.base_url
    try:
        yield thread
    finally:
        thread.stop()


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    simulator = Simulator(SimConfig(port=0, seed=3, symbols=SYMBOLS, control=True, backfill_minutes=30))
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.stop()
