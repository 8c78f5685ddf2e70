from django.urls import path

from hypersentry.gateway import GatewayConsumer

# /ws is a Channels consumer for the control plane only (data frames are written to the socket by the hub, no
# consumer dispatch per frame); hypersentry.asgi wraps it in the connection caps, the origin check and
# AuthMiddlewareStack, so it sees scope["user"] and scope["session"].
websocket_urlpatterns = [
    path("ws", GatewayConsumer.as_asgi()),
]
