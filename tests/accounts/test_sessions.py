from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone
from eth_account import Account

from accounts.models import Role, User, UserSession
from accounts.selectors import session_is_valid
from accounts.services import sessions_expire
from tests.accounts.siwe import get_nonce, post_json, post_verify, sign_in, sign_text
from tests.concurrency import run_in_threads
from tests.factories import make_user

pytestmark = pytest.mark.django_db


def test_logout_ends_the_session(client: Client, wallet) -> None:
    sign_in(client, wallet)
    key = client.session.session_key
    assert session_is_valid(session_key=key)
    response = post_json(client, "/auth/logout")
    assert response.status_code == 200 and response.json()["authenticated"] is False
    assert not session_is_valid(session_key=key)
    assert UserSession.objects.get(session_key=key).end_reason == "logout"
    assert client.get("/auth/session").json()["authenticated"] is False


def test_users_list_and_revoke_their_own_sessions(wallet) -> None:
    laptop, phone = Client(), Client()
    sign_in(laptop, wallet)
    sign_in(phone, wallet)
    listed = laptop.get("/auth/sessions").json()["sessions"]
    assert len(listed) == 2 and sum(s["current"] for s in listed) == 1
    assert all("session_key" not in s for s in listed)
    phone_id = next(s["id"] for s in listed if not s["current"])
    phone_key = phone.session.session_key
    assert post_json(laptop, f"/auth/sessions/{phone_id}/revoke").status_code == 200
    assert not session_is_valid(session_key=phone_key)
    assert phone.get("/auth/session").json()["authenticated"] is False
    assert laptop.get("/auth/session").json()["authenticated"] is True


def test_a_user_cannot_revoke_someone_elses_session(wallet) -> None:
    mine, theirs = Client(), Client()
    sign_in(mine, wallet)
    sign_in(theirs, Account.create())
    their_id = theirs.get("/auth/sessions").json()["sessions"][0]["id"]
    response = post_json(mine, f"/auth/sessions/{their_id}/revoke")
    assert response.status_code == 404 and response.json()["code"] == "session_not_found"
    assert theirs.get("/auth/session").json()["authenticated"] is True


def test_admins_list_and_revoke_any_session(wallet) -> None:
    admin, trader = Client(), Client()
    sign_in(trader, Account.create())
    User.objects.create_user(wallet.address, role=Role.ADMIN)
    sign_in(admin, wallet)
    everyone = admin.get("/auth/sessions", {"all": "1"}).json()["sessions"]
    assert len(everyone) == 2
    target = next(s["id"] for s in everyone if not s["current"])
    assert post_json(admin, f"/auth/sessions/{target}/revoke").status_code == 200
    assert trader.get("/auth/session").json()["authenticated"] is False


def test_the_session_key_rotates_with_activity(client: Client, wallet) -> None:
    sign_in(client, wallet)
    old = client.session.session_key
    UserSession.objects.filter(session_key=old).update(rotated_at=timezone.now() - timedelta(hours=2))
    assert client.get("/auth/session").json()["authenticated"] is True
    new = client.session.session_key
    assert new != old
    assert not session_is_valid(session_key=old) and session_is_valid(session_key=new)
    assert UserSession.objects.filter(user__address=wallet.address).count() == 1


def test_expired_sessions_are_ended(client: Client, wallet) -> None:
    sign_in(client, wallet)
    key = client.session.session_key
    UserSession.objects.filter(session_key=key).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert not session_is_valid(session_key=key)
    assert sessions_expire() == 1
    assert UserSession.objects.get(session_key=key).end_reason == "expired"


def test_session_is_valid_rejects_garbage() -> None:
    assert session_is_valid(session_key="") is False
    assert session_is_valid(session_key="nope") is False
    assert session_is_valid(session_key="x" * 1000) is False


def test_admin_addresses_become_admins_at_login(client: Client, wallet, settings) -> None:
    settings.ADMIN_ADDRESSES = [wallet.address]
    state = sign_in(client, wallet)
    assert state["role"] == "admin" and state["permissions"]["configure"] is True
    assert client.get("/admin/").status_code == 200


def test_traders_do_not_reach_admin_and_admin_login_points_to_wallet_sign_in(client: Client, wallet) -> None:
    sign_in(client, wallet)
    response = client.get("/admin/")
    assert response.status_code == 302
    login = client.get(response["Location"])
    assert login.status_code == 302 and login["Location"].startswith("/auth/signin?next=")
    assert b"Connect wallet" in client.get(login["Location"]).content


def test_operators_read_admin_but_change_nothing(client: Client, wallet) -> None:
    User.objects.create_user(wallet.address, role=Role.OPERATOR)
    sign_in(client, wallet)
    assert client.get("/admin/accounts/user/").status_code == 200
    user = User.objects.get(address=wallet.address)
    assert client.post(f"/admin/accounts/user/{user.pk}/change/", {"role": "admin"}).status_code == 403


def test_grant_role_validates_and_grants(wallet) -> None:
    call_command("grant_role", wallet.address, "admin")
    assert User.objects.get(address=wallet.address).role == Role.ADMIN
    with pytest.raises(CommandError, match="EIP-55"):
        call_command("grant_role", wallet.address.lower(), "admin")
    with pytest.raises(CommandError, match="unknown role"):
        call_command("grant_role", wallet.address, "root")


def test_auth_endpoints_are_rate_limited_per_ip(client: Client, wallet, settings) -> None:
    settings.AUTH_RATE_LIMIT_PER_IP = 3
    for _ in range(3):
        assert client.get("/auth/nonce", {"address": wallet.address}).status_code == 200
    response = client.get("/auth/nonce", {"address": wallet.address})
    assert response.status_code == 429 and response.json()["code"] == "rate_limited"
    assert 1 <= int(response["Retry-After"]) <= 60


def test_nonce_requests_naming_an_address_are_not_limited_per_address(wallet, settings) -> None:
    """Anyone may name anyone's address: counting those against the address would let them lock it out."""
    settings.AUTH_RATE_LIMIT_PER_ADDRESS = 2
    for i in range(5):
        assert Client(REMOTE_ADDR=f"10.0.0.{i}").get("/auth/nonce", {"address": wallet.address}).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_parallel_verifies_of_one_message_make_exactly_one_session(wallet, settings) -> None:
    settings.AUTH_RATE_LIMIT_PER_IP = 1000
    settings.AUTH_RATE_LIMIT_PER_ADDRESS = 1000
    first = Client()
    challenge = get_nonce(first, wallet.address)
    body = {"message": challenge["message"], "signature": sign_text(wallet, challenge["message"])}
    cookie = first.cookies[django_settings.SESSION_COOKIE_NAME].value
    statuses: list[int] = []
    barrier = threading.Barrier(50)

    def attempt() -> None:
        c = Client()
        c.cookies[django_settings.SESSION_COOKIE_NAME] = cookie
        barrier.wait(timeout=30)
        statuses.append(post_verify(c, body).status_code)

    run_in_threads([attempt] * 50, timeout=120)
    assert len(statuses) == 50
    assert statuses.count(200) == 1, statuses
    assert all(s in (200, 401) for s in statuses), statuses
    assert UserSession.objects.count() == 1


@pytest.mark.django_db
def test_a_peer_without_an_ip_address_is_tracked_without_one() -> None:
    """A unix-socket peer (uvicorn --uds) has no REMOTE_ADDR: tracking must not write "unknown" into the IP column."""
    from datetime import timedelta

    from django.utils import timezone

    from accounts.services.sessions import session_start

    user = make_user()
    row = session_start(
        user=user,
        session_key="k" * 32,
        expires_at=timezone.now() + timedelta(hours=1),
        ip="unknown",
        user_agent="t",
        is_demo=False,
    )
    assert row.ip is None
