"""`python manage.py hlsim`: run the Hyperliquid-compatible paper venue (thin wrapper over hlsim.cli).

Seed, speed and paper balance default to HLSIM_SEED, HLSIM_SPEED and HLSIM_PAPER_BALANCE (as for the simulator
embedded in `serve`), so a split deployment configures its simulator from the same environment; a flag given on
the command line wins. While the simulator answers its own /info, the command records the `hlsim` heartbeat that
`/system` and `manage.py healthcheck hlsim` read.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from hlsim.cli import ChaosOptions, CliError, add_arguments, config_from_options, serve
from hlsim.server import SimConfig
from kernel import components

logger = logging.getLogger(__name__)

HEARTBEAT_SEC = 2.0
PROBE_TIMEOUT_SEC = 3.0


async def _answers(url: str) -> bool:
    """The simulator's serving loop answers (listening alone is not enough). Its /healthz sits outside the per-IP
    rate limit: probing /info every 2 s would spend 600 weight a minute of the address the app itself trades from."""
    timeout = aiohttp.ClientTimeout(total=PROBE_TIMEOUT_SEC)
    async with aiohttp.ClientSession(timeout=timeout) as http, http.get(f"{url}/healthz") as r:
        return r.status == 200


async def _heartbeat(config: SimConfig) -> None:
    """Record the heartbeat each round the simulator answered; a failing probe or cache write is logged and the
    next round tries again (the heartbeat then goes stale, which is what the health check reports)."""
    # Bound to every interface (a container) or one address: probe it the way a local client reaches it.
    host = "127.0.0.1" if config.host in ("0.0.0.0", "") else config.host
    url = f"http://{host}:{config.port}"
    record = sync_to_async(components.heartbeat, thread_sensitive=False)
    while True:
        await asyncio.sleep(HEARTBEAT_SEC)
        try:
            if await _answers(url):
                await record("hlsim", detail=url, min_interval=0.0)
        except Exception:
            logger.warning("hlsim heartbeat not recorded", extra={"component": "hlsim", "url": url}, exc_info=True)


class Command(BaseCommand):
    help = "Serve the hlsim Hyperliquid simulator: POST /info, POST /exchange and WS /ws on one port."

    def add_arguments(self, parser: CommandParser) -> None:
        add_arguments(
            parser,
            seed=settings.HLSIM_SEED,
            speed=settings.HLSIM_SPEED,
            balance=str(settings.HLSIM_PAPER_BALANCE),
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            config, chaos = config_from_options(options)
        except CliError as exc:
            raise CommandError(str(exc)) from exc
        asyncio.run(self._main(config, chaos))

    async def _main(self, config: SimConfig, chaos: ChaosOptions) -> None:
        beat = asyncio.create_task(_heartbeat(config), name="hlsim-heartbeat")
        try:
            await serve(config, chaos)
        finally:
            beat.cancel()
