"""Sign-In with Ethereum: issue a challenge bound to the session, verify a signed one, create the user."""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from eth_utils import is_checksum_address

from accounts.models import Role, SiweNonce, User
from accounts.siwe_rules import SignInRejected, SiwePolicy, build_message, check_address, check_sign_in
from kernel.errors import ApplicationError, PermissionDenied, ValidationFailed
from kernel.ratelimit import Limit, hit

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Challenge:
    message: str
    nonce: str
    address: str
    chain_id: int
    domain: str
    uri: str
    statement: str
    issued_at: datetime
    expires_at: datetime


def session_hash(session_key: str) -> str:
    return hashlib.sha256(session_key.encode()).hexdigest()


def siwe_policy() -> SiwePolicy:
    return SiwePolicy(
        domain=settings.SIWE_DOMAIN,
        uri=settings.SIWE_URI,
        scheme=settings.SIWE_SCHEME,
        chain_ids=tuple(settings.SIWE_CHAIN_IDS),
        max_age_sec=settings.SIWE_MAX_AGE_SEC,
        skew_sec=settings.SIWE_CLOCK_SKEW_SEC,
    )


def _demo_refused() -> ApplicationError:
    return PermissionDenied("The built-in demo wallet only works against the simulator.", code="demo_wallet_disabled")


def siwe_challenge_issue(*, session_key: str, address: str, chain_id: int | None, is_demo: bool) -> Challenge:
    """A fresh single-use nonce for this session and address, and the full message the wallet will sign."""
    from accounts.siwe_rules import STATEMENT

    check_address(address)
    if is_demo and not settings.VENUE_IS_SIMULATOR:
        raise _demo_refused()
    policy = siwe_policy()
    chain = policy.chain_ids[0] if chain_id is None else chain_id
    if chain not in policy.chain_ids:
        raise ApplicationError(f"chain id {chain} is not accepted", code="unsupported_chain_id", status=400)
    now = timezone.now()
    ttl = settings.SIWE_MAX_AGE_SEC
    nonce = secrets.token_hex(16)
    SiweNonce.objects.create(
        value=nonce,
        session_hash=session_hash(session_key),
        address=address,
        chain_id=chain,
        is_demo=is_demo,
        created_at=now,
        expires_at=now + timedelta(seconds=ttl),
    )
    message = build_message(policy=policy, address=address, chain_id=chain, nonce=nonce, issued_at=now, ttl_sec=ttl)
    return Challenge(
        message=message,
        nonce=nonce,
        address=address,
        chain_id=chain,
        domain=policy.domain,
        uri=policy.uri,
        statement=STATEMENT,
        issued_at=now,
        expires_at=now + timedelta(seconds=ttl),
    )


def _nonce_for(*, value: str, session_key: str, address: str, chain_id: int, now: datetime) -> SiweNonce:
    row = SiweNonce.objects.filter(value=value).first()
    if row is None:
        raise SignInRejected("unknown nonce; request a new one", code="unknown_nonce")
    if row.used_at is not None:
        raise SignInRejected("nonce was already used", code="nonce_used")
    if row.session_hash != session_hash(session_key):
        raise SignInRejected("nonce was issued to another session", code="nonce_wrong_session")
    if row.expires_at <= now:
        raise SignInRejected("nonce has expired; request a new one", code="nonce_expired")
    if row.address != address or row.chain_id != chain_id:
        raise SignInRejected("nonce was issued for another address or chain", code="nonce_mismatch")
    return row


ADDRESS_SCOPE = "auth.verify.address"


def address_limit() -> Limit:
    return Limit(count=settings.AUTH_RATE_LIMIT_PER_ADDRESS, per_sec=settings.AUTH_RATE_LIMIT_WINDOW_SEC)


def siwe_sign_in(*, session_key: str, message: object, signature: object) -> tuple[User, bool]:
    """Check the signed message, then consume its nonce atomically; returns (user, is_demo).

    Order matters: everything that can fail is checked (signature included) before the nonce is consumed, so
    nobody can burn other people's nonces; the consume is `UPDATE ... WHERE used_at IS NULL` so of many parallel
    verifies of one message exactly one wins. The caller then logs the user in (which cycles the session key).

    The per-address limit counts only attempts that prove the address's key: the signature recovered to it and
    the nonce is live and was issued to this very session. Counting by the address a message merely names (or
    by a valid signature alone) let anyone lock a wallet out of sign-in — with garbage naming it, or by
    replaying one of its signed messages. Past the limit the nonce stays unused.
    """
    now = timezone.now()
    checked = check_sign_in(message=message, signature=signature, policy=siwe_policy(), now=now)
    row = _nonce_for(
        value=checked.nonce, session_key=session_key, address=checked.address, chain_id=checked.chain_id, now=now
    )
    if row.is_demo and not settings.VENUE_IS_SIMULATOR:
        raise _demo_refused()
    hit(scope=ADDRESS_SCOPE, key=checked.address.lower(), limit=address_limit())
    with transaction.atomic():
        consumed = SiweNonce.objects.filter(pk=row.pk, used_at__isnull=True).update(used_at=now)
        if consumed != 1:
            raise SignInRejected("nonce was already used", code="nonce_used")
        user = user_for_address(address=checked.address)
    if not user.is_active:
        raise PermissionDenied("this account is disabled", code="account_disabled")
    return user, row.is_demo


def admin_addresses() -> set[str]:
    return {a for a in settings.ADMIN_ADDRESSES if is_checksum_address(a)}


def user_for_address(*, address: str) -> User:
    """The user keyed by this EIP-55 address, created on first sign-in; ADMIN_ADDRESSES become admins."""
    user = User.objects.filter(address=address).first()
    if user is None:
        user, _ = User.objects.get_or_create(
            address=address, defaults={"role": Role.TRADER, "password": "!unusable-wallet-login"}
        )
    if address in admin_addresses() and user.role != Role.ADMIN:
        user.role = Role.ADMIN
        user.save(update_fields=["role"])
        logger.info("role set from ADMIN_ADDRESSES", extra={"user_id": user.pk})
    return user


def role_grant(*, address: str, role: str) -> User:
    """Set a user's role (creating the user), for `manage.py grant_role`; it cannot be done over HTTP."""
    if not isinstance(address, str) or not is_checksum_address(address):
        raise ValidationFailed(
            f"{address!r} is not an EIP-55 checksummed address (mixed case, 0x + 40 hex digits)", code="invalid_address"
        )
    if role not in Role.values:
        raise ValidationFailed(f"unknown role {role!r}; choose one of {', '.join(Role.values)}", code="invalid_role")
    user, _ = User.objects.get_or_create(address=address, defaults={"password": "!unusable-wallet-login"})
    user.role = role
    user.save(update_fields=["role"])
    return user
