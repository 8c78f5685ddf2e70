from django.urls import path

from hypersentry.gateway import gateway_app

# /ws is a raw ASGI app (no consumer dispatch per frame); hypersentry.asgi wraps it in the origin check and
# AuthMiddlewareStack, so it still sees scope["user"] and scope["session"].
websocket_urlpatterns = [
    path("ws", gateway_app),
]
