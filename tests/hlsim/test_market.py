"""Pure generator and money-math tests (no I/O)."""

from __future__ import annotations

from decimal import Decimal

from hlsim.accounts import apply_fill, trade_fee
from hlsim.candles import CandleStore, bucket_bounds
from hlsim.market import MarketEngine
from hlsim.ticks import is_valid_price, is_valid_size
from hlsim.universe import DEFAULT_COINS, resolve_universe


def _fingerprint(engine: MarketEngine, ticks: int) -> list:
    out = []
    for _ in range(ticks):
        ev = engine.step()
        out.extend((t.coin, t.side, t.px, t.sz, t.tid, t.sim_ms) for t in ev.trades)
        for coin in ev.books:
            book = engine.book(coin)
            out.append((coin, tuple(book.bids), tuple(book.asks)))
        out.extend(ev.funding)
    return out


def test_same_seed_gives_same_first_minutes_of_market_data() -> None:
    ticks = 2 * 60 * 10  # two simulated minutes
    a = _fingerprint(MarketEngine(seed=42), ticks)
    b = _fingerprint(MarketEngine(seed=42), ticks)
    assert len(a) > 1000
    assert a == b
    assert _fingerprint(MarketEngine(seed=43), ticks) != a


def test_default_universe_is_realistic() -> None:
    names = [c.name for c in DEFAULT_COINS]
    assert len(names) >= 20
    for required in ("BTC", "ETH", "SOL", "kPEPE", "HYPE"):
        assert required in names
    assert len(resolve_universe(n_symbols=50)) == 50


def test_books_obey_tick_rules_and_have_depth() -> None:
    engine = MarketEngine(seed=3)
    for _ in range(300):
        engine.step()
    for spec in DEFAULT_COINS:
        book = engine.book(spec.name)
        assert len(book.bids) >= 20 and len(book.asks) >= 20
        assert book.bids[0][0] < book.asks[0][0]
        for px, sz, n in book.bids + book.asks:
            assert is_valid_price(px=Decimal(repr(px)), sz_decimals=spec.sz_decimals), (spec.name, px)
            assert is_valid_size(sz=Decimal(repr(sz)), sz_decimals=spec.sz_decimals)
            assert n >= 1 and sz > 0
        assert [p for p, _, _ in book.bids] == sorted((p for p, _, _ in book.bids), reverse=True)


def test_regimes_oi_and_liquidations_are_coherent() -> None:
    engine = MarketEngine(seed=5, coins=DEFAULT_COINS[:8])
    seen: set[str] = set()
    liq_oi_drops = 0
    trend_oi = 0.0
    for _ in range(10 * 60 * 10):  # ten simulated minutes
        before = {c: s.oi for c, s in engine.state.items()}
        ev = engine.step()
        seen.update(engine.regimes().values())
        for liq in ev.liquidations:
            if engine.state[liq.coin].oi < before[liq.coin]:
                liq_oi_drops += 1
        for coin, state in engine.state.items():
            if state.regime.startswith("trend"):
                trend_oi += state.oi - before[coin]
    assert len(seen) >= 4
    assert liq_oi_drops >= 1  # liquidation cascades close positions
    assert trend_oi > 0  # trending moves open positions


def test_apply_fill_open_close_flip() -> None:
    opened = apply_fill(szi=Decimal(0), entry_px=Decimal(0), is_buy=True, px=Decimal("100"), sz=Decimal("2"))
    assert (opened.szi, opened.entry_px, opened.direction, opened.closed_pnl) == (2, 100, "Open Long", 0)
    added = apply_fill(szi=Decimal(2), entry_px=Decimal(100), is_buy=True, px=Decimal("110"), sz=Decimal("2"))
    assert added.entry_px == Decimal(105)
    flipped = apply_fill(szi=Decimal(4), entry_px=Decimal(105), is_buy=False, px=Decimal("120"), sz=Decimal("6"))
    assert flipped.direction == "Long > Short"
    assert flipped.closed_pnl == Decimal("60")
    assert (flipped.szi, flipped.entry_px) == (Decimal(-2), Decimal(120))
    closed = apply_fill(szi=Decimal(-2), entry_px=Decimal(120), is_buy=True, px=Decimal("100"), sz=Decimal("2"))
    assert (closed.direction, closed.closed_pnl, closed.szi) == ("Close Short", Decimal("40"), 0)
    assert trade_fee(px=Decimal("3000"), sz=Decimal("1"), maker=False) == Decimal("1.35")
    assert trade_fee(px=Decimal("3000"), sz=Decimal("1"), maker=True) == Decimal("0.45")


def test_price_rules_match_the_venue_examples() -> None:
    assert is_valid_price(px=Decimal("1234.5"), sz_decimals=0)
    assert not is_valid_price(px=Decimal("1234.56"), sz_decimals=0)
    assert is_valid_price(px=Decimal("0.001234"), sz_decimals=0)
    assert not is_valid_price(px=Decimal("0.0012345"), sz_decimals=0)
    assert is_valid_price(px=Decimal("0.01234"), sz_decimals=1)
    assert not is_valid_price(px=Decimal("0.012345"), sz_decimals=1)
    assert is_valid_price(px=Decimal("123456"), sz_decimals=5)


def test_candles_aggregate_all_intervals() -> None:
    store = CandleStore(spec=DEFAULT_COINS[0])
    store.backfill(seed=1, end_ms=1_700_000_000_000, end_px=67000.0, minutes=240)
    for interval in ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "8h", "12h", "1d", "3d", "1w", "1M"):
        candles = store.candles(interval=interval, start_ms=0, end_ms=1_700_000_000_000)
        assert candles, interval
        c = candles[-1]
        assert c["i"] == interval and c["s"] == "BTC" and c["T"] > c["t"]
        assert float(c["l"]) <= float(c["o"]) <= float(c["h"])
    assert bucket_bounds(t_ms=1_700_000_000_000, interval="1M")[0] == 1_698_796_800_000
