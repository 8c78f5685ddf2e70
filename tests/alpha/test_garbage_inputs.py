"""Property tests: whatever the snapshots, histories and arguments hold, the score is in [0, 100] and never NaN."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alpha.engine import (
    BtcReference,
    ComponentSignal,
    ConvictionEngine,
    combine,
    empty_history,
    long_probability,
    plan_execution,
    size_position,
    update,
)
from alpha.engine.volatility import VolatilityReading
from kernel.contracts.envelope import dumps
from kernel.contracts.snapshot import SymbolSnapshot

T0 = 1_700_000_000_000
ENGINE = ConvictionEngine()

garbage = st.one_of(
    st.none(),
    st.booleans(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.text(max_size=8),
    st.sampled_from(["nan", "inf", "-inf", "1e309", "-5", "0", "3000.5", "abc", "", "1e-320"]),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
number_or_garbage = st.one_of(st.floats(min_value=1, max_value=1e6), garbage)
ts_or_garbage = st.one_of(st.integers(min_value=T0 - 10**6, max_value=T0 + 10**6), garbage)


def _sided_event(sides: list[str], **fields: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Garbage, or an event object: a side (one of `sides`, or garbage) and `fields`."""
    return st.one_of(garbage, st.fixed_dictionaries({"side": st.one_of(st.sampled_from(sides), garbage), **fields}))


trade = _sided_event(["B", "A"], px=number_or_garbage, sz=number_or_garbage, time=ts_or_garbage)
level = st.one_of(garbage, st.lists(st.one_of(number_or_garbage, st.just("1")), min_size=0, max_size=3))
book = st.one_of(
    garbage, st.fixed_dictionaries({"bids": st.lists(level, max_size=5), "asks": st.lists(level, max_size=5)})
)
snapshot = st.fixed_dictionaries(
    {},
    optional={
        "price": number_or_garbage,
        "price_ts": ts_or_garbage,
        "mark_px": number_or_garbage,
        "oi_total": number_or_garbage,
        "oi_hl": number_or_garbage,
        "oi_ts": ts_or_garbage,
        "funding_rate": st.one_of(st.floats(min_value=-0.01, max_value=0.01), garbage),
        "funding_ts": ts_or_garbage,
        "trades": st.one_of(garbage, st.lists(trade, max_size=8)),
        "book": book,
        "book_ts": ts_or_garbage,
    },
)
liquidation = _sided_event(["long", "short"], notional=number_or_garbage, time=ts_or_garbage)


def _assert_valid(result: Any) -> None:
    assert 0.0 <= result.score <= 100.0 and not math.isnan(result.score)
    assert result.bias in ("LONG", "SHORT", "NEUTRAL")
    assert math.isfinite(result.rr) and math.isfinite(result.signal) and math.isfinite(result.raw)
    dumps(result.as_dict())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    snaps=st.lists(snapshot, max_size=12),
    liqs=st.one_of(garbage, st.lists(liquidation, max_size=4)),
    now=ts_or_garbage,
    btc=st.one_of(st.none(), st.builds(BtcReference, signal=number_or_garbage, ts_ms=ts_or_garbage)),
    signal_ts=st.one_of(st.none(), ts_or_garbage),
    as_dataclass=st.booleans(),
)
def test_score_is_always_bounded_for_garbage_snapshots(
    snaps: list[dict[str, Any]], liqs: Any, now: Any, btc: Any, signal_ts: Any, as_dataclass: bool
) -> None:
    history = empty_history("ETH")
    for snap in snaps:
        fed = SymbolSnapshot.from_dict({"symbol": "ETH", **snap}) if as_dataclass else snap
        history = update(history, fed, liquidations=liqs)
    _assert_valid(ENGINE.analyze(history=history, now_ms=now, btc=btc, signal_ts_ms=signal_ts))


@settings(max_examples=100, deadline=None)
@given(
    prices=st.lists(st.floats(min_value=1e-6, max_value=1e9), min_size=1, max_size=60),
    ois=st.lists(st.floats(min_value=1e-6, max_value=1e12), min_size=1, max_size=60),
    step=st.integers(min_value=1, max_value=120_000),
)
def test_score_is_bounded_for_extreme_but_valid_paths(prices: list[float], ois: list[float], step: int) -> None:
    history = empty_history("SOL")
    ts = T0
    for i, px in enumerate(prices):
        ts = T0 + i * step
        trades = [{"side": "B" if i % 2 else "A", "px": px, "sz": 1e6 / px, "time": ts}]
        snap = {"price": px, "price_ts": ts, "oi_total": ois[i % len(ois)], "oi_ts": ts, "trades": trades}
        history = update(history, {**snap, "funding_rate": (i % 7 - 3) * 0.001, "funding_ts": ts})
    _assert_valid(ENGINE.analyze(history=history, now_ms=ts))


@settings(max_examples=300, deadline=None)
@given(
    scores=st.dictionaries(
        st.sampled_from(["regime", "footprint", "volatility", "funding", "liquidation", "other"]),
        st.floats(allow_nan=True, allow_infinity=True),
    ),
    amplifier=st.floats(allow_nan=True, allow_infinity=True),
    now=ts_or_garbage,
    signal_ts=ts_or_garbage,
)
def test_combine_is_bounded_for_non_finite_component_scores(
    scores: dict[str, float], amplifier: float, now: Any, signal_ts: Any
) -> None:
    comps = {k: ComponentSignal(v) for k, v in scores.items()}
    vol = VolatilityReading("normal", None, None, amplifier)
    _assert_valid(combine(symbol="ETH", components=comps, vol=vol, now_ms=now, signal_ts_ms=signal_ts))


@settings(max_examples=200, deadline=None)
@given(
    score=garbage,
    p=garbage,
    rr=garbage,
    equity=garbage,
    price=garbage,
    vol=garbage,
    exposure=garbage,
    side=st.one_of(st.sampled_from(["LONG", "SHORT", "long"]), garbage),
    book=book,
)
def test_downstream_functions_accept_garbage(
    score: Any, p: Any, rr: Any, equity: Any, price: Any, vol: Any, exposure: Any, side: Any, book: Any
) -> None:
    prob = long_probability(score)
    assert 0.05 <= prob <= 0.95
    sizing = size_position(
        side=side, win_probability=p, rr=rr, equity_usd=equity, price=price,
        realised_vol_annual=vol, current_exposure_usd=exposure,
    )  # fmt: skip
    assert sizing.size_usd >= 0 and sizing.size >= 0
    plan = plan_execution(side=sizing.side, size_usd=sizing.size_usd, book=book if isinstance(book, dict) else None)
    assert plan.size_usd == sizing.size_usd
    dumps(sizing.as_dict())
    dumps(plan.as_dict())
