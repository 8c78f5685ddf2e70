"""ASGI entry point: HTTP through Django, WebSockets behind an origin check and session auth.

Server-agnostic: `daphne hypersentry.asgi:application` and `uvicorn hypersentry.asgi:application` both serve it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hypersentry.settings")

from django.core.asgi import get_asgi_application

django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import OriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402

from hypersentry.routing import websocket_urlpatterns  # noqa: E402


def build_websocket_app(allowed_origins: Iterable[str]) -> Any:
    # Full origins (scheme, host, port): a bare host would let http:// in on an https deployment.
    return OriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)), list(allowed_origins))


def build_application(allowed_origins: Iterable[str]) -> ProtocolTypeRouter:
    return ProtocolTypeRouter({"http": django_asgi_app, "websocket": build_websocket_app(allowed_origins)})


application = build_application(settings.ALLOWED_ORIGINS)
