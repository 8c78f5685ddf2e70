from django.urls import path

from markets import api, views_pages

urlpatterns: list = [
    # --- market data REST (ingest half) ---
    path("aggregator/status", api.AggregatorStatusApi.as_view(), name="aggregator-status"),
    path("aggregator/symbols", api.AggregatorSymbolsApi.as_view(), name="aggregator-symbols"),
    path("trading/orderbook", api.OrderbookApi.as_view(), name="trading-orderbook"),
    path("trading/prices", api.PricesApi.as_view(), name="trading-prices"),
    path("trading/tokens", api.TokensApi.as_view(), name="trading-tokens"),
    path("trading/candles", api.CandlesApi.as_view(), name="trading-candles"),
    path("markets/<str:symbol>/snapshot", api.SymbolSnapshotApi.as_view(), name="market-snapshot"),
    # --- pages (gateway half) ---
    path("terminal/<str:symbol>", views_pages.terminal, name="terminal"),
]
