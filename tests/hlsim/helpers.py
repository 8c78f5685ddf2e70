"""Raw signed posts to the simulator and polling, for the simulator tests."""

from __future__ import annotations

import time
from typing import Any

import requests
from hyperliquid.utils.signing import get_timestamp_ms, sign_l1_action


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
