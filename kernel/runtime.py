"""Process-level runtime tuning shared by every long-running entry point (serve, workers, benchmarks)."""

from __future__ import annotations

import gc
import logging

logger = logging.getLogger(__name__)

# Young-generation threshold. The default (700) makes the cyclic collector run every few hundred allocations;
# the streaming paths (ingest, alpha, fan-out) allocate short-lived dicts by the thousand per second, which
# are freed by reference counting anyway, so scanning that often is wasted work.
GEN0_THRESHOLD = 50_000


def tune_gc() -> None:
    """Freeze everything allocated during start-up (Django, apps, settings: ~150k long-lived objects) out of
    the collector's view and collect young garbage less often. Call once, after start-up imports."""
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, gen1, gen2)
    logger.debug("gc tuned", extra={"frozen": gc.get_freeze_count(), "threshold": gc.get_threshold()})
