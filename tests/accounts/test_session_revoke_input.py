"""POST /auth/sessions/<id>/revoke with an id no session can have: 404 session_not_found, never a 500.

Found by tests/hypersentry/test_fuzz_api.py: a NUL byte in the id reached PostgreSQL ("text fields cannot contain
NUL (0x00) bytes") and the auth endpoint answered 500 internal_error."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from django.test import Client

from accounts.models import UserSession
from tests.accounts.siwe import post_json, sign_in

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("public_id", ["\x00", "abc\x00def", "x" * 5000, "🚀", "..", "a b", "id;drop"])
def test_it_answers_a_malformed_session_id_as_a_missing_session(wallet, public_id: str) -> None:
    client = Client()
    sign_in(client, wallet)
    response = post_json(client, f"/auth/sessions/{quote(public_id, safe='')}/revoke")
    assert response.status_code == 404, response.content
    assert response.json() == {"type": "error", "code": "session_not_found", "message": "no such session"}
    assert client.get("/auth/session").json()["authenticated"] is True
    assert UserSession.objects.filter(revoked_at__isnull=True).count() == 1


def test_a_real_session_id_still_revokes(wallet) -> None:
    mine, other = Client(), Client()
    sign_in(mine, wallet)
    sign_in(other, wallet)
    other_id = next(s["id"] for s in mine.get("/auth/sessions").json()["sessions"] if not s["current"])
    assert post_json(mine, f"/auth/sessions/{other_id}/revoke").status_code == 200
    assert other.get("/auth/session").json()["authenticated"] is False
