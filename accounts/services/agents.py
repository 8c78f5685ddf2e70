"""Agent (API) wallets: delegated, short-lived keys that sign orders for a user; never withdraw or transfer.

Lifecycle: prepare (server makes a fresh key, seals it, returns the approveAgent typed data) -> the user's wallet
signs it -> approve (the server posts approveAgent to the venue) -> approved until `valid_until`, revoke or a
replacement. The key is decrypted only in `agent_signing_wallet`, where signing happens; it is never logged,
serialised or returned. When an agent leaves prepared/approved its ciphertext is destroyed.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import to_hex
from hyperliquid.utils.signing import recover_user_from_user_signed_action

from accounts.crypto import associated_data, keyring, open_sealed, seal
from accounts.metrics import AGENT_EVENTS
from accounts.models import AgentStatus, AgentWallet, User
from kernel import clock
from kernel.errors import ApplicationError, UpstreamUnavailable
from kernel.venue import client as vc

logger = logging.getLogger(__name__)

PRIMARY_TYPE = "HyperliquidTransaction:ApproveAgent"
APPROVE_AGENT_TYPES = [
    {"name": "hyperliquidChain", "type": "string"},
    {"name": "agentAddress", "type": "address"},
    {"name": "agentName", "type": "string"},
    {"name": "nonce", "type": "uint64"},
]
EIP712_DOMAIN_TYPES = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]
PREPARED_TTL = timedelta(minutes=10)
_LIVE = (AgentStatus.PREPARED, AgentStatus.APPROVED)


class AgentNotReady(ApplicationError):
    code = "agent_not_ready"
    status = 409


@dataclass(frozen=True, slots=True)
class VenueChain:
    is_mainnet: bool

    @property
    def hyperliquid_chain(self) -> str:
        return "Mainnet" if self.is_mainnet else "Testnet"

    @property
    def signature_chain_id(self) -> str:
        # The SDK signs with 0x66eee (Arbitrum Sepolia) for every non-mainnet venue; mainnet wallets sit on 0xa4b1.
        return "0xa4b1" if self.is_mainnet else "0x66eee"


def venue_chain() -> VenueChain:
    return VenueChain(is_mainnet=settings.HYPERSENTRY_VENUE == "mainnet")


def _aad(row: AgentWallet, user: User) -> bytes:
    return associated_data(user_id=user.pk, user_address=user.address, agent_address=row.agent_address)


def _destroy(row: AgentWallet, status: str) -> None:
    row.status = status
    row.ciphertext = None
    row.key_id = ""
    row.ended_at = timezone.now()


def approve_action(row: AgentWallet) -> dict[str, Any]:
    """The action exactly as the SDK posts a named approveAgent (key order kept)."""
    return {
        "type": "approveAgent",
        "agentAddress": row.agent_address,
        "agentName": row.agent_name,
        "nonce": row.approval_nonce,
        "signatureChainId": row.signature_chain_id,
        "hyperliquidChain": row.hyperliquid_chain,
    }


def typed_data_for(row: AgentWallet) -> dict[str, Any]:
    """EIP-712 payload for eth_signTypedData_v4 (same as hyperliquid.utils.signing.user_signed_payload)."""
    return {
        "domain": {
            "name": "HyperliquidSignTransaction",
            "version": "1",
            "chainId": int(row.signature_chain_id, 16),
            "verifyingContract": "0x0000000000000000000000000000000000000000",
        },
        "types": {"EIP712Domain": EIP712_DOMAIN_TYPES, PRIMARY_TYPE: APPROVE_AGENT_TYPES},
        "primaryType": PRIMARY_TYPE,
        "message": {
            "hyperliquidChain": row.hyperliquid_chain,
            "agentAddress": row.agent_address,
            "agentName": row.agent_name,
            "nonce": row.approval_nonce,
        },
    }


def agent_prepare(*, user: User) -> AgentWallet:
    """Generate a fresh agent key for the user, sealed at rest; earlier unsigned preparations are discarded."""
    chain = venue_chain()
    now = timezone.now()
    valid_until = now + timedelta(days=settings.AGENT_VALIDITY_DAYS)
    valid_ms = int(valid_until.timestamp() * 1000)
    account = Account.create()
    with transaction.atomic():
        for old in AgentWallet.objects.select_for_update().filter(user=user, status=AgentStatus.PREPARED):
            _destroy(old, AgentStatus.DISCARDED)
            old.save()
        row = AgentWallet(
            user=user,
            agent_address=account.address,
            agent_name=f"hypersentry valid_until {valid_ms}",
            approval_nonce=clock.now_ms(),
            hyperliquid_chain=chain.hyperliquid_chain,
            signature_chain_id=chain.signature_chain_id,
            valid_until=valid_until,
            created_at=now,
        )
        row.key_id, row.ciphertext = seal(plaintext=bytes(account.key), aad=_aad(row, user))
        row.save()
    AGENT_EVENTS.labels(event="prepared").inc()
    return row


def split_signature(signature: str) -> dict[str, Any]:
    if not isinstance(signature, str) or len(signature) != 132 or not signature.startswith("0x"):
        raise ApplicationError("signature must be 65 bytes of 0x-hex", code="malformed_signature", status=400)
    try:
        raw = bytes.fromhex(signature[2:])
    except ValueError as exc:
        raise ApplicationError("signature must be hex", code="malformed_signature", status=400) from exc
    v = raw[64] + 27 if raw[64] < 27 else raw[64]
    return {"r": to_hex(int.from_bytes(raw[:32], "big")), "s": to_hex(int.from_bytes(raw[32:64], "big")), "v": v}


def _recover_signer(action: dict[str, Any], sig: dict[str, Any], is_mainnet: bool) -> str:
    try:
        return str(
            recover_user_from_user_signed_action(
                copy.deepcopy(action), sig, APPROVE_AGENT_TYPES, PRIMARY_TYPE, is_mainnet
            )
        )
    except Exception as exc:
        raise ApplicationError("signature is invalid", code="invalid_signature", status=400) from exc


def _post_exchange(payload: dict[str, Any]) -> Any:
    """approveAgent through the one venue client (shared IP budget, backoff after 429s)."""
    try:
        return vc.get_client().exchange(payload, priority=vc.ORDER, timeout=settings.AGENT_VENUE_TIMEOUT_SEC)
    except vc.VenueTimeout as exc:
        raise UpstreamUnavailable(
            "the venue did not answer the approval; check your agent status before approving again",
            code="venue_unreachable",
        ) from exc
    except vc.VenueError as exc:
        if exc.rate_limited:
            raise UpstreamUnavailable(
                "the venue is rate limiting this deployment; try again shortly",
                code="venue_rate_limited",
                extra={"retry_after_s": round(max(1.0, exc.retry_after), 1)},
            ) from exc
        if exc.kind == "client":
            return {"status": "err", "response": str(exc)}
        raise UpstreamUnavailable("the venue could not be reached", code="venue_unreachable") from exc


def agent_approve(*, user: User, signature: str) -> AgentWallet:
    """Submit the user's approveAgent signature to the venue; on success the agent is the user's current one."""
    sig = split_signature(signature)
    chain = venue_chain()
    with transaction.atomic():
        row = (
            AgentWallet.objects.select_for_update()
            .filter(user=user, status=AgentStatus.PREPARED)
            .order_by("-created_at")
            .first()
        )
        if row is None:
            raise AgentNotReady("prepare an agent first", code="no_prepared_agent")
        if timezone.now() - row.created_at > PREPARED_TTL:
            _destroy(row, AgentStatus.DISCARDED)
            row.save()
            raise AgentNotReady("the prepared agent expired; prepare a new one", code="agent_prepare_expired")
        action = approve_action(row)
        if _recover_signer(action, sig, chain.is_mainnet) != user.address:
            raise ApplicationError("the approval was not signed by your wallet", code="signature_mismatch", status=400)
        reply = _post_exchange(
            {
                "action": action,
                "nonce": row.approval_nonce,
                "signature": sig,
                "vaultAddress": None,
                "expiresAfter": None,
            }
        )
        if not (isinstance(reply, dict) and reply.get("status") == "ok"):
            text = str(reply.get("response") if isinstance(reply, dict) else reply)[:500]
            _destroy(row, AgentStatus.FAILED)
            row.venue_response = text
            row.save()
            AGENT_EVENTS.labels(event="venue_rejected").inc()
            raise ApplicationError(f"the venue refused the agent: {text}", code="venue_rejected", status=502)
        for old in AgentWallet.objects.select_for_update().filter(user=user, status=AgentStatus.APPROVED):
            _destroy(old, AgentStatus.REPLACED)
            old.save()
        row.status = AgentStatus.APPROVED
        row.approved_at = timezone.now()
        row.venue_response = "ok"
        row.save()
    AGENT_EVENTS.labels(event="approved").inc()
    logger.info("agent approved", extra={"user_id": user.pk, "agent": row.agent_address})
    return row


def agent_revoke(*, user: User) -> int:
    """Revoke the user's live agents: the key is destroyed, so nothing can sign with it any more."""
    with transaction.atomic():
        rows = list(AgentWallet.objects.select_for_update().filter(user=user, status__in=_LIVE))
        for row in rows:
            _destroy(row, AgentStatus.REVOKED)
            row.save()
    if rows:
        AGENT_EVENTS.labels(event="revoked").inc(len(rows))
    return len(rows)


def agents_expire(*, now: datetime | None = None) -> int:
    """Periodic: destroy keys of agents past valid_until (the venue prunes them too)."""
    now = now or timezone.now()
    with transaction.atomic():
        rows = list(AgentWallet.objects.select_for_update().filter(status=AgentStatus.APPROVED, valid_until__lte=now))
        for row in rows:
            _destroy(row, AgentStatus.EXPIRED)
            row.save()
    return len(rows)


def agent_signing_wallet(*, user: User) -> LocalAccount:
    """The user's approved, unexpired agent as an eth_account signer; for the execution relay only."""
    row = (
        AgentWallet.objects.filter(user=user, status=AgentStatus.APPROVED, valid_until__gt=timezone.now())
        .order_by("-approved_at")
        .first()
    )
    if row is None or row.ciphertext is None:
        raise AgentNotReady("no approved trading agent; enable trading first")
    key = open_sealed(key_id=row.key_id, blob=bytes(row.ciphertext or b""), aad=_aad(row, user))
    return Account.from_key(key)


def agent_keys_rotate() -> int:
    """Re-seal every stored agent key with the newest AGENT_WALLET_ENCRYPTION_KEY; returns rows re-sealed."""
    ring = keyring()
    count = 0
    with transaction.atomic():
        rows = AgentWallet.objects.select_for_update().select_related("user").filter(ciphertext__isnull=False)
        for row in rows:
            plain = open_sealed(
                key_id=row.key_id, blob=bytes(row.ciphertext or b""), aad=_aad(row, row.user), ring=ring
            )
            row.key_id, row.ciphertext = seal(plaintext=plain, aad=_aad(row, row.user), ring=ring)
            row.save(update_fields=["key_id", "ciphertext"])
            count += 1
    return count
