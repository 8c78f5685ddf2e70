"""A JSON route called with a method it does not serve answers 405 with the API's error body and an Allow header
(the DRF routes always did; the plain Django JSON views answered an empty text/html 405).

Found by tests/hypersentry/test_fuzz_api.py (every route called with every other method)."""

from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

ROUTES = {
    "/healthz": "GET, HEAD",
    "/readyz": "GET, HEAD",
    "/metrics": "GET, HEAD",
    "/auth/nonce": "GET",
    "/auth/session": "GET",
    "/auth/sessions": "GET",
    "/auth/verify": "POST",
    "/auth/logout": "POST",
    "/auth/sessions/abc/revoke": "POST",
    "/auth/agent/prepare": "POST",
    "/auth/agent/approve": "POST",
    "/auth/agent/revoke": "POST",
}


CASES = [
    (path, allow, method)
    for path, allow in ROUTES.items()
    for method in ("PUT", "PATCH", "DELETE", "OPTIONS", "POST", "GET")
    if method not in allow.split(", ")
]


@pytest.mark.parametrize(("path", "allow", "method"), CASES)
def test_a_json_route_refuses_other_methods_with_a_json_405(client: Client, path: str, allow: str, method: str) -> None:
    response = client.generic(method, path)
    assert response.status_code == 405
    assert response["Content-Type"] == "application/json"
    assert response["Allow"] == allow
    assert response.json() == {
        "type": "error",
        "code": "method_not_allowed",
        "message": f'Method "{method}" not allowed.',
    }


def test_served_methods_still_pass(client: Client) -> None:
    assert client.get("/healthz").status_code == 200
    assert client.head("/healthz").status_code == 200
    assert client.get("/auth/session").status_code == 200
    assert client.post("/auth/logout").status_code == 200
