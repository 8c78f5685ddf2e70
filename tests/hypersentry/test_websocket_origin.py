"""WebSockets are refused from foreign origins, without an origin, and over http:// on an https deployment;
malformed origins are refused (403), never an error (500)."""

from __future__ import annotations

import pytest
from channels.routing import ProtocolTypeRouter, URLRouter
from channels.testing import WebsocketCommunicator

from hypersentry.asgi import CLOSE_POLICY_VIOLATION, application, build_application, parse_origin
from hypersentry.checks import websocket_origin_problems
from hypersentry.routing import websocket_urlpatterns

pytestmark = pytest.mark.django_db(transaction=True)


async def _opens(app: object, origin: bytes | None) -> bool:
    headers = [(b"origin", origin)] if origin is not None else []
    return await _opens_with(app, headers)


async def _opens_with(app: object, headers: list[tuple[bytes, bytes]]) -> bool:
    communicator = WebsocketCommunicator(app, "/ws", headers=headers)
    communicator.scope["client"] = ["127.0.0.1", 50000]
    # An exception in the app (what a server answers with 500) is raised here and fails the test.
    connected, code = await communicator.connect(timeout=5)
    await communicator.disconnect()
    if not connected:
        assert code == CLOSE_POLICY_VIOLATION
    return bool(connected)


async def test_the_configured_origin_is_accepted() -> None:
    assert await _opens(application, b"http://127.0.0.1:8000")


@pytest.mark.parametrize("origin", [b"https://evil.example", b"http://127.0.0.1:8001", b"null", None])
async def test_foreign_or_missing_origins_are_refused(origin: bytes | None) -> None:
    assert not await _opens(application, origin)


MALFORMED = [
    b"http://127.0.0.1:8000.evil.com",  # urlparse(...).port raised ValueError: a 500 before
    b"http://127.0.0.1:port.evil.com",
    b"http://[::1",
    b"http://[::1]:8000",  # well-formed, just not allowed
    b"http://127.0.0.1:8000/",
    b"http://127.0.0.1:8000/path",
    b"http://127.0.0.1:8000?q=1",
    b"http://user@127.0.0.1:8000",
    b"http://127.0.0.1:99999",
    b"http://127.0.0.1:0",
    b"http://127.0.0.1:",
    "http://127.0.0.1:8000\u00e9".encode(),
    "http://b\u00fccher.example".encode(),
    b"http://127.0.0.1:8000\xff",
    b"",
    b" http://127.0.0.1:8000",
    b"ws://127.0.0.1:8000",
]


@pytest.mark.parametrize("origin", MALFORMED)
async def test_malformed_origins_are_refused_not_errors(origin: bytes) -> None:
    assert not await _opens(application, origin)


async def test_a_repeated_origin_header_is_refused() -> None:
    good = (b"origin", b"http://127.0.0.1:8000")
    assert await _opens_with(application, [good])
    assert not await _opens_with(application, [good, good])


async def test_origins_match_case_insensitively_with_default_ports() -> None:
    app = build_application(["https://Terminal.example.com", "http://[::1]:8000"])
    assert await _opens(app, b"https://terminal.example.com:443")
    assert await _opens(app, b"HTTPS://TERMINAL.EXAMPLE.COM")
    assert await _opens(app, b"http://[::1]:8000")
    assert not await _opens(app, b"http://[::1]")


def test_parse_origin_never_raises() -> None:
    assert parse_origin("https://a.example:8443") == ("https", "a.example", 8443)
    assert parse_origin("http://127.0.0.1") == ("http", "127.0.0.1", 80)
    for value in ["http://host:port.evil.com", "http://[::1", "http://[zz::1]", "null", "", "http://a.example/x"]:
        assert parse_origin(value) is None


async def test_http_is_refused_on_an_https_deployment() -> None:
    app = build_application(["https://terminal.example.com"])
    assert await _opens(app, b"https://terminal.example.com")
    assert not await _opens(app, b"http://terminal.example.com")
    assert not await _opens(app, b"https://terminal.example.com:8443")


def test_the_system_check_flags_websockets_without_an_origin_check() -> None:
    unguarded = ProtocolTypeRouter({"websocket": URLRouter(websocket_urlpatterns)})
    assert websocket_origin_problems(unguarded) == [
        "WebSocket routing is not wrapped in OriginValidator: any site can open sockets with the cookies"
    ]
    assert websocket_origin_problems(build_application(["*"])) == ["OriginValidator allows the wildcard origin '*'"]
    assert websocket_origin_problems(application) == []
