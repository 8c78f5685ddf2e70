"""The venue simulator as a component of the one-process topology (hlsim itself knows nothing of Django)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from urllib.parse import urlsplit

from django.conf import settings

from hlsim import SimConfig, Simulator
from kernel import components

logger = logging.getLogger(__name__)


def simulator_address() -> tuple[str, int]:
    """Where the embedded simulator binds: the host and port of HYPERSENTRY_VENUE_URL."""
    parts = urlsplit(settings.HYPERSENTRY_VENUE_URL)
    return parts.hostname or "127.0.0.1", parts.port or 3001


async def run_embedded(stop: asyncio.Event) -> None:
    host, port = simulator_address()
    sim = Simulator(
        SimConfig(
            host=host,
            port=port,
            seed=settings.HLSIM_SEED,
            speed=settings.HLSIM_SPEED,
            default_balance=settings.HLSIM_PAPER_BALANCE,
        )
    )
    await sim.start()
    logger.info("venue simulator listening", extra={"component": "hlsim", "url": sim.base_url})
    try:
        while not stop.is_set():
            components.heartbeat("hlsim", detail=sim.base_url)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 2.0)
    finally:
        await sim.stop()
