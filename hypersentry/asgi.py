"""ASGI entry point: HTTP through Django, WebSockets behind connection caps, an origin check and session auth.

Server-agnostic: `daphne hypersentry.asgi:application` and `uvicorn hypersentry.asgi:application` both serve it.

WebSocket layers, outermost first (each refuses before the next one does any work):
1. connection caps per client IP and per process (no I/O: a socket flood must not reach the database),
2. the origin check (full origins; a malformed Origin header is refused, never a 500),
3. AuthMiddlewareStack (session and user: database reads), then the /ws gateway.
A refusal is a `websocket.close` before `websocket.accept`, which servers answer with HTTP 403.

The ASGI lifespan protocol runs the process's `web` heartbeat (`/system`, `manage.py healthcheck web`) from startup
to shutdown, whatever starts the app (`serve`, or uvicorn on its own as the compose file runs it); a server without
lifespan (daphne) starts it on its first request.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hypersentry.settings")

from django.core.asgi import get_asgi_application

# Set up Django before importing anything that touches models (channels.auth, the routing).
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import OriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.exceptions import ImproperlyConfigured  # noqa: E402

from hypersentry.routing import websocket_urlpatterns  # noqa: E402
from kernel import components  # noqa: E402
from kernel.metrics import Counter, mark_process_dead  # noqa: E402

logger = logging.getLogger(__name__)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

WS_REFUSED = Counter("hs_ws_refused_total", "WebSocket handshakes refused before accept", ["reason"])

# Close codes of a refused handshake. Real servers turn a close before accept into HTTP 403 and the code never
# reaches the browser; ASGI test clients see it.
CLOSE_POLICY_VIOLATION = 1008  # origin not allowed
CLOSE_TRY_AGAIN_LATER = 1013  # connection cap reached

# --- WebSocket: origin ---------------------------------------------------------------------------------------

# A serialized origin (RFC 6454 §6.2) is scheme "://" host [":" port]: no userinfo, path, query or fragment.
_ORIGIN_RE = re.compile(
    r"(?P<scheme>https?)://(?P<host>[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?|\[[0-9a-f:.]{2,45}\])(?::(?P<port>\d{1,5}))?",
    re.ASCII,
)
_DEFAULT_PORTS = {"http": 80, "https": 443}

Origin = tuple[str, str, int]


def parse_origin(value: str) -> Origin | None:
    """(scheme, host, port) of a well-formed http(s) origin, default ports filled in; None for anything else
    (non-ASCII, "null", a path, a bad port, a broken IPv6 literal). Never raises: `urlparse(...).port` raises
    ValueError on "http://host:port.evil.com", which is how the stock OriginValidator answered 500."""
    if not value.isascii():
        return None
    match = _ORIGIN_RE.fullmatch(value.lower())
    if match is None:
        return None
    scheme, host = match["scheme"], match["host"]
    port = int(match["port"]) if match["port"] is not None else _DEFAULT_PORTS[scheme]
    if not 0 < port < 65536:
        return None
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return None
    return scheme, host, port


def origin_header(scope: Scope) -> str | None:
    """The Origin header, or None when absent or sent more than once (ambiguous: refused)."""
    values = [value for name, value in scope.get("headers", []) if name == b"origin"]
    return values[0].decode("latin-1") if len(values) == 1 else None


def origin_allowed(origin: str | None, *, allowed: frozenset[Origin], wildcard: bool) -> bool:
    if wildcard:
        return True
    parsed = None if origin is None else parse_origin(origin)
    return parsed is not None and parsed in allowed


async def refuse(receive: Receive, send: Send, *, code: int) -> None:
    """Close before accepting (servers answer the handshake with HTTP 403)."""
    message = await receive()
    if message["type"] == "websocket.connect":
        await send({"type": "websocket.close", "code": code})


class StrictOriginValidator(OriginValidator):  # type: ignore[misc]
    """Exact full-origin matching (scheme, host, port) against ALLOWED_ORIGINS, with a parser that refuses what it
    does not understand. Subclasses channels' OriginValidator so the system check (hypersentry.E002) still
    recognises the guard and its `allowed_origins`."""

    def __init__(self, application: Any, allowed_origins: Iterable[str]) -> None:
        origins = list(allowed_origins)
        super().__init__(application, origins)
        self.wildcard = "*" in origins
        parsed = {o: parse_origin(o) for o in origins if o != "*"}
        unusable = [o for o, p in parsed.items() if p is None]
        if unusable:
            raise ImproperlyConfigured(f"ALLOWED_ORIGINS has entries that are not http(s) origins: {unusable}")
        self.allowed = frozenset(p for p in parsed.values() if p is not None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            raise ValueError("StrictOriginValidator guards WebSocket connections only")
        origin = origin_header(scope)
        if origin_allowed(origin, allowed=self.allowed, wildcard=self.wildcard):
            await self.application(scope, receive, send)
            return
        WS_REFUSED.labels("origin").inc()
        logger.warning("websocket refused: origin not allowed", extra={"origin": (origin or "")[:100]})
        await refuse(receive, send, code=CLOSE_POLICY_VIOLATION)


# --- WebSocket: connection caps ------------------------------------------------------------------------------


def ws_client_ip(scope: Scope, *, behind_proxy: bool) -> str:
    """The peer address, as `kernel.ratelimit.client_ip` reads it for HTTP: behind the TLS proxy the last
    X-Forwarded-For hop (what the proxy saw; anything left of it is client-supplied), else scope["client"]."""
    if behind_proxy:
        forwarded = ",".join(v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"x-forwarded-for")
        hops = [h.strip() for h in forwarded.split(",") if h.strip()]
        if hops:
            return hops[-1][:64]
    client = scope.get("client")
    return str(client[0])[:64] if client else "unknown"


class ConnectionSlots:
    """Open sockets per client IP and per process.

    Used from the event loop's thread only, and `acquire` checks and counts without awaiting in between, so two
    handshakes cannot both take the last slot."""

    def __init__(self, *, per_ip: int, total: int) -> None:
        self.per_ip = per_ip
        self.total = total
        self.open = 0
        self.by_ip: dict[str, int] = {}

    def acquire(self, ip: str) -> str | None:
        """Take a slot for `ip`; on refusal return the reason ("process_cap" or "ip_cap") and take nothing."""
        if self.open >= self.total:
            return "process_cap"
        if self.by_ip.get(ip, 0) >= self.per_ip:
            return "ip_cap"
        self.by_ip[ip] = self.by_ip.get(ip, 0) + 1
        self.open += 1
        return None

    def release(self, ip: str) -> None:
        left = self.by_ip.get(ip, 0) - 1
        if left > 0:
            self.by_ip[ip] = left
        else:
            self.by_ip.pop(ip, None)
        self.open = max(0, self.open - 1)


# One constant message per reason: the log throttle groups lines by template.
_REFUSAL_MESSAGES = {
    "process_cap": "websocket refused: WS_MAX_CONNECTIONS sockets are open in this process",
    "ip_cap": "websocket refused: WS_MAX_CONNECTIONS_PER_IP sockets are open from this address",
}


class EdgeRouter(ProtocolTypeRouter):  # type: ignore[misc]
    """ProtocolTypeRouter whose websocket branch is entered through the connection caps, before the origin check
    and before AuthMiddlewareStack touches the session store. It stays a ProtocolTypeRouter with the origin
    validator as its "websocket" app so the system check (hypersentry.E002) still sees the guard. It also answers
    the lifespan protocol, which runs the web heartbeat."""

    def __init__(self, application_mapping: dict[str, Any], *, slots: ConnectionSlots) -> None:
        super().__init__(application_mapping)
        self.slots = slots
        self.heart = components.AsyncHeartbeat("web", detail=self._beat_detail)

    def _beat_detail(self) -> str:
        return f"{self.slots.open} sockets open"

    async def lifespan(self, receive: Receive, send: Send) -> None:
        """Startup starts the heartbeat; shutdown (a clean stop) ends it and deletes this process's row, and marks
        this process's Prometheus files dead: uvicorn ends by re-raising SIGTERM, so no exit hook runs after it."""
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.heart.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.heart.stop()
                mark_process_dead(os.getpid())
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
            return
        # Without lifespan (daphne, uvicorn --lifespan off) the first request starts the heartbeat; a no-op when it
        # runs already or was stopped at shutdown.
        self.heart.start()
        if scope["type"] != "websocket":
            await super().__call__(scope, receive, send)
            return
        ip = ws_client_ip(scope, behind_proxy=bool(getattr(settings, "SECURE_PROXY_SSL_HEADER", None)))
        refusal = self.slots.acquire(ip)
        if refusal is not None:
            WS_REFUSED.labels(refusal).inc()
            logger.warning(_REFUSAL_MESSAGES[refusal], extra={"client_ip": ip})
            await refuse(receive, send, code=CLOSE_TRY_AGAIN_LATER)
            return
        try:
            await super().__call__(scope, receive, send)
        finally:  # every exit: normal close, refusal further in, error, cancellation at shutdown
            self.slots.release(ip)


def build_websocket_app(allowed_origins: Iterable[str]) -> StrictOriginValidator:
    # Full origins (scheme, host, port): a bare host would let http:// in on an https deployment.
    return StrictOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)), allowed_origins)


def build_application(
    allowed_origins: Iterable[str],
    *,
    max_connections_per_ip: int | None = None,
    max_connections: int | None = None,
) -> EdgeRouter:
    slots = ConnectionSlots(
        per_ip=settings.WS_MAX_CONNECTIONS_PER_IP if max_connections_per_ip is None else max_connections_per_ip,
        total=settings.WS_MAX_CONNECTIONS if max_connections is None else max_connections,
    )
    return EdgeRouter({"http": django_asgi_app, "websocket": build_websocket_app(allowed_origins)}, slots=slots)


application = build_application(settings.ALLOWED_ORIGINS)
