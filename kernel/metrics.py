"""Prometheus metrics: one registry, multi-process ready (PROMETHEUS_MULTIPROC_DIR for fleets of processes).

Each app declares its metrics next to its code with these helpers so names stay consistent, in a module named
`metrics` (the renderer imports every app's `metrics` module, so what it declares is always exported).

Multi-process mode (PROMETHEUS_MULTIPROC_DIR): every process writes its samples to files in that directory and
`/metrics` merges them. Two rules keep the merge truthful:

* A process's gauges die with it. `Gauge` defaults to a "live" mode, and every process marks itself dead when it
  exits (atexit here; Celery pool children in hypersentry.celery), which deletes its live-gauge files. Counters
  and histograms stay: their totals must not drop when a process goes.
* State shared by every process (the kill switch, breakers) is not a gauge at all: whichever process last set it
  would win, even after it exited. It is a `StateCollector` that reads the source of truth at scrape time.
"""

from __future__ import annotations

import atexit
import functools
import os
from collections.abc import Iterable
from typing import Any, Literal, Protocol

# prometheus_client picks multi-process mode at import when the variable merely exists. Empty (as `.env.example`
# ships it) means off here: otherwise every process would write its files into the working directory, and
# nothing would ever read or clean them. This module is the first to import prometheus_client (the package's
# __init__ loads Celery, which loads this).
if os.environ.get("PROMETHEUS_MULTIPROC_DIR") == "":
    del os.environ["PROMETHEUS_MULTIPROC_DIR"]

import prometheus_client
from django.utils.module_loading import autodiscover_modules
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as _mp
from prometheus_client.metrics_core import Metric

__all__ = [
    "CONTENT_TYPE_LATEST",
    "Counter",
    "Gauge",
    "Histogram",
    "StateCollector",
    "mark_process_dead",
    "register_state_collector",
    "render_latest",
]

GaugeMode = Literal[
    "liveall", "livesum", "livemax", "livemin", "livemostrecent", "all", "sum", "max", "min", "mostrecent"
]


class Gauge(prometheus_client.Gauge):
    """A gauge whose multi-process samples leave with their process.

    The default "liveall" keeps one series per live process (a `pid` label), as the library's default "all" does,
    but a dead process's series are deleted instead of being reported forever. Pass "livesum" (a fleet total),
    "livemax" or "livemin" where one figure across processes means more."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Iterable[str] = (),
        *,
        multiprocess_mode: GaugeMode = "liveall",
        **kwargs: Any,
    ) -> None:
        super().__init__(name, documentation, labelnames, multiprocess_mode=multiprocess_mode, **kwargs)


COMPONENT_ERRORS = Counter("hs_component_errors_total", "Errors caught at worker loop boundaries", ["component"])
COMPONENT_LOOPS = Counter("hs_component_loops_total", "Completed worker loop iterations", ["component"])


class StateCollector(Protocol):
    """Metrics computed at scrape time from a source of truth every process shares (the database)."""

    def collect(self) -> Iterable[Metric]: ...

    def describe(self) -> Iterable[Metric]: ...


# Apart from REGISTRY on purpose: reading REGISTRY (`get_sample_value`, any exporter) must not query a database.
_STATE_REGISTRY = CollectorRegistry()


def register_state_collector(collector: StateCollector) -> None:
    """Export `collector` from every process that renders /metrics, in single- and multi-process mode."""
    _STATE_REGISTRY.register(collector)


def multiprocess_dir() -> str:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")


def mark_process_dead(pid: int) -> None:
    """Delete the live-gauge files of `pid` (it exited); counters and histograms stay in the merge."""
    path = multiprocess_dir()
    if path and os.path.isdir(path):
        _mp.mark_process_dead(pid, path)


def _mark_this_process_dead() -> None:
    # The pid is read at exit, not at import: a forked child that exits through Python must mark itself, never
    # the parent it was forked from.
    mark_process_dead(os.getpid())


atexit.register(_mark_this_process_dead)


@functools.cache
def _discover_metrics_modules() -> None:
    # Once per process: each app's `metrics` module declares its metrics and registers its state collectors.
    autodiscover_modules("metrics")


def render_latest() -> bytes:
    """Render all metrics (in multi-process mode merged from every process's files), then the state collectors'."""
    _discover_metrics_modules()
    if multiprocess_dir():
        registry = CollectorRegistry()
        _mp.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    return generate_latest(registry) + generate_latest(_STATE_REGISTRY)
