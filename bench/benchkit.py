"""What the alpha benchmarks share: their common flags, the nearest-rank percentile, and the optional profile.
(Not a `bench_*.py`: `make bench` runs those.)"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import math
import pstats
from collections.abc import Iterator


def parser(*, seconds: float = 20.0) -> argparse.ArgumentParser:
    """--symbols (80), --seconds and --profile; a benchmark adds its own flags."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--symbols", type=int, default=80)
    ap.add_argument("--seconds", type=float, default=seconds)
    ap.add_argument("--profile", action="store_true", help="print the 25 costliest functions (own time)")
    return ap


def percentile(values: list[float], fraction: float) -> float:
    """Nearest rank: the smallest value with at least `fraction` (0-1) of the values at or below it."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(math.ceil(fraction * len(ordered))) - 1)]


@contextlib.contextmanager
def profiled(enabled: bool) -> Iterator[None]:
    if not enabled:
        yield
        return
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        yield
    finally:
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
