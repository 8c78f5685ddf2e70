"""Deterministic snapshots from hlsim's MarketEngine (no sockets): what ingest would write to hot state, built
straight from the seeded generator. Shared by the pipeline/sanity tests and bench/bench_pipeline.py."""

from __future__ import annotations

from typing import Any

from hlsim.market import MarketEngine
from hypersentry.contracts.snapshot import SymbolSnapshot

BASE_MS = 1_763_779_200_000
TICKS_PER_ROUND = 2  # one tick = 100 ms simulated → a snapshot every 200 ms


class SimFeed:
    def __init__(self, *, seed: int, coins: tuple[str, ...] | None = None, book_levels: int = 20) -> None:
        self.market = MarketEngine(seed=seed)
        self.coins = tuple(coins or self.market.state.keys())
        self.levels = book_levels
        self._trades: dict[str, list[dict[str, Any]]] = {c: [] for c in self.coins}
        self.liquidations: dict[str, list[dict[str, Any]]] = {c: [] for c in self.coins}

    @property
    def now_ms(self) -> int:
        return BASE_MS + self.market.sim_ms

    def step(self, ticks: int = TICKS_PER_ROUND) -> None:
        for _ in range(ticks):
            ev = self.market.step()
            for t in ev.trades:
                if t.coin in self._trades:
                    self._trades[t.coin].append(
                        {
                            "px": f"{t.px:.6g}",
                            "sz": f"{t.sz:.6g}",
                            "side": t.side,
                            "time": BASE_MS + t.sim_ms,
                            "tid": t.tid,
                            "hash": t.hash,
                        }
                    )
            for liq in ev.liquidations:
                if liq.coin in self.liquidations:
                    side = "long" if liq.side == "A" else "short"
                    self.liquidations[liq.coin].append(
                        {"side": side, "time": BASE_MS + liq.sim_ms, "notional": liq.ntl}
                    )
        for c in self.coins:
            self._trades[c] = self._trades[c][-40:]

    def snapshot(self, coin: str) -> SymbolSnapshot:
        cs = self.market.state[coin]
        now = self.now_ms
        mid = self.market.mid(coin)
        book = {
            "bids": [[f"{px:.6g}", f"{sz:.6g}"] for px, sz, _ in cs.book.bids[: self.levels]],
            "asks": [[f"{px:.6g}", f"{sz:.6g}"] for px, sz, _ in cs.book.asks[: self.levels]],
        }
        trades = list(reversed(self._trades[coin][-20:]))  # newest first, like ingest's snapshot
        return SymbolSnapshot(
            symbol=coin.upper(),
            price=f"{mid:.6g}",
            price_ts=now,
            book=book,
            book_ts=BASE_MS + cs.book.sim_ms,
            trades=trades,
            trades_ts=now,
            oi_total=cs.oi * mid,
            oi_hl=cs.oi * mid,
            oi_ts=now,
            funding_rate=self.market.funding_rate(coin),
            funding_ts=now,
            mark_px=f"{mid:.6g}",
            updated_at=now,
        )

    def snapshots(self) -> list[SymbolSnapshot]:
        return [self.snapshot(c) for c in self.coins]


class MemoryBroadcaster:
    """Captures what the pipeline publishes (no sockets): the bench's and tests' stand-in for realtime."""

    hub = None

    def __init__(self) -> None:
        self.public: list[tuple[str, str, str, str]] = []
        self.private: list[tuple[int, str, dict[str, Any]]] = []

    async def publish(self, *, channel: str, symbol: str, text: str, event_type: str = "") -> None:
        self.public.append((channel, symbol, event_type, text))

    async def publish_private(
        self, *, user_id: int, event_type: str, data: dict[str, Any], symbol: str = "*", source: str = ""
    ) -> int:
        self.private.append((user_id, event_type, data))
        return len(self.private)
