"""The simulator tests' fixtures: one simulator per module (and a fresh one per test where asked), a paper trader
with an approved agent."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import eth_account
import pytest
from hyperliquid.exchange import Exchange
from hyperliquid.info import Info

from hlsim.server import SimConfig, Simulator, SimulatorThread


def _config(**overrides: Any) -> SimConfig:
    base: dict[str, Any] = {
        "port": 0,
        "seed": 1,
        "speed": 5.0,
        "control": True,
        "backfill_minutes": 120,
        "rate_limits": False,
    }
    base.update(overrides)
    return SimConfig(**base)


@pytest.fixture(scope="module")
def sim_thread() -> Iterator[SimulatorThread]:
    runner = SimulatorThread(_config())
    runner.start()
    yield runner
    runner.stop()


@pytest.fixture(scope="module")
def sim(sim_thread: SimulatorThread) -> Simulator:
    return sim_thread.sim


@pytest.fixture
def fresh_sim() -> Iterator[SimulatorThread]:
    runner = SimulatorThread(_config(ws_idle_timeout=1.5))
    runner.start()
    yield runner
    runner.stop()


@pytest.fixture
def trader(sim: Simulator) -> dict[str, Any]:
    """A paper user with an approved agent: {'user', 'agent', 'exchange' (agent-signed), 'info'}."""
    user = eth_account.Account.create()
    owner = Exchange(user, sim.base_url)
    result, agent_key = owner.approve_agent()
    assert result == {"status": "ok", "response": {"type": "default"}}
    agent = eth_account.Account.from_key(agent_key)
    info = Info(sim.base_url, skip_ws=True)
    exchange = Exchange(agent, sim.base_url, account_address=user.address, meta=info.meta(), spot_meta=info.spot_meta())
    return {"user": user, "agent": agent, "exchange": exchange, "info": info, "owner": owner}
