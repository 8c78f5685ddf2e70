from django.urls import path

from markets.gateway import GatewayConsumer

websocket_urlpatterns = [
    path("ws", GatewayConsumer.as_asgi()),
]
