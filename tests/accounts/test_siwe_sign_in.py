from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from eth_account import Account

from accounts.models import SiweNonce, User, UserSession
from tests.accounts.siwe import crafted_message, get_nonce, post_verify, sign_in, sign_text

pytestmark = pytest.mark.django_db


def test_siwe_imports_with_pinned_abnf() -> None:
    import siwe

    assert siwe.SiweMessage


def test_it_signs_in_and_shows_the_address(csrf_client: Client, wallet) -> None:
    challenge = get_nonce(csrf_client, wallet.address)
    assert "csrftoken" in csrf_client.cookies
    assert challenge["domain"] == "127.0.0.1:8000" or challenge["domain"] in challenge["message"]
    assert challenge["message"].startswith(f"http://{challenge['domain']} wants you to sign in")
    assert f"Nonce: {challenge['nonce']}" in challenge["message"]
    anon_key = csrf_client.session.session_key

    response = post_verify(
        csrf_client, {"message": challenge["message"], "signature": sign_text(wallet, challenge["message"])}
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["address"] == wallet.address
    assert body["capabilities"] == {"session_authenticated": True, "execution_agent_ready": False}
    assert csrf_client.session.session_key != anon_key  # login cycled the key

    state = csrf_client.get("/auth/session").json()
    assert state["authenticated"] is True and state["address"] == wallet.address and state["role"] == "trader"
    assert state["session"]["expires_at_ms"] > time.time() * 1000 + 3600_000
    assert User.objects.filter(address=wallet.address).count() == 1
    assert UserSession.objects.filter(user__address=wallet.address, revoked_at__isnull=True).count() == 1


def test_it_creates_the_user_once(client: Client, wallet) -> None:
    sign_in(client, wallet)
    client.post("/auth/logout")
    sign_in(client, wallet)
    assert User.objects.filter(address=wallet.address).count() == 1


def _reject(client: Client, message: str, signature: str, code: str, status: int = 401) -> None:
    response = post_verify(client, {"message": message, "signature": signature})
    assert response.status_code == status, (response.status_code, response.content)
    body = response.json()
    assert body["type"] == "error" and body["code"] == code, body


def test_it_rejects_a_replayed_nonce(client: Client, wallet) -> None:
    challenge = get_nonce(client, wallet.address)
    sig = sign_text(wallet, challenge["message"])
    assert post_verify(client, {"message": challenge["message"], "signature": sig}).status_code == 200
    client.post("/auth/logout")
    _reject(client, challenge["message"], sig, "nonce_used")


def test_it_rejects_another_sessions_nonce(wallet) -> None:
    owner, attacker = Client(), Client()
    challenge = get_nonce(owner, wallet.address)
    get_nonce(attacker, wallet.address)  # the attacker has a session of its own
    _reject(attacker, challenge["message"], sign_text(wallet, challenge["message"]), "nonce_wrong_session")
    assert SiweNonce.objects.get(value=challenge["nonce"]).used_at is None  # not burnt


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"domain": "evil.example"}, "wrong_domain"),
        ({"uri": "https://evil.example"}, "wrong_uri"),
        ({"scheme": "https"}, "wrong_scheme"),
    ],
)
def test_it_rejects_messages_for_another_site(client: Client, wallet, overrides, code) -> None:
    nonce = get_nonce(client, wallet.address)["nonce"]
    message = crafted_message(nonce=nonce, address=wallet.address, **overrides)
    _reject(client, message, sign_text(wallet, message), code)


def test_it_rejects_a_wrong_chain_id(client: Client, wallet) -> None:
    nonce = get_nonce(client, wallet.address)["nonce"]
    message = crafted_message(nonce=nonce, address=wallet.address, chain_id=56)
    _reject(client, message, sign_text(wallet, message), "wrong_chain_id")


def test_it_refuses_a_nonce_for_an_unlisted_chain(client: Client, wallet) -> None:
    response = client.get("/auth/nonce", {"address": wallet.address, "chain_id": "56"})
    assert response.status_code == 400 and response.json()["code"] == "unsupported_chain_id"


@pytest.mark.parametrize(
    ("delta", "code"), [(timedelta(minutes=-30), "message_too_old"), (timedelta(minutes=10), "issued_in_future")]
)
def test_it_rejects_issued_at_outside_the_window(client: Client, wallet, delta, code) -> None:
    nonce = get_nonce(client, wallet.address)["nonce"]
    message = crafted_message(nonce=nonce, address=wallet.address, issued_at=timezone.now() + delta, ttl_sec=7200)
    _reject(client, message, sign_text(wallet, message), code)


def test_it_rejects_an_expired_message(client: Client, wallet) -> None:
    nonce = get_nonce(client, wallet.address)["nonce"]
    message = crafted_message(
        nonce=nonce, address=wallet.address, issued_at=timezone.now() - timedelta(seconds=120), ttl_sec=60
    )
    _reject(client, message, sign_text(wallet, message), "message_expired")


def test_it_rejects_a_not_before_in_the_future(client: Client, wallet) -> None:
    nonce = get_nonce(client, wallet.address)["nonce"]
    future = (timezone.now() + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    message = crafted_message(nonce=nonce, address=wallet.address) + f"\nNot Before: {future}"
    _reject(client, message, sign_text(wallet, message), "message_not_yet_valid")


def test_it_rejects_a_signature_by_another_key(client: Client, wallet) -> None:
    challenge = get_nonce(client, wallet.address)
    _reject(client, challenge["message"], sign_text(Account.create(), challenge["message"]), "signature_mismatch")
    assert SiweNonce.objects.get(value=challenge["nonce"]).used_at is None


@pytest.mark.parametrize(
    ("signature", "code", "status"),
    [
        ("0x1234", "malformed_signature", 400),
        ("nothex" * 22, "malformed_signature", 400),
        ("0x" + "00" * 65, "invalid_signature", 401),
        ("0x" + "ab" * 1500, "malformed_signature", 400),
    ],
)
def test_it_rejects_bad_signatures(client: Client, wallet, signature, code, status) -> None:
    challenge = get_nonce(client, wallet.address)
    _reject(client, challenge["message"], signature, code, status)


def test_it_refuses_a_lowercase_address(client: Client, wallet) -> None:
    response = client.get("/auth/nonce", {"address": wallet.address.lower()})
    assert response.status_code == 400 and response.json()["code"] == "address_not_checksummed"


def test_it_rejects_a_lowercase_address_in_the_message(client: Client, wallet) -> None:
    challenge = get_nonce(client, wallet.address)
    message = challenge["message"].replace(wallet.address, wallet.address.lower())
    _reject(client, message, sign_text(wallet, message), "malformed_message", 400)


def test_it_rejects_a_100kb_message_fast(client: Client, wallet) -> None:
    get_nonce(client, wallet.address)
    message = "x" * 100_000
    started = time.perf_counter()
    response = post_verify(client, {"message": message, "signature": "0x" + "11" * 65})
    elapsed = time.perf_counter() - started
    assert response.status_code == 400 and response.json()["code"] == "message_too_large"
    assert elapsed < 0.05, elapsed


def test_it_rejects_a_garbage_3kb_message_without_parsing(client: Client, wallet) -> None:
    get_nonce(client, wallet.address)
    started = time.perf_counter()
    response = post_verify(client, {"message": "a" * 3000, "signature": "0x" + "11" * 65})
    assert response.json()["code"] == "message_too_large"
    assert time.perf_counter() - started < 0.05


def test_it_rejects_garbage_that_is_not_eip4361(client: Client, wallet) -> None:
    get_nonce(client, wallet.address)
    _reject(client, "hello\nworld", "0x" + "11" * 65, "malformed_message", 400)


def test_it_rejects_a_missing_csrf_token(csrf_client: Client, wallet) -> None:
    challenge = get_nonce(csrf_client, wallet.address)
    response = csrf_client.post(
        "/auth/verify",
        data={"message": challenge["message"], "signature": sign_text(wallet, challenge["message"])},
        content_type="application/json",
    )
    assert response.status_code == 403
    assert response.json()["code"] == "csrf_failed"
    assert not UserSession.objects.exists()


def test_failures_are_counted_in_metrics(client: Client, wallet, settings) -> None:
    settings.METRICS_BEARER_TOKEN = "scraper-token"
    challenge = get_nonce(client, wallet.address)
    post_verify(client, {"message": challenge["message"], "signature": "0x" + "00" * 65})
    metrics = client.get("/metrics", headers={"Authorization": "Bearer scraper-token"}).content.decode()
    assert 'hs_auth_failures_total{code="invalid_signature"}' in metrics


def test_demo_wallet_is_refused_against_a_real_venue(client: Client, wallet, settings) -> None:
    settings.VENUE_IS_SIMULATOR = False
    response = client.get("/auth/nonce", {"address": wallet.address, "wallet": "demo"})
    assert response.status_code == 403 and response.json()["code"] == "demo_wallet_disabled"


def test_demo_wallet_signs_in_on_the_simulator(client: Client, wallet, settings) -> None:
    settings.VENUE_IS_SIMULATOR = True
    challenge = get_nonce(client, wallet.address, wallet="demo")
    response = post_verify(
        client, {"message": challenge["message"], "signature": sign_text(wallet, challenge["message"])}
    )
    assert response.status_code == 200 and response.json()["is_demo"] is True


def test_an_expired_nonce_is_rejected(client: Client, wallet) -> None:
    challenge = get_nonce(client, wallet.address)
    SiweNonce.objects.filter(value=challenge["nonce"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    _reject(client, challenge["message"], sign_text(wallet, challenge["message"]), "nonce_expired")
