"""EIP-4361 rules, pure: build the message we ask a wallet to sign, and check a signed one (no DB, no I/O).

`siwe.SiweMessage.verify` never checks issued-at, chain id or URI and lets other exception types escape, so every
field is checked here against pinned values and every failure becomes a `SignInRejected` with a stable code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import is_checksum_address

from kernel.errors import ApplicationError

MAX_MESSAGE_CHARS = 2048
SIGNATURE_RE = re.compile(r"^0x[0-9a-fA-F]{130}$")
ADDRESS_RE = re.compile(r"^0x[0-9a-fA-F]{40}$")
STATEMENT = "Sign in to HyperSentry. This request will not trigger a blockchain transaction or cost any gas fees."


class SignInRejected(ApplicationError):
    code = "sign_in_rejected"
    status = 401


@dataclass(frozen=True, slots=True)
class SiwePolicy:
    domain: str  # host[:port] of the public origin
    uri: str
    scheme: str
    chain_ids: tuple[int, ...]
    max_age_sec: int
    skew_sec: int


@dataclass(frozen=True, slots=True)
class CheckedSignIn:
    address: str
    chain_id: int
    nonce: str
    issued_at: datetime


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def build_message(
    *, policy: SiwePolicy, address: str, chain_id: int, nonce: str, issued_at: datetime, ttl_sec: int
) -> str:
    from siwe import SiweMessage

    msg = SiweMessage(
        scheme=policy.scheme,
        domain=policy.domain,
        address=address,
        statement=STATEMENT,
        uri=policy.uri,
        version="1",
        chain_id=chain_id,
        nonce=nonce,
        issued_at=iso(issued_at),
        expiration_time=iso(issued_at + timedelta(seconds=ttl_sec)),
    )
    return str(msg.prepare_message())


def check_address(address: str) -> str:
    """EIP-55 only: a lowercase (or otherwise unchecksummed) address is refused, not silently fixed."""
    if not isinstance(address, str) or not ADDRESS_RE.match(address):
        raise SignInRejected("address must be a 0x-prefixed 40-hex-digit address", code="invalid_address", status=400)
    if not is_checksum_address(address):
        raise SignInRejected("address must be EIP-55 checksummed", code="address_not_checksummed", status=400)
    return address


def check_sizes(*, message: object, signature: object) -> tuple[str, str]:
    """Length caps run before any parsing: the ABNF parser is quadratic on garbage."""
    if not isinstance(message, str) or not message:
        raise SignInRejected("message is required", code="message_missing", status=400)
    if len(message) > MAX_MESSAGE_CHARS:
        raise SignInRejected(f"message exceeds {MAX_MESSAGE_CHARS} characters", code="message_too_large", status=400)
    if not isinstance(signature, str) or not SIGNATURE_RE.match(signature):
        raise SignInRejected("signature must be 65 bytes of 0x-hex", code="malformed_signature", status=400)
    return message, signature


def _parse_time(value: object, field: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError as exc:
        raise SignInRejected(f"{field} is not an ISO-8601 time", code="malformed_message", status=400) from exc
    if parsed.tzinfo is None:
        raise SignInRejected(f"{field} has no time zone", code="malformed_message", status=400)
    return parsed


def check_message(*, message: str, policy: SiwePolicy, now: datetime):  # type: ignore[no-untyped-def]
    """Parse and check every field except nonce state and signature; returns the parsed SiweMessage."""
    from siwe import SiweMessage

    try:
        parsed = SiweMessage.from_message(message)
    except Exception as exc:
        raise SignInRejected("message is not a valid EIP-4361 message", code="malformed_message", status=400) from exc
    if parsed.domain != policy.domain:
        raise SignInRejected("message was issued for another domain", code="wrong_domain")
    if parsed.scheme is not None and parsed.scheme != policy.scheme:
        raise SignInRejected("message was issued for another scheme", code="wrong_scheme")
    if str(parsed.uri) != policy.uri:
        raise SignInRejected("message was issued for another URI", code="wrong_uri")
    if int(parsed.chain_id) not in policy.chain_ids:
        raise SignInRejected("chain id is not accepted", code="wrong_chain_id")
    issued_at = _parse_time(parsed.issued_at, "issued-at")
    skew = timedelta(seconds=policy.skew_sec)
    if issued_at > now + skew:
        raise SignInRejected("issued-at is in the future", code="issued_in_future")
    if issued_at < now - timedelta(seconds=policy.max_age_sec):
        raise SignInRejected("message is too old; request a new one", code="message_too_old")
    if parsed.expiration_time is not None and _parse_time(parsed.expiration_time, "expiration") <= now - skew:
        raise SignInRejected("message has expired", code="message_expired")
    if parsed.not_before is not None and _parse_time(parsed.not_before, "not-before") > now + skew:
        raise SignInRejected("message is not valid yet", code="message_not_yet_valid")
    return parsed


def check_signature(*, message: str, signature: str, address: str) -> None:
    try:
        signer = Account.recover_message(encode_defunct(text=message), signature=signature)
    except Exception as exc:
        raise SignInRejected("signature is invalid", code="invalid_signature") from exc
    if signer != address:
        raise SignInRejected("signature was not made by the message's address", code="signature_mismatch")


def check_sign_in(*, message: object, signature: object, policy: SiwePolicy, now: datetime) -> CheckedSignIn:
    msg, sig = check_sizes(message=message, signature=signature)
    parsed = check_message(message=msg, policy=policy, now=now)
    check_signature(message=msg, signature=sig, address=str(parsed.address))
    return CheckedSignIn(
        address=str(parsed.address),
        chain_id=int(parsed.chain_id),
        nonce=str(parsed.nonce),
        issued_at=_parse_time(parsed.issued_at, "issued-at"),
    )
