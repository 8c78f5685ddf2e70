"""The rolling history (pure, bounded, deduplicated) and the validated configuration."""

from __future__ import annotations

import dataclasses
import math

import pytest

from alpha.engine import AlphaConfig, AlphaConfigError, ConvictionEngine, empty_history, update
from alpha.engine.inputs import finite
from tests.alpha.builders import T0, build_history


def test_update_is_pure_and_dedupes_repeated_trades() -> None:
    trades = [{"side": "B", "px": "100", "sz": "1", "time": T0, "tid": 1},
              {"side": "A", "px": "100", "sz": "2", "time": T0 + 5, "tid": 2}]  # fmt: skip
    h0 = empty_history("eth")
    h1 = update(h0, {"trades": trades})
    h2 = update(h1, {"trades": [*trades, {"side": "B", "px": "101", "sz": "1", "time": T0 + 5, "tid": 3}]})
    assert h0.trades == () and h0.symbol == "ETH"
    assert len(h1.trades) == 2 and len(h2.trades) == 3
    assert update(h2, {"trades": trades}) == h2


def test_buffers_are_bounded() -> None:
    cfg = AlphaConfig(trades_max=50, series_max_points=30)
    history, _ = build_history(
        seconds=120, trades=lambda t, ts, px: [{"side": "B", "px": px, "sz": 1, "time": ts}], config=cfg
    )
    assert len(history.trades) == 50 and len(history.prices) == 30


def test_series_keep_one_point_per_spacing_slot() -> None:
    history, _ = build_history(seconds=10, step_ms=200)
    assert len(history.prices) == 11


def test_garbage_rows_are_dropped() -> None:
    h = update(
        empty_history("BTC"),
        {"price": "nan", "price_ts": T0, "oi_total": -5, "oi_ts": T0, "book_ts": T0,
         "book": {"bids": [["101", "1"]], "asks": [["100", "1"]]},  # crossed
         "trades": [{"side": "B", "px": "abc", "sz": "1", "time": T0}, {"side": "X", "px": "1", "sz": "1", "time": T0},
                    {"side": "B", "px": "1", "sz": "-1", "time": T0}, None, "x"]},
    )  # fmt: skip
    assert h.prices == () and h.oi == () and h.trades == () and h.books == ()


@pytest.mark.parametrize("value", [None, "nan", float("inf"), "abc", True, [], {}, "1e999"])
def test_finite_rejects_garbage(value: object) -> None:
    assert finite(value) is None


def test_defaults_match_the_specification() -> None:
    cfg = AlphaConfig()
    assert cfg.weights() == {"regime": 35, "footprint": 25, "volatility": 15, "funding": 15, "liquidation": 10}
    assert (cfg.decay_fresh_s, cfg.decay_half_life_s, cfg.btc_blend, cfg.btc_max_age_s) == (30, 120, 0.2, 120)
    assert cfg.btc_coefficient("eth") == 0.85 and cfg.btc_coefficient("SOL") == 0.78
    assert cfg.btc_coefficient("DOGE") == 0.6
    assert (cfg.transform_exponent, cfg.long_threshold, cfg.short_threshold) == (0.7, 55, 45)
    assert (cfg.rr_compression, cfg.rr_expansion, cfg.rr_normal, cfg.rr_strong_multiplier) == (3, 1.5, 2, 1.2)


def test_config_from_dict_round_trips_and_validates() -> None:
    cfg = AlphaConfig.from_dict({"weight_funding": 20, "btc_correlation": {"avax": 0.7}})
    assert cfg.weight_funding == 20.0 and cfg.btc_coefficient("AVAX") == 0.7
    assert AlphaConfig.from_dict(cfg.as_dict()) == cfg
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.weight_regime = 1.0  # type: ignore[misc]
    bad = [{"weight_regime": -1}, {"nope": 1}, {"weight_regime": "35"}, {"decay_half_life_s": math.nan},
           {"weight_regime": 0, "weight_footprint": 0, "weight_volatility": 0, "weight_funding": 0,
            "weight_liquidation": 0}, {"long_threshold": 40}, {"trades_max": 1.5}]  # fmt: skip
    for data in bad:
        with pytest.raises(AlphaConfigError) as exc:
            AlphaConfig.from_dict(data)
        assert exc.value.code == "alpha_config_invalid"


def test_sweep_detects_aggressive_buys_walking_levels() -> None:
    def trades(t: float, ts: int, px: float) -> list[dict[str, object]]:
        if t < 50:
            return [{"side": "A", "px": px, "sz": 0.01, "time": ts}]
        return [{"side": "B", "px": px + i * 0.5, "sz": 1, "time": ts} for i in range(4)]

    history, now = build_history(seconds=60, trades=trades)
    assert history.sweeps and all(s.side == 1 and s.levels == 4 for s in history.sweeps)
    comp = ConvictionEngine().analyze(history=history, now_ms=now).components["footprint"]
    assert comp.inputs["sweep"]["score"] > 0.7 and comp.score > 0


def test_absorption_reads_against_heavy_buying_that_does_not_lift_price() -> None:
    def trades(t: float, ts: int, px: float) -> list[dict[str, object]]:
        if t < 110:
            return [{"side": "A" if int(t) % 2 else "B", "px": px, "sz": 0.1, "time": ts}]
        return [{"side": "B", "px": px, "sz": 5, "time": ts}]

    history, now = build_history(seconds=120, trades=trades)
    comp = ConvictionEngine().analyze(history=history, now_ms=now).components["footprint"]
    assert comp.inputs["absorption"]["score"] < -0.5


def test_a_repeated_newest_first_trades_ring_folds_only_the_new_tail() -> None:
    ring = [{"side": "B", "px": "100", "sz": "1", "time": T0 + i * 100, "tid": i} for i in range(20)]
    h1 = update(empty_history("ETH"), {"trades": list(reversed(ring))})  # newest first, as ingest sends it
    same_ms = {"side": "A", "px": "100", "sz": "3", "time": T0 + 1900, "tid": 99}  # same ms as the newest, new tid
    newer = {"side": "A", "px": "101", "sz": "2", "time": T0 + 2000.0, "tid": 100}  # float time
    h2 = update(h1, {"trades": [newer, same_ms, *reversed(ring[1:])]})
    assert len(h1.trades) == 20 and len(h2.trades) == 22
    assert [t.ts_ms for t in h2.trades[-2:]] == [T0 + 1900, T0 + 2000]
    assert update(h2, {"trades": [newer, same_ms, *reversed(ring)]}) == h2


def test_funding_statistics_cached_by_update_match_a_recomputation() -> None:
    history, now = build_history(seconds=3600, step_ms=60_000, funding=lambda t: 0.0000125 + 1e-5 * math.sin(t / 500))
    engine = ConvictionEngine()
    cached = engine.analyze(history=history, now_ms=now).components["funding"]
    recomputed = engine.analyze(history=dataclasses.replace(history, funding_stats=None), now_ms=now)
    assert cached.inputs["z_hist"] is not None
    assert cached == recomputed.components["funding"]
