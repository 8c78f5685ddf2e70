"""Ingest metrics (architecture seed §14): declared once, labelled children cached off the hot path."""

from __future__ import annotations

from functools import cache
from typing import Any

from kernel.metrics import Counter, Gauge, Histogram

MESSAGES_IN = Counter("hs_ingest_messages_total", "Venue WS frames received by channel", ["channel"])
REJECTED = Counter("hs_ingest_rejected_total", "Venue payloads rejected by the quality guards", ["reason"])
RECONNECTS = Counter("hs_ingest_reconnects_total", "Venue WS reconnects", ["source"])
STALLS = Counter("hs_ingest_stalls_total", "Silent venue streams detected (connection recycled)", ["source"])
BOOK_AGE = Gauge("hs_ingest_book_age_seconds", "Age of the newest valid book per live symbol", ["symbol"])
CONNECTED = Gauge("hs_ingest_connected", "1 when the venue WS is connected", ["source"])
SUBSCRIBED = Gauge("hs_ingest_subscribed_symbols", "Symbols subscribed on the venue WS")
PUBLISHED = Counter("hs_ingest_published_total", "agg_update envelopes published", ["kind"])
PUBLISH_LATENCY = Histogram(
    "hs_ingest_publish_latency_seconds",
    "Venue frame receipt to the end of its conflated publish",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1, 2.5),
)


@cache
def messages_in(channel: str) -> Any:
    return MESSAGES_IN.labels(channel)


@cache
def rejected(reason: str) -> Any:
    return REJECTED.labels(reason)
