"""Deterministic snapshots from hlsim's MarketEngine (no sockets): what ingest would write to hot state, built
straight from the seeded generator. The alpha pipeline's simulated feed for bench/bench_pipeline.py and the
pipeline/sanity tests (tests/alpha/), with a broadcaster that only records what the pipeline publishes.

By default every snapshot is stamped "now" in every field (each one is new input). With `venue_cadence=True`
the fields carry the venue's cadence instead, as ingest's snapshot does: the price changes with allMids (every
`MIDS_EVERY_TICKS`), the book when the venue re-quotes it, OI/funding with the asset contexts
(`CTX_EVERY_TICKS`), trades when there are trades, and `updated_at` is the newest of those stamps, so a symbol
with nothing new keeps its `updated_at` and the pipeline skips it."""

from __future__ import annotations

from typing import Any

from hlsim.market import MarketEngine
from hlsim.universe import DEFAULT_COINS
from kernel.contracts.snapshot import SymbolSnapshot

BASE_MS = 1_763_779_200_000
TICKS_PER_ROUND = 2  # one tick = 100 ms simulated → a snapshot every 200 ms


class SimFeed:
    def __init__(
        self,
        *,
        seed: int,
        coins: tuple[str, ...] | None = None,
        book_levels: int = 20,
        venue_cadence: bool = False,
        market: MarketEngine | None = None,
    ) -> None:
        # Only the coins up to the last one asked for: each coin has its own RNG stream and keeps its index (the
        # book re-quote phase), so the listed coins' paths are the same as in the full universe, for less work.
        last = max((i for i, spec in enumerate(DEFAULT_COINS) if spec.name in (coins or ())), default=-1)
        subset = DEFAULT_COINS[: last + 1]
        if not coins or not set(coins) <= {spec.name for spec in subset}:
            subset = DEFAULT_COINS
        self.market = market or MarketEngine(seed=seed, coins=subset)
        self.coins = tuple(coins or self.market.state.keys())
        self.levels = book_levels
        self.venue_cadence = venue_cadence
        self._trades: dict[str, list[dict[str, Any]]] = {c: [] for c in self.coins}
        self.liquidations: dict[str, list[dict[str, Any]]] = {c: [] for c in self.coins}
        # venue cadence: (ts, mid) of the last allMids and (ts, oi, funding) of the last asset context per coin
        self._mids: dict[str, tuple[int, float]] = {}
        self._ctx: dict[str, tuple[int, float, float]] = {}
        self._books: dict[str, tuple[Any, dict[str, list[list[str]]]]] = {}
        if venue_cadence:
            self._venue_fields()

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
            if self.venue_cadence:
                self._venue_fields(mids=ev.mids, ctxs=ev.ctxs)
        for c in self.coins:
            self._trades[c] = self._trades[c][-40:]

    def _venue_fields(self, *, mids: bool = True, ctxs: bool = True) -> None:
        now = self.now_ms
        for c in self.coins:
            if mids or c not in self._mids:
                self._mids[c] = (now, self.market.mid(c))
            if ctxs or c not in self._ctx:
                mid = self.market.mid(c)
                self._ctx[c] = (now, self.market.state[c].oi * mid, self.market.funding_rate(c))

    def snapshot(self, coin: str) -> SymbolSnapshot:
        if self.venue_cadence:
            return self._cadence_snapshot(coin)
        cs = self.market.state[coin]
        now = self.now_ms
        mid = self.market.mid(coin)
        book = self._book(coin)
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

    def _book(self, coin: str) -> dict[str, list[list[str]]]:
        """The wire book, formatted once per venue book (snapshots between re-quotes share it; nobody mutates it)."""
        book = self.market.state[coin].book
        cached = self._books.get(coin)
        if cached is not None and cached[0] is book:
            return cached[1]
        wire = {
            "bids": [[f"{px:.6g}", f"{sz:.6g}"] for px, sz, _ in book.bids[: self.levels]],
            "asks": [[f"{px:.6g}", f"{sz:.6g}"] for px, sz, _ in book.asks[: self.levels]],
        }
        self._books[coin] = (book, wire)
        return wire

    def _cadence_snapshot(self, coin: str) -> SymbolSnapshot:
        price_ts, mid = self._mids[coin]
        ctx_ts, oi, funding = self._ctx[coin]
        book_ts = BASE_MS + self.market.state[coin].book.sim_ms
        trades = list(reversed(self._trades[coin][-20:]))
        trades_ts = trades[0]["time"] if trades else None
        stamps = [t for t in (price_ts, book_ts, trades_ts, ctx_ts) if t is not None]
        return SymbolSnapshot(
            symbol=coin.upper(),
            price=f"{mid:.6g}",
            price_ts=price_ts,
            book=self._book(coin),
            book_ts=book_ts,
            trades=trades,
            trades_ts=trades_ts,
            oi_total=oi,
            oi_hl=oi,
            oi_ts=ctx_ts,
            funding_rate=funding,
            funding_ts=ctx_ts,
            mark_px=f"{mid:.6g}",
            updated_at=max(stamps),
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
        self,
        *,
        user_id: int,
        event_type: str,
        data: dict[str, Any],
        symbol: str = "*",
        source: str = "",
        seq: int = 0,
    ) -> int:
        self.private.append((user_id, event_type, data))
        return len(self.private)
