"""The REST tests' hot state, seeded through its interface (whatever backend the settings give)."""

from __future__ import annotations

import asyncio
from typing import Any

from kernel.contracts.snapshot import SymbolSnapshot
from markets.hotstate import get_hot_state


def seed(*snaps: SymbolSnapshot, universe: list[dict[str, Any]] | None = None) -> None:
    async def _go() -> None:
        hot = get_hot_state()
        await hot.put_many(list(snaps))
        if universe is not None:
            await hot.set_universe(universe)
        if hasattr(hot, "aclose"):
            await hot.aclose()

    asyncio.run(_go())


UNIVERSE = [
    {"symbol": "BTC", "coin": "BTC", "sz_decimals": 5, "max_leverage": 40, "day_ntl_vlm": 1e9},
    {"symbol": "ETH", "coin": "ETH", "sz_decimals": 4, "max_leverage": 25, "day_ntl_vlm": 5e8},
    {"symbol": "KPEPE", "coin": "kPEPE", "sz_decimals": 0, "max_leverage": 10, "day_ntl_vlm": 1e7},
]
