"""The venue's signed /exchange side: L1 action signing with the agent wallet, per-signer nonces, signed posts.

* Signatures come from the SDK's `sign_l1_action` (the agent signs for its master: no vaultAddress), posted as the
  SDK would (`{action, nonce, signature, vaultAddress, expiresAfter}`) through the one client (kernel.venue.client).
* Nonces are strictly increasing per signer across processes (shared cache), so the venue never sees a duplicate.
"""

from __future__ import annotations

import threading
from typing import Any

from django.core.cache import cache
from hyperliquid.utils.constants import MAINNET_API_URL
from hyperliquid.utils.signing import sign_l1_action

from kernel import clock
from kernel.cache_safe import cache_call
from kernel.venue import client as vc


def is_mainnet() -> bool:
    return vc.base_url().rstrip("/") == MAINNET_API_URL


def sign_action(wallet: Any, action: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """Sign an L1 action with the agent `wallet` (SDK `sign_l1_action`) under a fresh per-signer nonce."""
    nonce = next_nonce(wallet.address)
    sig = sign_l1_action(wallet, action, None, nonce, None, is_mainnet())
    return sig, nonce


def post_signed(
    action: dict[str, Any],
    signature: dict[str, Any],
    nonce: int,
    *,
    priority: str = vc.ORDER,
    timeout: float | None = None,
) -> Any:
    """Post an already-signed action (the agent signs for its master: no vaultAddress)."""
    payload = {"action": action, "nonce": nonce, "signature": signature, "vaultAddress": None, "expiresAfter": None}
    return vc.get_client().exchange(payload, priority=priority, timeout=timeout)


_local_nonces: dict[str, int] = {}
_nonce_lock = threading.Lock()


def next_nonce(agent_address: str) -> int:
    """Strictly increasing ms nonces per signer across processes (the venue rejects duplicates). Without the shared
    cache, strictly increasing within this process: a clash with another process is refused by the venue as a
    duplicate nonce (nothing executes), never accepted twice."""
    key = f"exec:nonce:{agent_address.lower()}"
    now = clock.now_ms()

    def shared() -> int:
        cache.add(key, now, timeout=None)
        n = int(cache.incr(key))
        if n < now:
            n = int(cache.incr(key, now - n))
        return n

    n = cache_call(shared, fallback=-1, what="nonce")
    with _nonce_lock:
        if n < 0:
            n = max(now, _local_nonces.get(key, 0) + 1)
        _local_nonces[key] = max(n, _local_nonces.get(key, 0))
    return n
