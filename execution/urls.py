from django.urls import path

from execution import api

urlpatterns = [
    path("trading/order", api.OrderSubmitApi.as_view(), name="trading-order"),
    path("trading/preview", api.OrderPreviewApi.as_view(), name="trading-preview"),
    path("trading/cancel", api.OrderCancelApi.as_view(), name="trading-cancel"),
    path("trading/modify", api.OrderModifyApi.as_view(), name="trading-modify"),
    path("trading/orders", api.OrderListApi.as_view(), name="trading-orders"),
    path("trading/fills", api.FillListApi.as_view(), name="trading-fills"),
    path("trading/positions", api.PositionListApi.as_view(), name="trading-positions"),
    path("trading/positions/close", api.PositionCloseApi.as_view(), name="trading-position-close"),
    path("trading/protection", api.ProtectionApi.as_view(), name="trading-protection"),
    path("trading/account", api.AccountApi.as_view(), name="trading-account"),
    path("trading/stream/resync", api.ResyncApi.as_view(), name="trading-resync"),
    path("trading/controls", api.ControlsApi.as_view(), name="trading-controls"),
    path("trading/killswitch", api.KillSwitchApi.as_view(), name="trading-killswitch"),
    path("trading/breakers/reset", api.BreakerResetApi.as_view(), name="trading-breaker-reset"),
]
