"""Prometheus metrics: one registry, multi-process ready (PROMETHEUS_MULTIPROC_DIR for gunicorn-style fleets).

Each app declares its metrics next to its code with these helpers so names stay consistent.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as _mp

__all__ = ["CONTENT_TYPE_LATEST", "Counter", "Gauge", "Histogram", "render_latest"]

HTTP_REQUESTS = Counter("hs_http_requests_total", "HTTP requests by method and status class", ["method", "status"])
COMPONENT_ERRORS = Counter("hs_component_errors_total", "Errors caught at worker loop boundaries", ["component"])
COMPONENT_LOOPS = Counter("hs_component_loops_total", "Completed worker loop iterations", ["component"])


def render_latest() -> bytes:
    """Render all metrics; in multi-process mode aggregate every process's files."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        _mp.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)
