"""Execution metrics (prometheus_client through kernel.metrics).

The kill switch and the breakers are state every process shares, so their metrics are read from the database at
scrape time (`ControlsCollector`) instead of being gauges set by whichever process last touched them: with
PROMETHEUS_MULTIPROC_DIR, a gauge set to 1 by an exited `manage.py killswitch on` was still merged into /metrics
after an admin lifted the switch from another process.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from django.db import DatabaseError
from prometheus_client.core import GaugeMetricFamily

from execution.models import BreakerKind, CircuitBreaker, TradingControls
from kernel.metrics import Counter, Histogram, register_state_collector

logger = logging.getLogger(__name__)

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
RECONCILE_DISCREPANCIES = Counter(
    "hs_execution_reconcile_discrepancies_total", "Differences fixed by reconciliation", ["kind"]
)
IDEMPOTENCY = Counter("hs_execution_idempotency_total", "Idempotency outcomes", ["outcome"])

KILL_SWITCH_METRIC = "hs_execution_kill_switch_engaged"
BREAKER_METRIC = "hs_execution_breaker_tripped"


def kill_switch_engaged() -> bool:
    """The switch as every process sees it. Read-only: a missing controls row means never engaged."""
    engaged = TradingControls.objects.filter(pk=1).values_list("kill_switch_engaged", flat=True).first()
    return bool(engaged)


def breaker_kinds_tripped() -> frozenset[str]:
    """Kinds with at least one tripped breaker, global or any user's (half-open ones included: still tripped)."""
    return frozenset(CircuitBreaker.objects.filter(tripped=True).values_list("kind", flat=True).distinct())


def _kill_switch_family(value: float | None) -> GaugeMetricFamily:
    family = GaugeMetricFamily(KILL_SWITCH_METRIC, "1 while the kill switch is engaged (read from the database)")
    if value is not None:
        family.add_metric([], value)
    return family


def _breaker_family(tripped: frozenset[str] | None) -> GaugeMetricFamily:
    family = GaugeMetricFamily(
        BREAKER_METRIC, "1 when a circuit breaker of this kind is tripped (read from the database)", labels=["kind"]
    )
    if tripped is not None:
        for kind in BreakerKind.values:
            family.add_metric([kind], 1.0 if kind in tripped else 0.0)
    return family


class ControlsCollector:
    """The kill switch and breakers at scrape time, from their rows."""

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield _kill_switch_family(None)
        yield _breaker_family(None)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            engaged, tripped = kill_switch_engaged(), breaker_kinds_tripped()
        except DatabaseError:
            # The scrape boundary: without the database the truth is unknown, so the samples are left out (an
            # `absent()` alert fires) rather than reported as 0, and every other metric is still exported.
            logger.warning("kill switch and breaker metrics skipped: database unavailable", exc_info=True)
            yield from self.describe()
            return
        yield _kill_switch_family(1.0 if engaged else 0.0)
        yield _breaker_family(tripped)


register_state_collector(ControlsCollector())
