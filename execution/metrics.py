"""Execution metrics (prometheus_client through hypersentry.metrics)."""

from __future__ import annotations

from hypersentry.metrics import Counter, Gauge, Histogram

SUBMIT_TO_ACK = Histogram(
    "hs_execution_submit_to_ack_seconds",
    "Order action sent to the venue's answer",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
RELAY_OVERHEAD = Histogram(
    "hs_execution_relay_overhead_seconds",
    "Request in to venue call out (risk checks, persistence, audit, signing)",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
)
ORDERS = Counter("hs_execution_orders_total", "Order state transitions", ["state"])
REJECTIONS = Counter("hs_execution_rejections_total", "Orders refused before or by the venue", ["reason"])
BREAKER_STATE = Gauge("hs_execution_breaker_tripped", "1 when a circuit breaker of this kind is tripped", ["kind"])
KILL_SWITCH = Gauge("hs_execution_kill_switch_engaged", "1 while the kill switch is engaged")
RECONCILE_DISCREPANCIES = Counter(
    "hs_execution_reconcile_discrepancies_total", "Differences fixed by reconciliation", ["kind"]
)
IDEMPOTENCY = Counter("hs_execution_idempotency_total", "Idempotency outcomes", ["outcome"])
