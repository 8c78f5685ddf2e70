"""Prometheus metrics of the alpha pipeline and autonomous execution."""

from __future__ import annotations

from kernel.metrics import Counter, Gauge, Histogram

COMPUTE_SECONDS = Histogram(
    "hs_alpha_compute_seconds",
    "Per-symbol history update + analyze + encode",
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1),
)
ROUND_SECONDS = Histogram(
    "hs_alpha_round_seconds",
    "One pipeline round (all symbols)",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.4, 1.0, 2.5),
)
QUEUE_DEPTH = Gauge("hs_alpha_queue_depth", "Symbols with new inputs waiting at the start of a round")
DROPPED = Counter("hs_alpha_dropped_updates_total", "Symbol updates skipped to stay current", ["reason"])
PUBLISHED = Counter("hs_alpha_published_total", "Envelopes published by the alpha pipeline", ["event_type"])
AUTO_TRADES = Counter("hs_alpha_auto_trades_total", "Autonomous trade attempts by outcome", ["outcome"])
