"""Sign-in with Ethereum as the browser does it: nonce, signed message, verify (with the CSRF token), and JSON
posts of a signed-in client."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from typing import Any

from django.conf import settings
from django.test import Client
from django.utils import timezone
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount

from accounts.services.signin import siwe_policy
from accounts.siwe_rules import build_message


def sign_text(account: LocalAccount, text: str) -> str:
    return "0x" + account.sign_message(encode_defunct(text=text)).signature.hex().removeprefix("0x")


def get_nonce(client: Client, address: str, **params: Any) -> dict[str, Any]:
    response = client.get("/auth/nonce", {"address": address, **params})
    assert response.status_code == 200, response.content
    return response.json()


def post_verify(client: Client, body: dict[str, Any] | bytes) -> Any:
    token = client.cookies.get(settings.CSRF_COOKIE_NAME)
    headers = {"HTTP_X_CSRFTOKEN": token.value} if token else {}
    data = body if isinstance(body, bytes) else json.dumps(body)
    return client.post("/auth/verify", data=data, content_type="application/json", **headers)


def post_json(client: Client, path: str, body: dict[str, Any] | None = None) -> Any:
    token = client.cookies.get(settings.CSRF_COOKIE_NAME)
    headers = {"HTTP_X_CSRFTOKEN": token.value} if token else {}
    return client.post(path, data=json.dumps(body or {}), content_type="application/json", **headers)


def sign_in(client: Client, account: LocalAccount) -> dict[str, Any]:
    challenge = get_nonce(client, account.address)
    response = post_verify(
        client, {"message": challenge["message"], "signature": sign_text(account, challenge["message"])}
    )
    assert response.status_code == 200, response.content
    return response.json()


def crafted_message(
    *,
    nonce: str,
    address: str,
    chain_id: int | None = None,
    issued_at: datetime | None = None,
    ttl_sec: int = 300,
    **policy_overrides: Any,
) -> str:
    policy = dataclasses.replace(siwe_policy(), **policy_overrides)
    return build_message(
        policy=policy,
        address=address,
        chain_id=chain_id or policy.chain_ids[0],
        nonce=nonce,
        issued_at=issued_at or timezone.now(),
        ttl_sec=ttl_sec,
    )
