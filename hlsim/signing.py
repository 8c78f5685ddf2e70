"""Signature recovery (the SDK's own recover functions, as the venue does) and per-signer nonce rules."""

from __future__ import annotations

import bisect
import copy
from typing import Any

from hyperliquid.utils.signing import (
    recover_agent_or_user_from_l1_action,
    recover_user_from_user_signed_action,
)

# The SDK signs as testnet for every URL except mainnet's, so the simulator verifies as testnet.
IS_MAINNET = False
NONCES_KEPT = 100
NONCE_PAST_MS = 2 * 86_400_000
NONCE_FUTURE_MS = 86_400_000

APPROVE_AGENT_TYPES = [
    {"name": "hyperliquidChain", "type": "string"},
    {"name": "agentAddress", "type": "address"},
    {"name": "agentName", "type": "string"},
    {"name": "nonce", "type": "uint64"},
]
USER_SIGNED_TYPES: dict[str, tuple[list[dict[str, str]], str]] = {
    "approveAgent": (APPROVE_AGENT_TYPES, "HyperliquidTransaction:ApproveAgent"),
}


class SignatureError(Exception):
    pass


def _valid_signature(signature: Any) -> bool:
    return (
        isinstance(signature, dict)
        and isinstance(signature.get("r"), str)
        and isinstance(signature.get("s"), str)
        and isinstance(signature.get("v"), int)
    )


def recover_signer(
    *, action: dict, signature: Any, nonce: int, vault_address: str | None, expires_after: int | None
) -> str:
    """Lower-case address that signed the envelope. A wrong payload recovers a *different* address, no error."""
    if not _valid_signature(signature):
        raise SignatureError("invalid signature")
    try:
        if action.get("type") in USER_SIGNED_TYPES:
            types, primary = USER_SIGNED_TYPES[action["type"]]
            act = copy.deepcopy(action)  # the SDK's recover mutates hyperliquidChain
            if act["type"] == "approveAgent":
                # Venue quirk: unnamed agents are signed with agentName "" and the key is then dropped.
                act.setdefault("agentName", "")
            address = recover_user_from_user_signed_action(act, signature, types, primary, IS_MAINNET)
        else:
            address = recover_agent_or_user_from_l1_action(
                action, signature, vault_address, nonce, expires_after, IS_MAINNET
            )
    except Exception as exc:  # malformed r/s/v or un-encodable payload: the venue rejects, we do the same
        raise SignatureError(str(exc)) from exc
    return address.lower()


class NonceTracker:
    """Per-signer nonce set: the 100 highest are kept; a new one must be unused, above the smallest kept one
    once 100 are stored, and inside (T - 2 days, T + 1 day)."""

    def __init__(self) -> None:
        self._by_signer: dict[str, list[int]] = {}

    def check(self, *, signer: str, nonce: int, now_ms: int) -> str | None:
        kept = self._by_signer.get(signer, [])
        if not now_ms - NONCE_PAST_MS < nonce < now_ms + NONCE_FUTURE_MS:
            return f"Invalid nonce: nonce {nonce} is outside the allowed time window"
        i = bisect.bisect_left(kept, nonce)
        if i < len(kept) and kept[i] == nonce:
            return f"Invalid nonce: duplicate nonce {nonce}"
        if len(kept) >= NONCES_KEPT and nonce <= kept[0]:
            return f"Invalid nonce: nonce too low {nonce} < {kept[0]}"
        return None

    def use(self, *, signer: str, nonce: int) -> None:
        kept = self._by_signer.setdefault(signer, [])
        bisect.insort(kept, nonce)
        if len(kept) > NONCES_KEPT:
            del kept[0]
