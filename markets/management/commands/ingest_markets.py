"""`manage.py ingest_markets`: the market ingest worker of split topologies (same code as the embedded one)."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from kernel.runtime import tune_gc
from markets.ingest import run_ingest


class Command(BaseCommand):
    help = "Run market ingest: venue WS → normalised snapshots in the hot state → agg_update publish."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--top-n", type=int, default=None, help="override AGGREGATOR_AUTO_SUBSCRIBE_TOP_N")

    def handle(self, *args: Any, **options: Any) -> None:
        top_n = options["top_n"]
        if top_n is not None and not 0 <= top_n <= 1000:
            raise CommandError(f"--top-n {top_n} is out of range 0-1000")
        overrides = {"top_n": top_n} if top_n is not None else {}
        tune_gc()
        asyncio.run(self._main(overrides))

    async def _main(self, overrides: dict[str, Any]) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run_ingest(stop, **overrides)
