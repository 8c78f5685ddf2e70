"""Health, readiness, metrics, the request id, and the error contract."""

from __future__ import annotations

import json
import logging
import sys
from decimal import Decimal

import pytest
from django.test import Client

from accounts.models import Role
from kernel import readiness
from kernel.logging import JsonFormatter, RequestIdFilter
from tests.factories import make_user

pytestmark = pytest.mark.django_db


def test_healthz_answers_without_io(client: Client, django_assert_num_queries) -> None:  # type: ignore[no-untyped-def]
    with django_assert_num_queries(0):
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["version"]


@pytest.mark.django_db(transaction=True)
def test_readyz_checks_the_database_and_the_channel_layer_round_trip(client: Client) -> None:
    body = client.get("/readyz").json()
    assert body["status"] == "ok"
    assert body["checks"]["database"]["ok"] and body["checks"]["database"]["detail"] == "postgresql"
    assert body["checks"]["channel_layer"] == {**body["checks"]["channel_layer"], "ok": True}
    assert body["checks"]["channel_layer"]["detail"] == "RealtimeChannelLayer/redis"


@pytest.mark.django_db(transaction=True)
def test_readyz_is_503_when_one_check_fails(client: Client) -> None:
    async def broken() -> tuple[bool, str]:
        raise ConnectionError("venue unreachable")

    readiness.register("test_broken", broken)
    try:
        response = client.get("/readyz")
    finally:
        readiness._CHECKS.pop("test_broken")
    assert response.status_code == 503
    assert response.json()["checks"]["test_broken"] == {
        **response.json()["checks"]["test_broken"],
        "ok": False,
        "detail": "ConnectionError: venue unreachable",
    }


def test_metrics_are_in_prometheus_format(client: Client, settings) -> None:  # type: ignore[no-untyped-def]
    settings.METRICS_BEARER_TOKEN = "scraper-token"  # who may read them: tests/hypersentry/test_exposure.py
    response = client.get("/metrics", headers={"Authorization": "Bearer scraper-token"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert b"# TYPE hs_component_errors_total counter" in response.content


def test_the_request_id_is_echoed_or_generated(client: Client) -> None:
    given = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert given["X-Request-ID"] == "abc-123"
    generated = client.get("/healthz")
    assert len(generated["X-Request-ID"]) == 32
    hostile = client.get("/healthz", headers={"X-Request-ID": "bad id\nwith newline" + "x" * 200})
    assert hostile["X-Request-ID"] != "bad id\nwith newline" + "x" * 200


def test_log_lines_of_a_request_carry_its_request_id(client: Client, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="django.request")
    response = client.post("/healthz", headers={"X-Request-ID": "req-42"})
    assert response.status_code == 405
    records = [r for r in caplog.records if r.name == "django.request"]
    assert records
    record = records[-1]
    RequestIdFilter().filter(record)
    assert json.loads(JsonFormatter().format(record))["request_id"] == "req-42"


def test_json_log_lines_carry_structured_fields() -> None:
    record = logging.LogRecord("hs.test", logging.INFO, __file__, 1, "order %s", ("sent",), None)
    record.symbol = "BTC"
    record.correlation_id = "c-1"
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "order sent"
    assert line["symbol"] == "BTC" and line["correlation_id"] == "c-1" and line["level"] == "INFO"


def test_json_log_lines_keep_their_shape() -> None:
    """UTC timestamp to the millisecond first, no request_id key without one, odd values as str, traceback last."""
    try:
        raise ZeroDivisionError("boom")
    except ZeroDivisionError:
        record = logging.LogRecord("hs.test", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    record.created, record.msecs = 1_700_000_000.1239, 123.9
    record.request_id = None
    record.amount = Decimal("1.50")
    text = JsonFormatter().format(record)
    line = json.loads(text)
    assert list(line) == ["ts", "level", "logger", "message", "amount", "exc_info"]
    assert line["ts"] == "2023-11-14T22:13:20.123Z" and line["amount"] == "1.50"
    assert line["exc_info"].endswith("ZeroDivisionError: boom") and "\n" not in text


def test_the_index_lists_the_components(client: Client) -> None:
    client.force_login(make_user(role=Role.OPERATOR))
    response = client.get("/system")
    assert response.status_code == 200
    for name in (b"web", b"ingest", b"alpha", b"execution", b"jobs", b"hlsim"):
        assert b'data-component="' + name + b'"' in response.content


def test_siwe_imports_with_the_pinned_abnf() -> None:
    import abnf
    import siwe

    assert siwe.SiweMessage is not None
    assert abnf.__version__ == "2.8.3" if hasattr(abnf, "__version__") else True
