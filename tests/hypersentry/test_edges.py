"""The HTTP and WebSocket edges under hostile input: JSON bodies, malformed multipart, bad Host headers, log
floods, and WebSocket connection caps (in-process; the real-server checks are in test_edges_server.py)."""

from __future__ import annotations

import asyncio
import logging
import resource
import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from asgiref.sync import async_to_sync
from channels.testing import HttpCommunicator, WebsocketCommunicator
from django.conf import settings
from django.test import Client
from rest_framework.test import APIClient

from hypersentry import asgi
from hypersentry.asgi import CLOSE_TRY_AGAIN_LATER, ConnectionSlots, EdgeRouter, ws_client_ip
from hypersentry.management.commands.serve import nofile_target, raise_open_file_limit
from kernel.logging import ClientErrorFilter, ThrottleFilter
from kernel.parsers import MAX_JSON_DEPTH, json_depth_exceeds, loads_bounded
from tests.factories import client_for, make_user

ORDER = {"symbol": "BTC", "side": "buy", "type": "limit", "size": "0.002", "price": "100"}
DEEP_ARRAY = b"[" * 1000 + b"]" * 1000
DEEP_OBJECT = b'{"a":' * 1000 + b"1" + b"}" * 1000


def _with_raw(body: dict[str, Any], raw_member: bytes) -> bytes:
    """`body` as JSON with one more member spliced in verbatim (orjson cannot emit lone surrogates or deep values)."""
    return orjson.dumps(body)[:-1] + b"," + raw_member + b"}"


def _throttles() -> Iterator[ThrottleFilter]:
    for name in ["django.request", "django.security.DisallowedHost", "hypersentry.asgi"]:
        for f in logging.getLogger(name).filters:
            if isinstance(f, ThrottleFilter):
                yield f


@pytest.fixture
def throttled() -> Iterator[None]:
    """The log throttle as deployed (settings turn it off under ENVIRONMENT=test), with no memory of earlier tests."""
    filters = list(_throttles())
    saved = [f.interval_sec for f in filters]
    for f in filters:
        f.reset()
        f.interval_sec = settings.LOG_THROTTLE_SEC or 10.0
    yield
    for f, interval in zip(filters, saved, strict=True):
        f.reset()
        f.interval_sec = interval


# --- JSON bodies (pure) ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("opener,closer", [(b"[", b"]"), (b'{"k":', b"}")])
def test_depth_limit_counts_arrays_and_objects(opener: bytes, closer: bytes) -> None:
    def nested(n: int) -> Any:
        inner = b"1" if opener != b"[" else b""
        return orjson.loads(opener * n + inner + closer * n)

    assert not json_depth_exceeds(nested(MAX_JSON_DEPTH), limit=MAX_JSON_DEPTH)
    assert json_depth_exceeds(nested(MAX_JSON_DEPTH + 1), limit=MAX_JSON_DEPTH)
    assert not json_depth_exceeds(1, limit=0)


def test_a_thousand_levels_are_refused_without_recursing() -> None:
    from kernel.parsers import JsonTooDeep

    for raw in (DEEP_ARRAY, DEEP_OBJECT, orjson.dumps({"x": [[[[1]]]]})[:-1] + b',"y":' + DEEP_ARRAY + b"}"):
        with pytest.raises(JsonTooDeep):
            loads_bounded(raw)


@pytest.mark.parametrize(
    "raw",
    [b'"\\ud800"', b'{"\\udc00":1}', b'{"a":"x\\ud800y"}', b'{"a":"\xed\xa0\x80"}', b'{"a":"\xff"}', b"{", b"NaN"],
)
def test_lone_surrogates_invalid_utf8_and_invalid_json_are_parse_errors(raw: bytes) -> None:
    from rest_framework.exceptions import ParseError

    with pytest.raises(ParseError):
        loads_bounded(raw)


# --- JSON bodies through the API -------------------------------------------------------------------------------


def _signed_in() -> APIClient:
    return client_for(make_user())  # raises what the view raises: a 500 fails the test with its traceback


HOSTILE_BODIES = {
    "deep_array": DEEP_ARRAY,
    "deep_object": DEEP_OBJECT,
    "deep_value_in_valid_order": _with_raw(ORDER, b'"note":' + DEEP_ARRAY),
    "surrogate_value": _with_raw(ORDER, b'"note":"\\ud800"'),
    "surrogate_key": _with_raw(ORDER, b'"\\ud800":1'),
    "raw_surrogate_bytes": _with_raw(ORDER, b'"note":"\xed\xa0\x80"'),
    "invalid_utf8": _with_raw(ORDER, b'"note":"\xff"'),
}
EXPECTED_CODE = {
    "deep_array": "json_too_deep",
    "deep_object": "json_too_deep",
    "deep_value_in_valid_order": "json_too_deep",
}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path", ["/trading/order", "/trading/cancel"])
@pytest.mark.parametrize("with_key", [True, False])
@pytest.mark.parametrize("name", list(HOSTILE_BODIES))
def test_hostile_json_is_a_400_with_the_error_body(path: str, with_key: bool, name: str) -> None:
    client = _signed_in()
    headers = {"Idempotency-Key": str(uuid.uuid4())} if with_key else {}
    response = client.post(path, HOSTILE_BODIES[name], content_type="application/json", headers=headers)
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["type"] == "error"
    assert body["code"] == EXPECTED_CODE.get(name, "malformed_body"), body


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("signed_in", [True, False])
@pytest.mark.parametrize(
    "body",
    [
        DEEP_ARRAY,
        b'{"message":' + DEEP_OBJECT + b',"signature":' + DEEP_ARRAY + b"}",
        b'{"message":"\\ud800","signature":"0x00"}',
        b'{"\\udc00":"x"}',
    ],
)
def test_sign_in_answers_hostile_json_with_a_4xx(signed_in: bool, body: bytes) -> None:
    client: Client = _signed_in() if signed_in else Client()
    response = client.post("/auth/verify", body, content_type="application/json")
    assert 400 <= response.status_code < 500, response.content


@pytest.mark.django_db(transaction=True)
def test_an_order_body_within_the_limits_still_parses() -> None:
    client = _signed_in()
    response = client.post("/trading/order", ORDER, format="json", HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()))
    assert response.json().get("code") not in ("malformed_body", "json_too_deep"), response.content


# --- Malformed multipart and bad Host headers ------------------------------------------------------------------

CSRF = "a" * 32  # a well-formed CSRF secret: with it, the CSRF checks read request.POST on every POST


def _asgi_post(path: str, *, content_type: bytes, session: str) -> tuple[int, bytes]:
    """POST through the ASGI application (what servers run), signed in and with a CSRF cookie + header."""
    cookie = f"{settings.CSRF_COOKIE_NAME}={CSRF}; {settings.SESSION_COOKIE_NAME}={session}"
    headers = [
        (b"host", b"127.0.0.1"),
        (b"content-type", content_type),
        (b"cookie", cookie.encode()),
        (b"x-csrftoken", CSRF.encode()),
    ]
    communicator = HttpCommunicator(asgi.application, "POST", path, body=b"x=1", headers=headers)
    communicator.scope["client"] = ["127.0.0.1", 50000]  # as servers set it (read when the app starts)
    response = async_to_sync(communicator.get_response)(timeout=10)
    return response["status"], response["body"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path", ["/auth/verify", "/trading/order", "/trading/cancel", "/", "/healthz"])
@pytest.mark.parametrize(
    "content_type", [b"multipart/form-data", b"multipart/form-data; boundary=", b"multipart/form-data; boundary=\x01"]
)
def test_multipart_without_a_valid_boundary_is_a_400_logged_as_one_warning_line(
    path: str, content_type: bytes, throttled: None, caplog: pytest.LogCaptureFixture
) -> None:
    session = _signed_in().cookies[settings.SESSION_COOKIE_NAME].value
    with caplog.at_level(logging.INFO):
        status, body = _asgi_post(path, content_type=content_type, session=session)
    assert status == 400, body[:300]
    noisy = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(noisy) == 1, [r.getMessage() for r in noisy]
    assert noisy[0].levelno == logging.WARNING and noisy[0].exc_info is None


@pytest.mark.django_db(transaction=True)
def test_fifty_bad_host_requests_log_one_warning_without_traceback(
    throttled: None, caplog: pytest.LogCaptureFixture
) -> None:
    client = Client()
    with caplog.at_level(logging.INFO):
        statuses = {client.get("/healthz", HTTP_HOST=f"evil-{i}.example").status_code for i in range(50)}
    assert statuses == {400}
    noisy = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(noisy) == 1, [r.getMessage() for r in noisy]
    assert noisy[0].name == "django.security.DisallowedHost"
    assert noisy[0].levelno == logging.WARNING and noisy[0].exc_info is None
    assert noisy[0].error == "DisallowedHost"  # type: ignore[attr-defined]


# --- Log filters (pure) ----------------------------------------------------------------------------------------


def _record(msg: str, *args: Any, level: int = logging.WARNING, name: str = "t", **extra: Any) -> logging.LogRecord:
    record = logging.LogRecord(name, level, __file__, 1, msg, args, None)
    record.__dict__.update(extra)
    return record


def test_throttle_lets_one_line_per_cause_through_then_reports_the_suppressed_count() -> None:
    now = [100.0]
    throttle = ThrottleFilter(interval_sec=10, clock=lambda: now[0])
    assert throttle.filter(_record("bad %s", "a"))
    assert not any(throttle.filter(_record("bad %s", str(i))) for i in range(49))
    assert throttle.filter(_record("other %s", "a"))  # another cause is not held back
    now[0] += 10
    record = _record("bad %s", "z")
    assert throttle.filter(record)
    assert record.suppressed == 49  # type: ignore[attr-defined]
    next_window = _record("bad %s", "z")
    now[0] += 10
    assert throttle.filter(next_window) and not hasattr(next_window, "suppressed")


def test_throttle_keys_exceptions_by_raise_site_not_by_client_text() -> None:
    throttle = ThrottleFilter(interval_sec=10, clock=lambda: 0.0)

    def failing(text: str) -> logging.LogRecord:
        try:
            raise ValueError(text)
        except ValueError as exc:
            record = _record(f"Invalid header: {text!r}", level=logging.ERROR)
            record.exc_info = (type(exc), exc, exc.__traceback__)
            return record

    assert throttle.filter(failing("a"))
    assert not throttle.filter(failing("b"))


def test_throttle_off_at_zero() -> None:
    throttle = ThrottleFilter(interval_sec=0)
    assert all(throttle.filter(_record("same")) for _ in range(5))


def test_client_errors_become_one_warning_line_and_server_errors_stay() -> None:
    try:
        raise ValueError("boom")
    except ValueError as exc:
        info = (type(exc), exc, exc.__traceback__)
    client_error = _record("Bad Request: %s", "/x", level=logging.ERROR, status_code=400)
    client_error.exc_info = info
    server_error = _record("Internal Server Error: %s", "/x", level=logging.ERROR, status_code=500)
    server_error.exc_info = info
    f = ClientErrorFilter()
    assert f.filter(client_error) and f.filter(server_error)
    assert (client_error.levelno, client_error.levelname, client_error.exc_info) == (logging.WARNING, "WARNING", None)
    assert client_error.error == "ValueError"  # type: ignore[attr-defined]
    assert server_error.levelno == logging.ERROR and server_error.exc_info is info


# --- WebSocket connection caps (in-process) --------------------------------------------------------------------


class _Inner:
    """A websocket app that accepts and waits for the client to leave (or raises / hangs on request)."""

    def __init__(self, mode: str = "wait") -> None:
        self.mode = mode
        self.calls = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.calls += 1
        await receive()
        await send({"type": "websocket.accept"})
        if self.mode == "raise":
            raise RuntimeError("consumer crashed")
        if self.mode == "hang":
            await asyncio.Event().wait()
        while (await receive())["type"] != "websocket.disconnect":
            pass


def _communicator(app: Any, ip: str, headers: list[tuple[bytes, bytes]] | None = None) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(app, "/ws", headers=headers or [])
    communicator.scope["client"] = [ip, 50000]  # read when the app starts, on the first send
    return communicator


def _router(inner: Any, *, per_ip: int, total: int) -> EdgeRouter:
    return EdgeRouter({"websocket": inner}, slots=ConnectionSlots(per_ip=per_ip, total=total))


async def test_caps_refuse_per_ip_and_per_process_before_the_inner_app_runs() -> None:
    inner = _Inner()
    router = _router(inner, per_ip=2, total=3)
    a1, a2, a3, b1, c1 = (_communicator(router, ip) for ip in ["1.1.1.1", "1.1.1.1", "1.1.1.1", "2.2.2.2", "3.3.3.3"])
    assert (await a1.connect())[0] and (await a2.connect())[0]
    assert await a3.connect() == (False, CLOSE_TRY_AGAIN_LATER)  # third from one address
    assert (await b1.connect())[0]
    assert await c1.connect() == (False, CLOSE_TRY_AGAIN_LATER)  # fourth in the process
    assert inner.calls == 3  # refused handshakes never reached the origin check / session layers
    await a1.disconnect()
    c2 = _communicator(router, "3.3.3.3")
    assert (await c2.connect())[0]  # a slot came back
    for c in (a2, b1, c2):
        await c.disconnect()
    assert router.slots.open == 0 and router.slots.by_ip == {}


@pytest.mark.parametrize("mode", ["raise", "hang"])
async def test_a_slot_is_released_when_the_socket_app_crashes_or_is_cancelled(mode: str) -> None:
    router = _router(_Inner(mode), per_ip=1, total=1)
    communicator = _communicator(router, "1.1.1.1")
    assert (await communicator.connect())[0]
    if mode == "raise":
        with pytest.raises(RuntimeError):
            await communicator.wait(timeout=1)
    else:
        assert router.slots.open == 1
        communicator.future.cancel()  # what server shutdown does to a hanging socket task
        with pytest.raises(asyncio.CancelledError):
            await communicator.future
    assert router.slots.open == 0 and router.slots.by_ip == {}


def test_refusals_are_counted_in_prometheus() -> None:
    from prometheus_client import REGISTRY

    def refused() -> float:
        return REGISTRY.get_sample_value("hs_ws_refused_total", {"reason": "ip_cap"}) or 0.0

    router = _router(_Inner(), per_ip=1, total=10)

    async def two_from_one_address() -> None:
        first, second = _communicator(router, "9.9.9.9"), _communicator(router, "9.9.9.9")
        assert (await first.connect())[0]
        assert not (await second.connect())[0]
        await first.disconnect()

    before = refused()
    async_to_sync(two_from_one_address)()
    assert refused() == before + 1


def test_the_application_puts_the_caps_outside_the_origin_check() -> None:
    assert isinstance(asgi.application, EdgeRouter)
    assert asgi.application.slots.per_ip == settings.WS_MAX_CONNECTIONS_PER_IP
    assert asgi.application.slots.total == settings.WS_MAX_CONNECTIONS
    assert isinstance(asgi.application.application_mapping["websocket"], asgi.StrictOriginValidator)


def test_client_ip_is_the_peer_or_behind_the_proxy_the_last_forwarded_hop() -> None:
    scope = {
        "client": ["10.0.0.1", 1],
        "headers": [(b"x-forwarded-for", b"6.6.6.6, 7.7.7.7"), (b"x-forwarded-for", b"8.8.8.8")],
    }
    assert ws_client_ip(scope, behind_proxy=False) == "10.0.0.1"
    assert ws_client_ip(scope, behind_proxy=True) == "8.8.8.8"  # what the proxy appended; the rest is client-supplied
    assert ws_client_ip({"client": ["10.0.0.1", 1], "headers": []}, behind_proxy=True) == "10.0.0.1"
    assert ws_client_ip({"headers": []}, behind_proxy=False) == "unknown"


# --- serve: open-file limit ------------------------------------------------------------------------------------


def test_nofile_target_is_the_hard_limit_with_a_ceiling_for_unlimited() -> None:
    assert nofile_target(1024, 4096) == 4096
    assert nofile_target(4096, 4096) == 4096
    assert nofile_target(1024, resource.RLIM_INFINITY) == 1_048_576


def test_serve_raises_the_soft_open_file_limit_to_the_hard_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lowered = min(soft, 256)
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowered, hard))
    try:
        assert raise_open_file_limit() == nofile_target(lowered, hard)
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == nofile_target(lowered, hard)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
