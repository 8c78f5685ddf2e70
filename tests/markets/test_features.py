"""Pure feature builders: book stats, CVD windows, composites, funding, candles."""

from __future__ import annotations

from collections import deque

import pytest

from markets import features as ft


def trade(px: float, sz: float, side: str, t: int) -> ft.Trade:
    return ft.Trade(px=px, sz=sz, side=side, time_ms=t, px_str=str(px), sz_str=str(sz))


def test_book_stats_spread_mid_depth_and_imbalance():
    stats = ft.book_stats(bids=[(100.0, 2.0), (99.0, 5.0)], asks=[(100.2, 1.0), (105.0, 9.0)], depth_bps=50)
    assert stats["mid"] == pytest.approx(100.1) and stats["spread"] == pytest.approx(0.2)
    assert stats["spread_bps"] == pytest.approx(0.2 / 100.1 * 1e4)
    # within 50 bp of 100.1: bid 100 (99 is out), ask 100.2 (105 is out)
    assert stats["bid_depth_usd"] == pytest.approx(200.0) and stats["ask_depth_usd"] == pytest.approx(100.2)
    assert stats["imbalance"] == pytest.approx((200 - 100.2) / 300.2)


def test_book_stats_of_a_one_sided_book_are_empty():
    assert ft.book_stats(bids=[(1.0, 1.0)], asks=[])["mid"] is None


def test_cvd_running_and_windows():
    state = ft.CvdState()
    now = 1_700_000_400_000
    ft.cvd_add(state, trade(10.0, 1.0, "B", now - 400_000))  # outside 5 m
    ft.cvd_add(state, trade(10.0, 2.0, "A", now - 200_000))  # in 5 m only
    ft.cvd_add(state, trade(10.0, 3.0, "B", now - 10_000))  # in 1 m
    w = ft.cvd_windows(state, now_ms=now)
    assert w["cvd_venue"] == pytest.approx(10 - 20 + 30)
    assert w["cvd_venue_5m"] == pytest.approx(-20 + 30)
    assert w["cvd_venue_1m"] == pytest.approx(30)


def test_oi_composite_renormalises_over_available_venues():
    w = {"hyperliquid": 0.65, "binance_perp": 0.35}
    one = ft.oi_composite(oi_by_venue={"hyperliquid": 1000.0, "binance_perp": None}, weights=w)
    assert one["oi_total"] == pytest.approx(1000.0) and one["oi_source"] == "hyperliquid"
    two = ft.oi_composite(oi_by_venue={"hyperliquid": 1000.0, "binance_perp": 2000.0}, weights=w)
    assert two["oi_total"] == pytest.approx(0.65 * 1000 + 0.35 * 2000)
    assert two["oi_source"] == "hyperliquid+binance_perp"
    assert ft.oi_composite(oi_by_venue={"hyperliquid": None}, weights=w)["oi_total"] is None


def test_spot_cvd_composite_and_source_label():
    w = {"binance": 0.7, "coinbase": 0.3}
    assert ft.cvd_spot_composite(cvd_by_venue={"binance": 10.0, "coinbase": 20.0}, weights=w) == pytest.approx(13.0)
    assert ft.cvd_source_label(spot_venues=[]) == "hyperliquid (venue only; no spot venues configured)"


def test_funding_annualised_and_next_full_hour():
    assert ft.funding_annualised(0.0000125) == pytest.approx(0.0000125 * 8760)
    assert ft.next_funding_ms(3_600_000 * 5 + 1) == 3_600_000 * 6
    assert ft.next_funding_ms(3_600_000 * 5) == 3_600_000 * 6


def test_change_and_oi_notional():
    assert ft.change_24h_pct(price=110.0, prev_day_px=100.0) == pytest.approx(10.0)
    assert ft.change_24h_pct(price=110.0, prev_day_px=None) is None
    assert ft.oi_notional(oi_coins=2.0, mark_px=50.0) == 100.0


def test_candles_from_trades_and_backfill_merge():
    series: deque[ft.Candle] = deque(maxlen=10)
    base = 1_700_000_040_000 - 1_700_000_040_000 % 60_000
    ft.candle_add_trade(series, trade(10.0, 1.0, "B", base + 1000), "1m")
    ft.candle_add_trade(series, trade(12.0, 1.0, "A", base + 2000), "1m")
    ft.candle_add_trade(series, trade(9.0, 2.0, "B", base + 3000), "1m")
    ft.candle_add_trade(series, trade(11.0, 1.0, "B", base + 61_000), "1m")
    assert [(c.o, c.h, c.l, c.c, c.v, c.n) for c in series] == [(10, 12, 9, 9, 4, 3), (11, 11, 11, 11, 1, 1)]
    backfill = [
        ft.candle_from_venue({"t": base - 60_000, "o": "8", "h": "9", "l": "7", "c": "8.5", "v": "3", "n": 4}),
        ft.candle_from_venue({"t": base, "o": "1", "h": "1", "l": "1", "c": "1", "v": "1", "n": 1}),
    ]
    merged = ft.candles_merge(series, backfill)
    assert [c.t for c in merged] == [base - 60_000, base, base + 60_000]
    assert merged[1].o == 10  # live wins over backfill for the same open time
    with pytest.raises(ValueError):
        ft.candle_from_venue({"t": 1, "o": "x"})


def test_candles_folded_from_mini_candles_equal_trade_by_trade_candles():
    base = 1_700_000_000_000 - 1_700_000_000_000 % 3_600_000
    times = [base + 1_000, base + 30_000, base + 61_000, base + 20_000, base + 62_000, base + 301_000, base + 3_601_000]
    pxs = [10.0, 12.0, 9.0, 15.0, 11.0, 8.0, 13.0]
    trades = [trade(px, 1.0 + i, "B" if i % 2 else "A", t) for i, (px, t) in enumerate(zip(pxs, times, strict=True))]
    expected = {i: deque(maxlen=10) for i in ft.CANDLE_INTERVALS}
    for t in trades:
        for interval, series in expected.items():
            ft.candle_add_trade(series, t, interval)
    folded = {i: deque(maxlen=10) for i in ft.CANDLE_INTERVALS}
    cvd, deltas = ft.CvdState(), []
    for chunk in (trades[:3], trades[3:5], trades[5:]):  # three flush intervals, one with a late trade
        ft.trades_fold(cvd, deltas, [(t.px, t.sz, t.side, t.time_ms, None) for t in chunk])
        for interval, series in folded.items():
            for delta in deltas:
                ft.candle_fold(series, delta, interval)
        deltas.clear()
    for interval in ft.CANDLE_INTERVALS:
        assert [(c.t, c.o, c.h, c.l, c.c, c.v, c.n) for c in folded[interval]] == [
            (c.t, c.o, c.h, c.l, c.c, c.v, c.n) for c in expected[interval]
        ], interval
    reference = ft.CvdState()
    for t in trades:
        ft.cvd_add(reference, t)
    now = base + 3_630_000
    assert ft.cvd_windows(cvd, now_ms=now) == pytest.approx(ft.cvd_windows(reference, now_ms=now))
