"""WebSockets are refused from foreign origins, without an origin, and over http:// on an https deployment."""

from __future__ import annotations

import pytest
from channels.routing import ProtocolTypeRouter, URLRouter
from channels.testing import WebsocketCommunicator

from hypersentry.asgi import application, build_application
from hypersentry.checks import websocket_origin_problems
from hypersentry.routing import websocket_urlpatterns

pytestmark = pytest.mark.django_db(transaction=True)


async def _opens(app: object, origin: bytes | None) -> bool:
    headers = [(b"origin", origin)] if origin is not None else []
    communicator = WebsocketCommunicator(app, "/ws", headers=headers)
    connected, _ = await communicator.connect(timeout=5)
    await communicator.disconnect()
    return bool(connected)


async def test_the_configured_origin_is_accepted() -> None:
    assert await _opens(application, b"http://127.0.0.1:8000")


@pytest.mark.parametrize("origin", [b"https://evil.example", b"http://127.0.0.1:8001", b"null", None])
async def test_foreign_or_missing_origins_are_refused(origin: bytes | None) -> None:
    assert not await _opens(application, origin)


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
