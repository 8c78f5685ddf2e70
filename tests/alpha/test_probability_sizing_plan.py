"""Downstream pure functions: win probability, capped-Kelly sizing within limits, execution plan by depth."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alpha.engine import (
    AlphaConfig,
    SizingLimits,
    kelly_fraction,
    long_probability,
    plan_execution,
    size_position,
    win_probability,
)
from alpha.engine.inputs import parse_book

# --- probability ------------------------------------------------------------------------------------------------


def test_probability_is_centred_and_hits_the_documented_anchor() -> None:
    assert long_probability(50) == pytest.approx(0.5)
    assert long_probability(65) == pytest.approx(0.6, abs=0.01)
    assert long_probability(35) == pytest.approx(0.4, abs=0.01)


@given(a=st.floats(min_value=-50, max_value=150), b=st.floats(min_value=-50, max_value=150))
def test_probability_is_monotonic_and_bounded(a: float, b: float) -> None:
    lo, hi = sorted((a, b))
    assert 0.05 <= long_probability(lo) <= long_probability(hi) <= 0.95


def test_short_win_probability_mirrors_long_and_garbage_is_no_information() -> None:
    assert win_probability(score=70, side="SHORT") == pytest.approx(1 - long_probability(70))
    assert win_probability(score=30, side="short") == pytest.approx(long_probability(70))
    assert win_probability(score=80, side="NEUTRAL") == 0.5
    assert long_probability("nan") == long_probability(None) == 0.5


# --- sizing -----------------------------------------------------------------------------------------------------

BIG = SizingLimits(max_position_usd=Decimal("1e9"), max_total_exposure_usd=Decimal("1e9"), max_leverage=Decimal("100"))


def test_kelly_fraction_formula() -> None:
    assert kelly_fraction(p=0.6, rr=2.0) == pytest.approx(0.6 - 0.4 / 2)
    assert kelly_fraction(p=0.5, rr=1.0) == 0.0
    assert kelly_fraction(p="x", rr=2) == 0.0


@pytest.mark.parametrize(("p", "rr"), [(0.5, 1.0), (0.4, 1.2), (0.3, 2.0)])
def test_size_is_zero_without_edge(p: float, rr: float) -> None:
    result = size_position(side="LONG", win_probability=p, rr=rr, equity_usd=10_000, price=3000, limits=BIG)
    assert result.size_usd == 0 and result.binding == "no_edge"


def test_size_uses_quarter_kelly_and_vol_targeting() -> None:
    cfg = AlphaConfig()
    result = size_position(
        side="LONG", win_probability=0.55, rr=2.0, equity_usd=10_000, price=3000, realised_vol_annual=1.2, limits=BIG
    )
    expected = 10_000 * ((0.55 - 0.45 / 2) * 0.25) * (cfg.target_vol_annual / 1.2)
    assert result.binding == "kelly"
    assert result.size_usd == Decimal(str(expected)).quantize(Decimal("0.01"))
    assert isinstance(result.size, Decimal) and float(result.size) == pytest.approx(expected / 3000, rel=1e-6)
    assert result.stop_px == Decimal("2910") and result.take_profit_px == Decimal("3180")


def test_kelly_is_capped_at_the_max_equity_fraction() -> None:
    result = size_position(
        side="SHORT", win_probability=0.95, rr=3.0, equity_usd=10_000, price=100, realised_vol_annual=0.6, limits=BIG
    )
    assert result.fraction == AlphaConfig().max_equity_fraction
    assert result.size_usd == Decimal("1000.00")
    assert result.stop_px > 100 > result.take_profit_px


def test_size_respects_every_user_limit() -> None:
    args = {"side": "LONG", "win_probability": 0.9, "rr": 3.0, "equity_usd": 1_000_000, "price": 10,
            "realised_vol_annual": 0.3}  # fmt: skip
    assert size_position(**args, limits=SizingLimits()).size_usd == Decimal("500.00")
    exposure = size_position(**args, current_exposure_usd=2_300, limits=SizingLimits(max_position_usd=Decimal("1000")))
    assert exposure.size_usd == Decimal("200.00") and exposure.binding == "exposure"
    lev = size_position(**{**args, "equity_usd": 100}, limits=BIG)
    assert lev.binding in ("kelly", "leverage") and lev.size_usd <= Decimal("10000")
    full = size_position(**args, current_exposure_usd=2_500, limits=SizingLimits())
    assert full.size_usd == 0 and full.binding == "min_order"


def test_missing_limits_fail_closed() -> None:
    limits = SizingLimits(max_position_usd=Decimal("NaN"))
    result = size_position(side="LONG", win_probability=0.9, rr=3, equity_usd=10_000, price=10, limits=limits)
    assert result.size_usd == 0


# --- plan -------------------------------------------------------------------------------------------------------


def _book() -> dict[str, list[list[str]]]:
    # 10 levels each side, 1 bp apart around 100, $1,000 per level → ~$10k within 20 bps each side.
    return {
        "bids": [[str(100 - 0.01 * (i + 1)), str(1000 / (100 - 0.01 * (i + 1))), "1"] for i in range(10)],
        "asks": [[str(100 + 0.01 * (i + 1)), str(1000 / (100 + 0.01 * (i + 1))), "1"] for i in range(10)],
    }


def test_small_orders_are_a_single_order_at_the_touch() -> None:
    plan = plan_execution(side="LONG", size_usd=500, book=_book())
    assert plan.kind == "single" and len(plan.slices) == 1
    assert plan.slices[0].price == Decimal("100.01")
    assert plan.depth_usd == Decimal("10000.00")


def test_medium_orders_are_a_passive_ladder() -> None:
    plan = plan_execution(side="SHORT", size_usd=3000, book=parse_book(_book(), 1, 20))
    assert plan.kind == "ladder" and len(plan.slices) == 5
    prices = [s.price for s in plan.slices]
    assert prices[0] == Decimal("100.01") and prices == sorted(prices)
    assert sum(s.size_usd for s in plan.slices) == Decimal("3000.00")


def test_large_orders_are_twap_slices() -> None:
    cfg = AlphaConfig()
    plan = plan_execution(side="LONG", size_usd=8000, book=_book())
    assert plan.kind == "twap" and len(plan.slices) == 8
    assert [s.delay_s for s in plan.slices[:2]] == [0.0, cfg.plan_twap_interval_s]
    assert all(s.price is None for s in plan.slices)


def test_no_book_is_twap_and_no_size_is_no_plan() -> None:
    assert plan_execution(side="LONG", size_usd=100, book=None).kind == "twap"
    assert plan_execution(side="LONG", size_usd=0, book=_book()).kind == "none"
    assert plan_execution(side="NONE", size_usd=100, book=_book()).kind == "none"
