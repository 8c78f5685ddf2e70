"""Deterministic market generator: a pure step function over seeded RNGs and simulated time.

Nothing here reads the wall clock or depends on user orders: ``MarketEngine(seed=1).step()`` repeated N times
yields the same prices, sizes, books, OI and funding for the same seed. The server stamps wall-clock times on
the wire; the engine only knows simulated milliseconds since its start (``sim_ms``).
"""

from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import dataclass, field

from hlsim.ticks import price_decimals, round_px
from hlsim.universe import DEFAULT_COINS, CoinSpec

TICK_MS = 100
BOOK_EVERY_TICKS = 5  # about one l2Book per coin every 0.5 s of simulated time
MIDS_EVERY_TICKS = 5
CTX_EVERY_TICKS = 10
FUNDING_EVERY_MS = 3_600_000
BOOK_LEVELS = 24
SECONDS_PER_YEAR = 365 * 86400
INTEREST_8H = 0.0001  # the venue's fixed 0.01% per 8 h interest component


@dataclass(frozen=True)
class RegimeParams:
    drift: float  # in units of per-second sigma, per second
    vol: float  # volatility multiplier
    rate: float  # trade-rate multiplier
    buy: float  # probability a trade is an aggressive buy
    oi: float  # OI change per traded unit (+ opening, - closing/liquidations)
    premium: float  # bias of the perp premium over the oracle
    sweep: float  # per-tick probability of a sweep
    absorb: float  # per-tick probability of passive absorption
    liq: float  # per-tick probability of a liquidation burst
    duration: tuple[int, int]  # seconds


REGIMES: dict[str, RegimeParams] = {
    "range": RegimeParams(0.0, 0.6, 1.0, 0.5, 0.02, 0.0, 0.002, 0.015, 0.0, (120, 600)),
    "trend_up": RegimeParams(0.35, 1.0, 1.6, 0.62, 0.45, 0.0006, 0.012, 0.003, 0.0, (120, 600)),
    "trend_down": RegimeParams(-0.35, 1.0, 1.6, 0.38, 0.45, -0.0006, 0.012, 0.003, 0.0, (120, 600)),
    "compression": RegimeParams(0.0, 0.25, 0.45, 0.5, 0.08, 0.0, 0.0005, 0.01, 0.0, (90, 300)),
    "expansion_up": RegimeParams(1.0, 2.5, 3.0, 0.66, 0.6, 0.001, 0.05, 0.0, 0.0, (30, 120)),
    "expansion_down": RegimeParams(-1.0, 2.5, 3.0, 0.34, 0.6, -0.001, 0.05, 0.0, 0.0, (30, 120)),
    "squeeze_up": RegimeParams(2.0, 2.2, 4.0, 0.78, -0.9, 0.0025, 0.04, 0.0, 0.06, (15, 60)),
    "cascade_down": RegimeParams(-2.2, 2.6, 4.0, 0.22, -0.9, -0.003, 0.04, 0.0, 0.07, (15, 60)),
}

TRANSITIONS: dict[str, tuple[tuple[str, float], ...]] = {
    "range": (
        ("compression", 0.35),
        ("trend_up", 0.2),
        ("trend_down", 0.2),
        ("squeeze_up", 0.1),
        ("cascade_down", 0.15),
    ),
    "compression": (("expansion_up", 0.5), ("expansion_down", 0.5)),
    "expansion_up": (("trend_up", 0.5), ("range", 0.3), ("squeeze_up", 0.2)),
    "expansion_down": (("trend_down", 0.5), ("range", 0.3), ("cascade_down", 0.2)),
    "trend_up": (("range", 0.45), ("squeeze_up", 0.2), ("cascade_down", 0.15), ("compression", 0.2)),
    "trend_down": (("range", 0.45), ("cascade_down", 0.25), ("squeeze_up", 0.1), ("compression", 0.2)),
    "squeeze_up": (("range", 0.5), ("trend_up", 0.3), ("trend_down", 0.2)),
    "cascade_down": (("range", 0.5), ("trend_down", 0.3), ("trend_up", 0.2)),
}


@dataclass(slots=True)
class MarketTrade:
    coin: str
    side: str  # aggressor: "B" buy, "A" sell
    px: float
    sz: float
    tid: int
    hash: str
    sim_ms: int
    liquidation: bool = False


@dataclass(slots=True)
class Book:
    coin: str
    bids: list[tuple[float, float, int]]  # (px, sz, n), best first
    asks: list[tuple[float, float, int]]
    sim_ms: int
    seq: int


@dataclass(slots=True)
class Liquidation:
    coin: str
    side: str  # side of the forced orders ("A" = longs sold out)
    ntl: float
    sim_ms: int


@dataclass(slots=True)
class StepEvents:
    sim_ms: int
    trades: list[MarketTrade] = field(default_factory=list)
    books: list[str] = field(default_factory=list)
    mids: bool = False
    ctxs: bool = False
    funding: list[tuple[str, float]] = field(default_factory=list)
    liquidations: list[Liquidation] = field(default_factory=list)


@dataclass(slots=True)
class CoinState:
    spec: CoinSpec
    rng: random.Random
    index: int
    log_mid: float
    anchor: float
    oracle: float
    regime: str
    regime_left: int  # ticks
    oi: float  # in coin units
    oi_floor: float
    premium: float
    premium_ema: float
    day_ntl_vlm: float
    prev_day_px: float
    sigma_s: float
    book: Book
    last_px: float
    recent: deque = field(default_factory=lambda: deque(maxlen=50))
    depth: list[float] = field(default_factory=list)
    depth_regime: str = ""
    counts: list[int] = field(default_factory=list)
    funding_history: list[tuple[int, float, float]] = field(default_factory=list)

    @property
    def mid(self) -> float:
        return math.exp(self.log_mid)


def _poisson(rng: random.Random, lam: float) -> int:
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


class MarketEngine:
    """Seeded market generator; call ``step()`` once per ``TICK_MS`` of simulated time."""

    def __init__(self, *, seed: int, coins: tuple[CoinSpec, ...] = DEFAULT_COINS) -> None:
        self.seed = seed
        self.coins = coins
        self.tick = 0
        self.sim_ms = 0
        self.state: dict[str, CoinState] = {}
        for index, spec in enumerate(coins):
            self.state[spec.name] = self._init_coin(spec=spec, index=index)

    def _init_coin(self, *, spec: CoinSpec, index: int) -> CoinState:
        # One RNG per coin (string seeds hash with SHA-512, stable across processes) so a coin's stream does
        # not depend on which other symbols are configured.
        rng = random.Random(f"hlsim:{self.seed}:{spec.name}")
        px = round_px(px=spec.start_px * math.exp(rng.gauss(0.0, 0.02)), sz_decimals=spec.sz_decimals)
        regime = rng.choice(("range", "trend_up", "trend_down", "compression"))
        cs = CoinState(
            spec=spec,
            rng=rng,
            index=index,
            log_mid=math.log(px),
            anchor=math.log(px),
            oracle=px,
            regime=regime,
            regime_left=self._duration(rng, regime),
            oi=spec.oi_usd / px,
            oi_floor=0.2 * spec.oi_usd / px,
            premium=0.0,
            premium_ema=0.0,
            day_ntl_vlm=spec.oi_usd * (0.8 + 0.4 * rng.random()),
            prev_day_px=round_px(px=px * math.exp(rng.gauss(0.0, 0.03)), sz_decimals=spec.sz_decimals),
            sigma_s=spec.ann_vol / math.sqrt(SECONDS_PER_YEAR),
            book=Book(spec.name, [], [], 0, 0),
            last_px=px,
        )
        self._rebuild_book(cs)
        return cs

    @staticmethod
    def _duration(rng: random.Random, regime: str) -> int:
        lo, hi = REGIMES[regime].duration
        return int(rng.uniform(lo, hi) * 1000 / TICK_MS)

    # ----- public read API -------------------------------------------------------------------------------
    def regime(self, coin: str) -> str:
        return self.state[coin].regime

    def regimes(self) -> dict[str, str]:
        return {c: s.regime for c, s in self.state.items()}

    def mid(self, coin: str) -> float:
        cs = self.state[coin]
        bid, ask = cs.book.bids[0][0], cs.book.asks[0][0]
        return (bid + ask) / 2

    def book(self, coin: str) -> Book:
        return self.state[coin].book

    def recent_trades(self, coin: str) -> list[MarketTrade]:
        return list(self.state[coin].recent)

    def funding_rate(self, coin: str) -> float:
        return self._funding_rate(self.state[coin])

    # ----- stepping ----------------------------------------------------------------------------------------
    def step(self) -> StepEvents:
        """Advance simulated time by one tick and return what happened during it."""
        self.tick += 1
        self.sim_ms = self.tick * TICK_MS
        ev = StepEvents(sim_ms=self.sim_ms)
        for cs in self.state.values():
            self._step_coin(cs, ev)
        ev.mids = self.tick % MIDS_EVERY_TICKS == 0
        ev.ctxs = self.tick % CTX_EVERY_TICKS == 0
        if self.sim_ms % FUNDING_EVERY_MS == 0:
            for coin, cs in self.state.items():
                rate = self._funding_rate(cs)
                cs.funding_history.append((self.sim_ms, rate, cs.premium_ema))
                ev.funding.append((coin, rate))
        return ev

    def _step_coin(self, cs: CoinState, ev: StepEvents) -> None:
        rng = cs.rng
        cs.regime_left -= 1
        if cs.regime_left <= 0:
            self._switch_regime(cs)
        p = REGIMES[cs.regime]
        dt = TICK_MS / 1000.0
        drift = p.drift * cs.sigma_s
        if cs.regime in ("range", "compression"):
            drift -= 0.02 * (cs.log_mid - cs.anchor)  # mean reversion inside a range
        cs.log_mid += drift * dt + p.vol * cs.sigma_s * math.sqrt(dt) * rng.gauss(0.0, 1.0)
        dirty = False
        n = _poisson(rng, 1.5 * p.rate * dt)
        for _ in range(n):
            self._random_trade(cs, p, ev)
        if rng.random() < p.sweep:
            self._sweep(cs, p, ev, liquidation=False)
            dirty = True
        if p.absorb and rng.random() < p.absorb:
            self._absorption(cs, ev)
        if p.liq and rng.random() < p.liq:
            self._sweep(cs, p, ev, liquidation=True)
            dirty = True
        cs.oracle += (cs.mid - cs.oracle) * 0.02
        cs.premium = (cs.mid - cs.oracle) / cs.oracle + p.premium
        cs.premium_ema += (cs.premium - cs.premium_ema) * 0.002
        if dirty or (self.tick + cs.index) % BOOK_EVERY_TICKS == 0:
            self._rebuild_book(cs)
            ev.books.append(cs.spec.name)

    def _switch_regime(self, cs: CoinState) -> None:
        rng = cs.rng
        roll, acc = rng.random(), 0.0
        choices = TRANSITIONS[cs.regime]
        nxt = choices[-1][0]
        for name, weight in choices:
            acc += weight
            if roll < acc:
                nxt = name
                break
        cs.regime = nxt
        cs.regime_left = self._duration(rng, nxt)
        cs.anchor = cs.log_mid

    # ----- flow ---------------------------------------------------------------------------------------------
    def _quote(self, cs: CoinState) -> tuple[float, float, float]:
        mid = cs.mid
        d = price_decimals(px=mid, sz_decimals=cs.spec.sz_decimals)
        tick = 10.0**-d
        vol = REGIMES[cs.regime].vol
        spread_ticks = max(1, round(mid * 0.6e-4 * vol / tick))
        bid = round(math.floor((mid - spread_ticks * tick / 2) / tick + 1e-9) * tick, d)
        ask = round(bid + spread_ticks * tick, d)
        return bid, ask, tick

    def _size(self, cs: CoinState, px: float, notional: float) -> float:
        d = cs.spec.sz_decimals
        return max(round(notional / px, d), 10.0**-d)

    def _emit(self, cs: CoinState, ev: StepEvents, side: str, px: float, sz: float, oi_bias: float, liq: bool) -> None:
        rng = cs.rng
        trade = MarketTrade(
            coin=cs.spec.name,
            side=side,
            px=px,
            sz=sz,
            tid=rng.getrandbits(50),
            hash=f"0x{rng.getrandbits(256):064x}",
            sim_ms=self.sim_ms,
            liquidation=liq,
        )
        ev.trades.append(trade)
        cs.recent.append(trade)
        cs.last_px = px
        cs.day_ntl_vlm += px * sz
        cs.oi = max(cs.oi_floor, cs.oi + oi_bias * sz * (0.5 + rng.random()) + 0.05 * sz * rng.gauss(0.0, 1.0))

    def _random_trade(self, cs: CoinState, p: RegimeParams, ev: StepEvents) -> None:
        rng = cs.rng
        side = "B" if rng.random() < p.buy else "A"
        bid, ask, _ = self._quote(cs)
        px = ask if side == "B" else bid
        notional = cs.spec.liquidity * math.exp(rng.gauss(-0.7, 1.0))
        sz = self._size(cs, px, notional)
        # Aggressive flow pushes the price a little: order flow and returns stay correlated.
        impact = 0.04 * cs.sigma_s * math.sqrt(notional / cs.spec.liquidity)
        cs.log_mid += impact if side == "B" else -impact
        self._emit(cs, ev, side, px, sz, p.oi, False)

    def _sweep(self, cs: CoinState, p: RegimeParams, ev: StepEvents, *, liquidation: bool) -> None:
        """An aggressive order walking several levels (or a forced liquidation order doing the same)."""
        rng = cs.rng
        side = "B" if rng.random() < p.buy else "A"
        levels = cs.book.asks if side == "B" else cs.book.bids
        bid, ask, _ = self._quote(cs)
        top = ask if side == "B" else bid
        depth = rng.randint(3, 9 if liquidation else 7)
        total_ntl, last_px = 0.0, top
        for i, (lvl_px, lvl_sz, _) in enumerate(levels[:depth]):
            px = max(lvl_px, top) if side == "B" else min(lvl_px, top)
            sz = self._size(cs, px, lvl_sz * px * (0.6 + 0.4 * rng.random()))
            oi_bias = -1.0 if liquidation else p.oi + 0.3
            self._emit(cs, ev, side, px, sz, oi_bias, liquidation)
            total_ntl += px * sz
            last_px = px
            if i == 0 and not liquidation and rng.random() < 0.3:
                break
        cs.log_mid = math.log(last_px)
        if liquidation:
            forced = "A" if side == "A" else "B"
            ev.liquidations.append(Liquidation(cs.spec.name, forced, total_ntl, self.sim_ms))

    def _absorption(self, cs: CoinState, ev: StepEvents) -> None:
        """Aggressive orders hitting a passive wall: volume prints at one price and the price does not move."""
        rng = cs.rng
        side = "B" if rng.random() < 0.5 else "A"
        bid, ask, _ = self._quote(cs)
        px = ask if side == "B" else bid
        for _ in range(rng.randint(5, 14)):
            notional = cs.spec.liquidity * math.exp(rng.gauss(-0.3, 0.6))
            self._emit(cs, ev, side, px, self._size(cs, px, notional), 0.1, False)

    # ----- book / funding -----------------------------------------------------------------------------------
    def _rebuild_book(self, cs: CoinState) -> None:
        """Re-quote the book around the current mid; depth thins and levels spread out as volatility rises.

        Sizes live in a per-coin depth profile that is perturbed a few levels at a time (cheap and
        realistically persistent); prices are laid out on the tick grid from the current quote.
        """
        rng = cs.rng
        spec = cs.spec
        bid, ask, tick = self._quote(cs)
        vol = REGIMES[cs.regime].vol
        if not cs.depth or cs.depth_regime != cs.regime:
            cs.depth = [self._level_size(cs, i, vol, bid) for i in range(2 * BOOK_LEVELS)]
            cs.depth_regime = cs.regime
        else:
            for _ in range(6):
                i = int(rng.random() * 2 * BOOK_LEVELS)
                cs.depth[i] = self._level_size(cs, i % BOOK_LEVELS, vol, bid)
        gap = max(1, round(cs.mid * 0.25e-4 * vol / tick))
        d = price_decimals(px=bid, sz_decimals=spec.sz_decimals)
        span = (BOOK_LEVELS - 1) * gap * tick
        if (
            price_decimals(px=max(bid - span, tick), sz_decimals=spec.sz_decimals) == d
            and price_decimals(px=ask + span, sz_decimals=spec.sz_decimals) == d
        ):
            bpx = [round(bid - i * gap * tick, d) for i in range(BOOK_LEVELS)]
            apx = [round(ask + i * gap * tick, d) for i in range(BOOK_LEVELS)]
        else:
            bpx, apx = self._decade_prices(cs, bid, ask, gap, tick)
        depth, counts = cs.depth, cs.counts
        if not counts:
            counts.extend(1 + int(rng.random() * (2 + (i % BOOK_LEVELS) // 3)) for i in range(2 * BOOK_LEVELS))
        else:
            i = int(rng.random() * 2 * BOOK_LEVELS)
            counts[i] = 1 + int(rng.random() * (2 + (i % BOOK_LEVELS) // 3))
        bids = [(bpx[i], depth[i], counts[i]) for i in range(BOOK_LEVELS) if bpx[i] > 0]
        asks = [(apx[i], depth[BOOK_LEVELS + i], counts[BOOK_LEVELS + i]) for i in range(BOOK_LEVELS)]
        cs.book = Book(spec.name, bids, asks, self.sim_ms, cs.book.seq + 1)

    def _level_size(self, cs: CoinState, level: int, vol: float, px: float) -> float:
        scale = cs.spec.liquidity * 0.6 * (1.0 + 0.12 * level) / vol
        return self._size(cs, px, scale * math.exp(cs.rng.gauss(0.0, 0.6)))

    @staticmethod
    def _decade_prices(cs: CoinState, bid: float, ask: float, gap: int, tick: float) -> tuple[list[float], list[float]]:
        """Slow path when the book straddles a power of ten (the tick size changes there)."""
        szd = cs.spec.sz_decimals
        bids: list[float] = []
        asks: list[float] = []
        for i in range(BOOK_LEVELS):
            b = round_px(px=bid - i * gap * tick, sz_decimals=szd)
            a = round_px(px=ask + i * gap * tick, sz_decimals=szd)
            if bids and b >= bids[-1]:
                b = round_px(px=bids[-1] - tick * 10, sz_decimals=szd)
            if asks and a <= asks[-1]:
                a = round_px(px=asks[-1] + tick * 10, sz_decimals=szd)
            bids.append(b)
            asks.append(a)
        return bids, asks

    @staticmethod
    def _funding_rate(cs: CoinState) -> float:
        """Hourly rate: (P + clamp(I - P, ±0.05%)) / 8 with P the smoothed premium, capped at 4 %/h."""
        p = cs.premium_ema
        rate = (p + min(max(INTEREST_8H - p, -0.0005), 0.0005)) / 8
        return min(max(rate, -0.04), 0.04)

    def asset_ctx(self, coin: str) -> dict[str, float | list[float] | None]:
        cs = self.state[coin]
        mid = self.mid(coin)
        return {
            "funding": self._funding_rate(cs),
            "openInterest": cs.oi,
            "oraclePx": cs.oracle,
            "markPx": mid,
            "midPx": mid,
            "dayNtlVlm": cs.day_ntl_vlm,
            "prevDayPx": cs.prev_day_px,
            "premium": cs.premium,
            "impactPxs": [cs.book.bids[0][0], cs.book.asks[0][0]],
            "dayBaseVlm": cs.day_ntl_vlm / mid,
        }
