"""Scenario tests for ConvictionEngine.analyze over synthetic histories (architecture seed §21)."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

from alpha.engine import AlphaConfig, BtcReference, ComponentSignal, ConvictionEngine, combine, transform
from alpha.engine.volatility import VolatilityReading
from tests.alpha.builders import build_history, linear

ENGINE = ConvictionEngine()
NORMAL_VOL = VolatilityReading("normal", 50.0, 1e-4, 1.0)


def test_rising_oi_with_rising_price_is_long() -> None:
    history, now = build_history(price=linear(3000, 1.5), oi=linear(1e6, 3.0))
    result = ENGINE.analyze(history=history, now_ms=now)
    assert result.components["regime"].inputs["regime"] == "long_buildup"
    assert result.components["regime"].score == pytest.approx(1.0)
    assert result.bias == "LONG"
    assert result.score > 55


def test_rising_oi_with_falling_price_is_short() -> None:
    history, now = build_history(price=linear(3000, -1.5), oi=linear(1e6, 3.0))
    result = ENGINE.analyze(history=history, now_ms=now)
    assert result.components["regime"].inputs["regime"] == "short_buildup"
    assert result.components["regime"].score == pytest.approx(-1.0)
    assert result.bias == "SHORT"
    assert result.score < 45


def test_unwinds_are_scored_with_their_sign_and_weaker_than_buildups() -> None:
    def regime(price_pct: float, oi_pct: float) -> tuple[str, float]:
        history, now = build_history(price=linear(3000, price_pct), oi=linear(1e6, oi_pct))
        comp = ENGINE.analyze(history=history, now_ms=now).components["regime"]
        return comp.inputs["regime"], comp.score

    label_cover, covering = regime(1.5, -3.0)
    label_liq, liquidation = regime(-1.5, -3.0)
    _, buildup_long = regime(1.5, 3.0)
    _, buildup_short = regime(-1.5, 3.0)
    assert label_cover == "short_covering" and label_liq == "long_liquidation"
    assert 0 < covering < buildup_long
    assert buildup_short < liquidation < 0
    assert covering == pytest.approx(0.5 * buildup_long)


def test_small_moves_are_scaled_down_by_magnitude() -> None:
    history, now = build_history(price=linear(3000, 0.25), oi=linear(1e6, 0.5))
    score = ENGINE.analyze(history=history, now_ms=now).components["regime"].score
    assert 0 < score < 0.5


def test_extreme_positive_funding_is_a_bearish_component() -> None:
    history, now = build_history(funding=lambda t: 0.0003)
    result = ENGINE.analyze(history=history, now_ms=now)
    assert result.components["funding"].score == pytest.approx(-1.0)
    assert result.bias == "SHORT"


def test_extreme_negative_funding_is_a_bullish_component() -> None:
    history, now = build_history(funding=lambda t: -0.0002)
    assert ENGINE.analyze(history=history, now_ms=now).components["funding"].score > 0.9


def test_neutral_funding_contributes_nothing() -> None:
    history, now = build_history()
    assert ENGINE.analyze(history=history, now_ms=now).components["funding"].score == 0.0


def test_no_liquidation_data_contributes_exactly_zero() -> None:
    history, now = build_history(price=linear(3000, 1.5), oi=linear(1e6, 3.0))
    liq = ENGINE.analyze(history=history, now_ms=now).components["liquidation"]
    assert liq.score == 0.0 and liq.contribution == 0.0
    assert liq.inputs["data"] is False


def test_short_liquidations_dominating_are_bullish() -> None:
    def liqs(t: float, ts: int) -> list[dict[str, object]]:
        return [{"side": "short", "notional": 50_000, "time": ts}] if int(t) % 10 == 0 else []

    history, now = build_history(liquidations=liqs)
    assert ENGINE.analyze(history=history, now_ms=now).components["liquidation"].score > 0.5


def _vol_path(calm_first: bool) -> Callable[[float], float]:
    def price(t: float) -> float:
        calm = (t < 540) if calm_first else (t >= 540)
        amplitude = 0.00002 if calm else 0.002
        return 3000.0 * (1 + amplitude * (1 if int(t) % 2 else -1))

    return price


@pytest.mark.parametrize(("calm_first", "regime"), [(False, "compression"), (True, "expansion")])
def test_volatility_alone_never_moves_the_bias(calm_first: bool, regime: str) -> None:
    history, now = build_history(price=_vol_path(calm_first))
    result = ENGINE.analyze(history=history, now_ms=now)
    assert result.volatility_regime == regime
    assert result.volatility_amplifier != 1.0
    assert result.components["volatility"].score == 0.0
    assert result.components["volatility"].contribution == 0.0
    assert result.score == 50.0
    assert result.bias == "NEUTRAL"


def test_volatility_amplifies_an_existing_direction() -> None:
    comps = {"regime": ComponentSignal(0.5)}
    base = combine(symbol="ETH", components=comps, vol=NORMAL_VOL, now_ms=1000, signal_ts_ms=1000)
    amp = combine(
        symbol="ETH",
        components=comps,
        vol=VolatilityReading("compression", 5.0, 1e-4, 1.2),
        now_ms=1000,
        signal_ts_ms=1000,
    )
    assert amp.raw == pytest.approx(base.raw * 1.2)
    assert amp.rr == 3.0 and base.rr == 2.0


def test_a_150_second_old_signal_is_halved_before_the_transform() -> None:
    now = 1_700_000_000_000
    comps = {"regime": ComponentSignal(1.0)}
    result = combine(symbol="BTC", components=comps, vol=NORMAL_VOL, now_ms=now, signal_ts_ms=now - 150_000)
    assert result.raw == pytest.approx(0.35)
    assert result.decay_factor == 0.5 ** (120 / 120) == 0.5
    assert result.signal == pytest.approx(0.175)
    assert result.score == pytest.approx((1 + 0.175**0.7) * 50)
    assert result.score == pytest.approx(64.7603, abs=1e-3)


def test_analyze_applies_decay_from_the_signal_timestamp() -> None:
    history, now = build_history(price=linear(3000, 1.5), oi=linear(1e6, 3.0))
    fresh = ENGINE.analyze(history=history, now_ms=now)
    old = ENGINE.analyze(history=history, now_ms=now, signal_ts_ms=now - 150_000)
    assert fresh.decay_factor == 1.0 and old.decay_factor == 0.5
    assert old.signal == pytest.approx(fresh.raw * 0.5)
    assert old.score == pytest.approx(transform(fresh.raw * 0.5)[1])


def test_signals_inside_the_fresh_window_do_not_decay() -> None:
    comps = {"regime": ComponentSignal(1.0)}
    result = combine(symbol="BTC", components=comps, vol=NORMAL_VOL, now_ms=100_000, signal_ts_ms=70_000)
    assert result.decay_factor == 1.0


def test_an_alt_blends_btc_only_while_btc_is_fresh() -> None:
    now = 1_700_000_000_000
    comps = {"regime": ComponentSignal(0.5)}

    def run(symbol: str, btc_age_ms: int) -> float:
        btc = BtcReference(signal=0.8, ts_ms=now - btc_age_ms)
        r = combine(symbol=symbol, components=comps, vol=NORMAL_VOL, now_ms=now, signal_ts_ms=now, btc=btc)
        return r.signal if r.btc_blend_applied else math.nan

    own = 0.5 * 0.35
    assert run("ETH", 60_000) == pytest.approx(0.8 * own + 0.2 * 0.8 * 0.85)
    assert run("SOL", 119_999) == pytest.approx(0.8 * own + 0.2 * 0.8 * 0.78)
    assert run("DOGE", 1_000) == pytest.approx(0.8 * own + 0.2 * 0.8 * 0.6)
    assert math.isnan(run("ETH", 120_000))
    assert math.isnan(run("ETH", 600_000))
    assert math.isnan(run("BTC", 1_000))


def test_btc_reference_round_trips_from_a_btc_result() -> None:
    history, now = build_history("BTC", price=linear(60000, 1.5), oi=linear(1e6, 3.0))
    btc = ENGINE.analyze(history=history, now_ms=now)
    alt_history, _ = build_history("ETH")
    alt = ENGINE.analyze(history=alt_history, now_ms=now, btc=btc.btc_reference())
    assert alt.btc_blend_applied and alt.btc_coefficient == 0.85
    assert alt.signal == pytest.approx(0.2 * btc.own_signal * 0.85)


def test_bias_thresholds_and_strong_rr() -> None:
    cfg = AlphaConfig()
    for signal, bias in [(0.0, "NEUTRAL"), (0.03, "NEUTRAL"), (0.2, "LONG"), (-0.2, "SHORT")]:
        r = combine(
            symbol="BTC",
            components={"regime": ComponentSignal(signal / 0.35)},
            vol=NORMAL_VOL,
            now_ms=1,
            signal_ts_ms=1,
        )
        assert r.bias == bias, signal
    strong = combine(
        symbol="BTC", components={"regime": ComponentSignal(1.0)}, vol=NORMAL_VOL, now_ms=1, signal_ts_ms=1
    )
    assert strong.score >= 70 and strong.rr == pytest.approx(cfg.rr_normal * 1.2)


def test_as_dict_is_wire_serialisable() -> None:
    from kernel.contracts.envelope import dumps

    history, now = build_history(price=linear(3000, 1.5), oi=linear(1e6, 3.0))
    body = ENGINE.analyze(history=history, now_ms=now).as_dict()
    assert set(body["components"]) == {"regime", "footprint", "volatility", "funding", "liquidation"}
    assert sum(c["weight"] for c in body["components"].values()) == pytest.approx(1.0)
    assert dumps(body)
