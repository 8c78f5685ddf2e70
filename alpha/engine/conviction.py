"""ConvictionEngine.analyze (seed §21): five components → one 0–100 score, bias and R:R hint.

Pipeline, in order:
1. components in [-1, 1]; volatility's directional score is forced to exactly 0.0;
2. raw = Σ weight_i × score_i / Σ weight_i (volatility's weight stays in the denominator, as specified);
3. raw ×= volatility amplifier (compression/expansion amplify, never add direction), clamped to [-1, 1];
4. time decay: factor = 1 for age <= decay_fresh_s, else 0.5 ** ((age_s - fresh) / half_life);
5. alts only, while BTC's signal is < btc_max_age_s old: signal = (1 - blend) × own + blend × btc × coef(symbol);
6. boosted = sign(signal) × |signal| ** transform_exponent;  score = (boosted + 1) × 50, clamped to [0, 100];
7. bias LONG if score >= long_threshold, SHORT if <= short_threshold, else NEUTRAL;
8. R:R: compression 3, expansion 1.5, else 2; × rr_strong_multiplier when |score - 50| >= rr_strong_distance.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from alpha.engine.config import COMPONENTS, DEFAULT_CONFIG, AlphaConfig
from alpha.engine.footprint import footprint
from alpha.engine.funding import funding_z
from alpha.engine.inputs import SymbolHistory, finite, timestamp
from alpha.engine.liquidation import liquidation_imbalance
from alpha.engine.regime import oi_regime
from alpha.engine.signal import ComponentSignal, clamp
from alpha.engine.volatility import VolatilityReading, volatility
from kernel.contracts.records import fields_dict

LONG, SHORT, NEUTRAL = "LONG", "SHORT", "NEUTRAL"


@dataclass(frozen=True, slots=True)
class BtcReference:
    """BTC's own decayed, pre-transform signal in [-1, 1] and when it was computed (epoch ms)."""

    signal: float
    ts_ms: int


@dataclass(frozen=True, slots=True)
class ComponentBreakdown:
    score: float
    weight: float  # normalised: weights sum to 1
    contribution: float  # weight × score, before amplification and decay
    inputs: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return fields_dict(self)


@dataclass(frozen=True, slots=True)
class ConvictionResult:
    symbol: str
    score: float  # 0–100, never NaN
    bias: str  # LONG | SHORT | NEUTRAL
    raw: float  # weighted, normalised, amplified sum in [-1, 1] (before decay)
    signal: float  # after decay and BTC blend: the input of the non-linear transform
    boosted: float  # sign(signal) × |signal| ** exponent
    decay_factor: float
    age_s: float | None
    btc_blend_applied: bool
    btc_coefficient: float | None
    own_signal: float  # after decay, before the BTC blend (what other symbols blend when this is BTC)
    volatility_regime: str
    volatility_amplifier: float
    rr: float
    components: dict[str, ComponentBreakdown]
    now_ms: int
    signal_ts_ms: int | None

    def btc_reference(self) -> BtcReference:
        return BtcReference(signal=self.own_signal, ts_ms=self.now_ms)

    def as_dict(self) -> dict[str, Any]:
        out = fields_dict(self)
        out["components"] = {name: c.as_dict() for name, c in self.components.items()}
        # On the wire the two times are `ts` and `signal_ts` (still the last two keys).
        out["ts"] = out.pop("now_ms")
        out["signal_ts"] = out.pop("signal_ts_ms")
        return out


def decay_factor(age_s: float | None, *, config: AlphaConfig = DEFAULT_CONFIG) -> float:
    """1.0 while fresh, then exponential with the configured half-life. Unknown age = 0 (cannot be shown fresh)."""
    if age_s is None or not math.isfinite(age_s):
        return 0.0
    if age_s <= config.decay_fresh_s:
        return 1.0
    return float(0.5 ** ((age_s - config.decay_fresh_s) / config.decay_half_life_s))


def transform(signal: float, *, config: AlphaConfig = DEFAULT_CONFIG) -> tuple[float, float]:
    """(boosted, score): sign-preserving power, then mapped to [0, 100]."""
    s = clamp(signal)
    boosted = math.copysign(abs(s) ** config.transform_exponent, s) if s else 0.0
    return boosted, clamp((boosted + 1.0) * 50.0, 0.0, 100.0)


def bias_for(score: float, *, config: AlphaConfig = DEFAULT_CONFIG) -> str:
    if score >= config.long_threshold:
        return LONG
    if score <= config.short_threshold:
        return SHORT
    return NEUTRAL


def reward_risk(score: float, vol_regime: str, *, config: AlphaConfig = DEFAULT_CONFIG) -> float:
    base = {"compression": config.rr_compression, "expansion": config.rr_expansion}.get(vol_regime, config.rr_normal)
    return base * config.rr_strong_multiplier if abs(score - 50.0) >= config.rr_strong_distance else base


def _btc_blend(symbol: str, own: float, btc: BtcReference | None, now_ms: int, cfg: AlphaConfig) -> float | None:
    """The blended signal, or None when the blend does not apply (BTC itself, no BTC, or BTC too old)."""
    if btc is None or symbol.upper() == cfg.btc_symbol.upper():
        return None
    btc_signal, btc_ts = finite(getattr(btc, "signal", None)), timestamp(getattr(btc, "ts_ms", None))
    if btc_signal is None or btc_ts is None or (now_ms - btc_ts) >= cfg.btc_max_age_s * 1000:
        return None
    coef = cfg.btc_coefficient(symbol)
    return (1.0 - cfg.btc_blend) * own + cfg.btc_blend * clamp(btc_signal) * coef


def combine(
    *,
    symbol: str,
    components: Mapping[str, ComponentSignal],
    vol: VolatilityReading,
    now_ms: int,
    signal_ts_ms: int | None,
    btc: BtcReference | None = None,
    config: AlphaConfig = DEFAULT_CONFIG,
) -> ConvictionResult:
    """Steps 2–8 over already-computed components (missing or non-finite components count as 0.0)."""
    cfg = config
    now_ms = timestamp(now_ms) or 0
    weights = cfg.weights()
    total_w = sum(weights.values())
    breakdown: dict[str, ComponentBreakdown] = {}
    for name in COMPONENTS:
        comp = components.get(name)
        score = 0.0 if name == "volatility" or comp is None else clamp(finite(comp.score) or 0.0)
        w = weights[name] / total_w
        breakdown[name] = ComponentBreakdown(score, w, w * score, dict(comp.inputs) if comp is not None else {})
    amplifier = finite(vol.amplifier)
    amplifier = amplifier if amplifier is not None and amplifier > 0 else 1.0
    raw = clamp(math.fsum(c.contribution for c in breakdown.values()) * amplifier)
    ts = timestamp(signal_ts_ms)
    age_s = max(0.0, (now_ms - ts) / 1000.0) if ts is not None else None
    factor = decay_factor(age_s, config=cfg)
    own = clamp(raw * factor)
    blended = _btc_blend(symbol, own, btc, now_ms, cfg)
    signal = clamp(own if blended is None else blended)
    boosted, score = transform(signal, config=cfg)
    return ConvictionResult(
        symbol=symbol,
        score=score,
        bias=bias_for(score, config=cfg),
        raw=raw,
        signal=signal,
        boosted=boosted,
        decay_factor=factor,
        age_s=age_s,
        btc_blend_applied=blended is not None,
        btc_coefficient=cfg.btc_coefficient(symbol) if blended is not None else None,
        own_signal=own,
        volatility_regime=vol.regime,
        volatility_amplifier=amplifier,
        rr=reward_risk(score, vol.regime, config=cfg),
        components=breakdown,
        now_ms=now_ms,
        signal_ts_ms=ts,
    )


Extractor = Callable[..., ComponentSignal]
EXTRACTORS: dict[str, Extractor] = {
    "regime": oi_regime,
    "footprint": footprint,
    "funding": funding_z,
    "liquidation": liquidation_imbalance,
}


class ConvictionEngine:
    """Stateless apart from its configuration; safe to share across symbols and threads."""

    def __init__(self, config: AlphaConfig = DEFAULT_CONFIG) -> None:
        self.config = config

    def components(
        self, *, history: SymbolHistory, now_ms: int
    ) -> tuple[dict[str, ComponentSignal], VolatilityReading]:
        vol = volatility(history=history, now_ms=now_ms, config=self.config)
        comps = {name: fn(history=history, now_ms=now_ms, config=self.config) for name, fn in EXTRACTORS.items()}
        comps["volatility"] = vol.signal()
        return comps, vol

    def analyze(
        self,
        *,
        history: SymbolHistory,
        now_ms: int,
        btc: BtcReference | None = None,
        signal_ts_ms: int | None = None,
    ) -> ConvictionResult:
        """Score `history` at `now_ms`. The signal's age defaults to the newest venue timestamp in the history."""
        now_ms = timestamp(now_ms) or history.updated_ms or 0
        comps, vol = self.components(history=history, now_ms=now_ms)
        return combine(
            symbol=history.symbol,
            components=comps,
            vol=vol,
            now_ms=now_ms,
            signal_ts_ms=history.updated_ms if signal_ts_ms is None else signal_ts_ms,
            btc=btc,
            config=self.config,
        )
