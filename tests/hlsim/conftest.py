from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import eth_account
import pytest
import requests
from hyperliquid.exchange import Exchange
from hyperliquid.info import Info
from hyperliquid.utils.signing import get_timestamp_ms, sign_l1_action

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


def post_signed(base_url: str, wallet: Any, action: dict, nonce: int | None = None) -> requests.Response:
    """Sign and post a raw L1 action (bypasses the SDK's client-side float_to_wire rounding)."""
    nonce = nonce or get_timestamp_ms()
    signature = sign_l1_action(wallet, action, None, nonce, None, False)
    payload = {"action": action, "nonce": nonce, "signature": signature, "vaultAddress": None, "expiresAfter": None}
    return requests.post(base_url + "/exchange", json=payload, timeout=10)


def wait_for(predicate: Any, timeout: float = 10.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False
