"""Freshness thresholds (price 3 s, book 4 s, trades 5 s, OI 15 s, intel 60 s) and per-field staleness."""

from __future__ import annotations

import pytest

from kernel.contracts.snapshot import FRESHNESS_MS, SymbolSnapshot, staleness, staleness_dict

NOW = 1_739_550_000_000


@pytest.mark.parametrize(
    ("group", "ts_field", "threshold"),
    [
        ("price", "price_ts", 3_000),
        ("book", "book_ts", 4_000),
        ("trades", "trades_ts", 5_000),
        ("oi", "oi_ts", 15_000),
        ("intel", "intel_ts", 60_000),
    ],
)
def test_a_field_is_fresh_at_its_threshold_and_stale_one_ms_later(group: str, ts_field: str, threshold: int) -> None:
    assert FRESHNESS_MS[group] == threshold
    at_threshold = SymbolSnapshot(symbol="BTC", **{ts_field: NOW - threshold})
    past_threshold = SymbolSnapshot(symbol="BTC", **{ts_field: NOW - threshold - 1})
    assert staleness(at_threshold, NOW)[group].stale is False
    assert staleness(at_threshold, NOW)[group].age_ms == threshold
    assert staleness(past_threshold, NOW)[group].stale is True


def test_a_field_never_seen_is_stale() -> None:
    fresh = staleness(SymbolSnapshot(symbol="ETH"), NOW)
    assert all(f.stale and f.age_ms is None for f in fresh.values())


def test_each_group_is_judged_on_its_own_timestamp() -> None:
    snap = SymbolSnapshot(symbol="SOL", price_ts=NOW - 100, book_ts=NOW - 10_000)
    result = staleness_dict(snap, NOW)
    assert result["price"] == {"age_ms": 100, "threshold_ms": 3_000, "stale": False}
    assert result["book"]["stale"] is True


def test_a_clock_behind_the_data_counts_as_age_zero() -> None:
    assert staleness(SymbolSnapshot(symbol="BTC", price_ts=NOW + 500), NOW)["price"].age_ms == 0


def test_snapshots_round_trip_through_dicts_ignoring_unknown_keys() -> None:
    snap = SymbolSnapshot(symbol="BTC", price="67000.5", price_ts=NOW)
    assert SymbolSnapshot.from_dict({**snap.as_dict(), "unknown": 1}) == snap
