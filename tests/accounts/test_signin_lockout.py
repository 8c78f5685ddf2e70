"""Sign-in rate limits cannot be aimed at a victim: per client IP before any work, per address only for attempts
that prove the address's key (signature recovers to it, live nonce of this session)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client
from eth_account import Account
from eth_account.signers.local import LocalAccount

from accounts.models import SiweNonce, UserSession
from tests.accounts.siwe import crafted_message, get_nonce, post_verify, sign_text

pytestmark = pytest.mark.django_db

ATTACKER_IP = "203.0.113.66"
VICTIM_IP = "198.51.100.7"
PER_IP = 60
PER_ADDRESS = 5
WINDOW_SEC = 3600


@pytest.fixture(autouse=True)
def _limits(settings: Any) -> Iterator[None]:
    """Known limits in a long fixed window; start away from a window edge so no count resets mid-test."""
    settings.AUTH_RATE_LIMIT_PER_IP = PER_IP
    settings.AUTH_RATE_LIMIT_PER_ADDRESS = PER_ADDRESS
    settings.AUTH_RATE_LIMIT_WINDOW_SEC = WINDOW_SEC
    left = WINDOW_SEC - time.time() % WINDOW_SEC
    if left < 60:
        time.sleep(left + 0.1)
    yield


def _client(ip: str) -> Client:
    return Client(enforce_csrf_checks=True, REMOTE_ADDR=ip)


def _victim_signs_in(victim: LocalAccount, ip: str = VICTIM_IP) -> Any:
    client = _client(ip)
    challenge = get_nonce(client, victim.address)
    return post_verify(client, {"message": challenge["message"], "signature": sign_text(victim, challenge["message"])})


def _garbage_verifies(attacker: Client, victim: LocalAccount, count: int, nonce: str) -> list[tuple[int, str]]:
    """Verifies that name the victim (with a live nonce the attacker asked for it) but do not prove its key."""
    answers = []
    for i in range(count):
        message = crafted_message(nonce=nonce, address=victim.address)
        signature = [
            sign_text(Account.create(), message),  # another key: signature_mismatch
            "0x" + "00" * 65,  # unrecoverable: invalid_signature
            "0x" + "ab" * 65,  # random bytes
        ][i % 3]
        response = post_verify(attacker, {"message": message, "signature": signature})
        answers.append((response.status_code, response.json()["code"]))
    return answers


def test_an_attacker_naming_the_victim_cannot_lock_it_out(wallet: LocalAccount) -> None:
    attacker = _client(ATTACKER_IP)
    nonces = [get_nonce(attacker, wallet.address)["nonce"] for _ in range(50)]
    answers = _garbage_verifies(attacker, wallet, 50, nonces[-1])
    assert {code for _, code in answers} <= {"signature_mismatch", "invalid_signature"}, answers
    assert all(status == 401 for status, _ in answers)

    response = _victim_signs_in(wallet)
    assert response.status_code == 200, response.content
    assert response.json()["address"] == wallet.address
    assert UserSession.objects.filter(user__address=wallet.address).count() == 1


def test_replaying_the_victims_signed_message_does_not_count_against_it(wallet: LocalAccount) -> None:
    owner = _client(VICTIM_IP)
    challenge = get_nonce(owner, wallet.address)
    signed = {"message": challenge["message"], "signature": sign_text(wallet, challenge["message"])}
    assert post_verify(owner, signed).status_code == 200

    attacker = _client(ATTACKER_IP)
    get_nonce(attacker, Account.create().address)  # the attacker's own session and CSRF cookie
    for _ in range(PER_ADDRESS * 3):
        response = post_verify(attacker, signed)
        assert response.status_code == 401 and response.json()["code"] in {"nonce_used", "nonce_wrong_session"}

    assert _victim_signs_in(wallet).status_code == 200


def test_the_per_ip_limit_still_stops_the_attackers_ip(wallet: LocalAccount) -> None:
    attacker = _client(ATTACKER_IP)
    nonce = get_nonce(attacker, wallet.address)["nonce"]
    codes = [attacker.get("/auth/nonce", {"address": wallet.address}).status_code for _ in range(PER_IP + 4)]
    assert codes[: PER_IP - 1] == [200] * (PER_IP - 1) and set(codes[PER_IP - 1 :]) == {429}
    limited = attacker.get("/auth/nonce", {"address": Account.create().address})  # any address: it is the IP
    assert limited.status_code == 429 and limited.json()["code"] == "rate_limited" and int(limited["Retry-After"]) >= 1

    answers = _garbage_verifies(attacker, wallet, PER_IP, nonce)
    assert {status for status, _ in answers} == {401}  # verify has a budget of its own
    blocked = post_verify(attacker, {"message": "x", "signature": "0x"})
    assert blocked.status_code == 429 and blocked.json()["code"] == "rate_limited"

    # The victim, from its own IP, is untouched.
    assert _victim_signs_in(wallet).status_code == 200


def test_a_wallet_signing_many_valid_messages_hits_the_per_address_limit(wallet: LocalAccount) -> None:
    # A new IP per attempt: the limit that stops it is the address's, not the IP's.
    for i in range(PER_ADDRESS):
        assert _victim_signs_in(wallet, ip=f"192.0.2.{i + 1}").status_code == 200

    client = _client("192.0.2.200")
    challenge = get_nonce(client, wallet.address)
    response = post_verify(
        client, {"message": challenge["message"], "signature": sign_text(wallet, challenge["message"])}
    )
    assert response.status_code == 429 and response.json()["code"] == "rate_limited"
    assert SiweNonce.objects.get(value=challenge["nonce"]).used_at is None  # refused before the nonce is consumed
    assert UserSession.objects.filter(user__address=wallet.address).count() == PER_ADDRESS

    # Another wallet is not affected by this one's budget.
    assert _victim_signs_in(Account.create(), ip="192.0.2.201").status_code == 200
