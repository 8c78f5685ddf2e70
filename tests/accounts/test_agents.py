from __future__ import annotations

import base64
import os
import subprocess
from collections.abc import Iterator
from datetime import timedelta

import pytest
import requests
from django.db import connection
from django.test import Client
from django.utils import timezone
from eth_account import Account
from eth_account.messages import encode_typed_data

from accounts import crypto, services
from accounts.models import AgentStatus, AgentWallet
from hlsim.server import SimConfig, SimulatorThread
from tests.accounts.siwe import post_json, sign_in
from tests.factories import make_user

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def simulator() -> Iterator[str]:
    thread = SimulatorThread(SimConfig(port=0, n_symbols=2, backfill_minutes=5, seed=3))
    sim = thread.start()
    try:
        yield sim.base_url.rstrip("/")
    finally:
        thread.stop()


@pytest.fixture
def venue(settings, simulator: str) -> str:
    settings.HYPERSENTRY_VENUE = "sim"
    settings.VENUE_IS_SIMULATOR = True
    settings.HYPERSENTRY_VENUE_URL = simulator
    return simulator


def sign_typed(account, typed: dict) -> str:
    signed = account.sign_message(encode_typed_data(full_message=typed))
    return "0x" + signed.signature.hex().removeprefix("0x")


def enable_trading(client: Client, wallet) -> dict:
    prepared = post_json(client, "/auth/agent/prepare")
    assert prepared.status_code == 200, prepared.content
    body = prepared.json()
    response = post_json(client, "/auth/agent/approve", {"signature": sign_typed(wallet, body["typed_data"])})
    assert response.status_code == 200, response.content
    return {**body, "state": response.json()}


def info(url: str, body: dict) -> object:
    return requests.post(f"{url}/info", json=body, timeout=5).json()


def test_agent_approval_against_the_simulator(client: Client, wallet, venue: str) -> None:
    sign_in(client, wallet)
    result = enable_trading(client, wallet)
    typed = result["typed_data"]
    assert typed["domain"]["name"] == "HyperliquidSignTransaction" and typed["domain"]["chainId"] == 0x66EEE
    assert typed["primaryType"] == "HyperliquidTransaction:ApproveAgent"
    assert typed["message"]["agentName"] == f"hypersentry valid_until {result['valid_until_ms']}"
    assert typed["message"]["hyperliquidChain"] == "Testnet"
    state = result["state"]
    assert state["capabilities"] == {"session_authenticated": True, "execution_agent_ready": True}
    assert state["agent"]["address"] == result["agent_address"]
    assert client.get("/auth/session").json()["capabilities"]["execution_agent_ready"] is True

    agent = result["agent_address"]
    assert info(venue, {"type": "userRole", "user": agent}) == {
        "role": "agent",
        "data": {"user": wallet.address.lower()},
    }
    extra = info(venue, {"type": "extraAgents", "user": wallet.address})
    assert [a["address"] for a in extra] == [agent.lower()]

    signer = services.agent_signing_wallet(user=AgentWallet.objects.get(agent_address=agent).user)
    assert signer.address == agent


def test_keys_are_never_returned(client: Client, wallet, venue: str) -> None:
    sign_in(client, wallet)
    result = enable_trading(client, wallet)
    row = AgentWallet.objects.get(agent_address=result["agent_address"])
    key = services.agent_signing_wallet(user=row.user).key.hex().removeprefix("0x")
    for path in ("/auth/session", "/auth/sessions"):
        assert key not in client.get(path).content.decode().lower()


def test_approval_signed_by_another_wallet_is_refused(client: Client, wallet, venue: str) -> None:
    sign_in(client, wallet)
    typed = post_json(client, "/auth/agent/prepare").json()["typed_data"]
    response = post_json(client, "/auth/agent/approve", {"signature": sign_typed(Account.create(), typed)})
    assert response.status_code == 400 and response.json()["code"] == "signature_mismatch"


def test_agent_endpoints_need_a_session(client: Client) -> None:
    response = post_json(client, "/auth/agent/prepare")
    assert response.status_code == 401 and response.json()["code"] == "authentication_required"


def test_revoke_destroys_the_key_and_the_capability(client: Client, wallet, venue: str) -> None:
    sign_in(client, wallet)
    agent = enable_trading(client, wallet)["agent_address"]
    response = post_json(client, "/auth/agent/revoke")
    assert response.status_code == 200 and response.json()["revoked"] == 1
    row = AgentWallet.objects.get(agent_address=agent)
    assert row.status == AgentStatus.REVOKED and row.ciphertext is None
    assert client.get("/auth/session").json()["capabilities"]["execution_agent_ready"] is False
    with pytest.raises(services.AgentNotReady) as err:
        services.agent_signing_wallet(user=row.user)
    assert err.value.code == "agent_not_ready"


def test_replacing_an_agent_uses_a_new_address(client: Client, wallet, venue: str) -> None:
    sign_in(client, wallet)
    first = enable_trading(client, wallet)["agent_address"]
    second = enable_trading(client, wallet)["agent_address"]
    assert first != second
    assert AgentWallet.objects.get(agent_address=first).status == AgentStatus.REPLACED
    assert services.agent_signing_wallet(user=AgentWallet.objects.get(agent_address=second).user).address == second


def test_an_expired_agent_is_not_ready_and_warned_before(client: Client, wallet, venue: str) -> None:
    sign_in(client, wallet)
    agent = enable_trading(client, wallet)["agent_address"]
    AgentWallet.objects.filter(agent_address=agent).update(valid_until=timezone.now() + timedelta(days=2))
    state = client.get("/auth/session").json()
    assert [w["code"] for w in state["warnings"]] == ["agent_expiring_soon"]
    AgentWallet.objects.filter(agent_address=agent).update(valid_until=timezone.now() - timedelta(seconds=1))
    assert client.get("/auth/session").json()["capabilities"]["execution_agent_ready"] is False
    with pytest.raises(services.AgentNotReady):
        services.agent_signing_wallet(user=AgentWallet.objects.get(agent_address=agent).user)


def test_venue_rejection_is_a_clean_error(client: Client, wallet, venue: str, settings) -> None:
    sign_in(client, wallet)
    settings.HYPERSENTRY_VENUE_URL = "http://127.0.0.1:9"  # nothing listens there
    typed = post_json(client, "/auth/agent/prepare").json()["typed_data"]
    response = post_json(client, "/auth/agent/approve", {"signature": sign_typed(wallet, typed)})
    assert response.status_code == 503 and response.json()["code"] == "venue_unreachable"


def _prepared_rows(n: int) -> list[AgentWallet]:
    rows = []
    for _ in range(n):
        user = make_user()
        rows.append(services.agent_prepare(user=user))
    return rows


@pytest.mark.django_db(transaction=True)
def test_no_plaintext_key_in_a_database_dump() -> None:
    rows = _prepared_rows(3)
    keys = [
        crypto.open_sealed(key_id=r.key_id, blob=bytes(r.ciphertext), aad=services.agents._aad(r, r.user)).hex()
        for r in rows
    ]
    s = connection.settings_dict
    env = {**os.environ, "PGPASSWORD": s.get("PASSWORD") or ""}
    dump = (
        subprocess.run(
            ["/usr/lib/postgresql/15/bin/pg_dump", "-h", s["HOST"], "-p", str(s["PORT"]), "-U", s["USER"], s["NAME"]],
            capture_output=True,
            check=True,
            env=env,
            timeout=60,
        )
        .stdout.decode()
        .lower()
    )
    assert "accounts_agentwallet" in dump and rows[0].agent_address.lower() in dump.lower()
    for key in keys:
        assert key.lower() not in dump
        assert "0x" + key.lower() not in dump


def test_a_ciphertext_copied_to_another_users_row_does_not_decrypt() -> None:
    victim, thief = _prepared_rows(2)
    AgentWallet.objects.filter(pk=thief.pk).update(ciphertext=victim.ciphertext, key_id=victim.key_id)
    AgentWallet.objects.filter(pk__in=[victim.pk, thief.pk]).update(status=AgentStatus.APPROVED)
    with pytest.raises(crypto.DecryptionFailed):
        services.agent_signing_wallet(user=thief.user)
    assert services.agent_signing_wallet(user=victim.user).address == victim.agent_address


def test_rotation_re_encrypts_every_row(settings) -> None:
    old = base64.urlsafe_b64encode(os.urandom(32)).decode()
    new = base64.urlsafe_b64encode(os.urandom(32)).decode()
    settings.AGENT_WALLET_ENCRYPTION_KEY = [old]
    rows = _prepared_rows(4)
    AgentWallet.objects.update(status=AgentStatus.APPROVED)
    before = {r.pk: services.agent_signing_wallet(user=r.user).address for r in rows}
    settings.AGENT_WALLET_ENCRYPTION_KEY = [new, old]
    from django.core.management import call_command

    call_command("rotate_agent_keys")
    new_id = crypto.key_id_for(crypto.parse_key(new))
    assert set(AgentWallet.objects.values_list("key_id", flat=True)) == {new_id}
    settings.AGENT_WALLET_ENCRYPTION_KEY = [new]  # the old key can go now
    assert {r.pk: services.agent_signing_wallet(user=r.user).address for r in rows} == before


def test_a_missing_key_id_is_a_clear_error(settings) -> None:
    settings.AGENT_WALLET_ENCRYPTION_KEY = [base64.urlsafe_b64encode(os.urandom(32)).decode()]
    (row,) = _prepared_rows(1)
    AgentWallet.objects.filter(pk=row.pk).update(status=AgentStatus.APPROVED)
    settings.AGENT_WALLET_ENCRYPTION_KEY = [base64.urlsafe_b64encode(os.urandom(32)).decode()]
    with pytest.raises(crypto.DecryptionFailed):
        services.agent_signing_wallet(user=row.user)
