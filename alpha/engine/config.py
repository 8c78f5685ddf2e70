"""Every weight, window and threshold of the alpha engine in one frozen, validated dataclass.

Defaults come from the architecture seed §21 (weights 35/25/15/15/10, 30 s fresh window + 2 min half-life,
20 % BTC blend under 120 s, pow 0.7, bias 55/45, R:R 3 / 1.5 / 2 × 1.2) and, for the risk defaults, from the
production column of the risk-limits seed. The admin edits these as a dict: `AlphaConfig.from_dict` rejects
unknown keys and values of the wrong type so a typo never silently falls back to a default.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any

from kernel.contracts.records import fields_dict

COMPONENTS: tuple[str, ...] = ("regime", "footprint", "volatility", "funding", "liquidation")

DEFAULT_BTC_CORRELATION: Mapping[str, float] = MappingProxyType({"ETH": 0.85, "SOL": 0.78})


class AlphaConfigError(ValueError):
    """Raised for an invalid engine configuration. `code` is stable for the admin/API layer to map."""

    code = "alpha_config_invalid"


@dataclass(frozen=True, slots=True)
class AlphaConfig:
    # --- conviction weights (seed §21); normalised by their total -------------------------------------------
    weight_regime: float = 35.0
    weight_footprint: float = 25.0
    weight_volatility: float = 15.0
    weight_funding: float = 15.0
    weight_liquidation: float = 10.0

    # --- time decay ------------------------------------------------------------------------------------------
    decay_fresh_s: float = 30.0
    decay_half_life_s: float = 120.0

    # --- BTC cross-correlation ------------------------------------------------------------------------------
    btc_symbol: str = "BTC"
    btc_blend: float = 0.2  # final = (1 - blend) * own + blend * btc * coef
    btc_max_age_s: float = 120.0
    btc_default_coef: float = 0.6
    btc_correlation: Mapping[str, float] = field(default_factory=lambda: DEFAULT_BTC_CORRELATION)

    # --- transform and bias ---------------------------------------------------------------------------------
    transform_exponent: float = 0.7
    long_threshold: float = 55.0
    short_threshold: float = 45.0

    # --- dynamic R:R ----------------------------------------------------------------------------------------
    rr_compression: float = 3.0
    rr_expansion: float = 1.5
    rr_normal: float = 2.0
    rr_strong_multiplier: float = 1.2
    rr_strong_distance: float = 20.0  # |score - 50| >= this

    # --- history (ring buffers fed by markets snapshots every ~200 ms) ---------------------------------------
    history_horizon_s: float = 1800.0  # price / OI / funding series
    series_spacing_ms: int = 1000  # at most one point per series per this many ms (the last one wins)
    series_max_points: int = 4000
    trades_horizon_s: float = 120.0
    trades_max: int = 3000
    books_max: int = 5
    book_levels: int = 20
    liquidations_horizon_s: float = 300.0
    liquidations_max: int = 1000

    # --- OI regime --------------------------------------------------------------------------------------------
    regime_window_s: float = 300.0
    regime_min_window_s: float = 60.0  # shorter coverage than this = no data
    regime_price_dead_pct: float = 0.05  # |price change| below this % = no move
    regime_oi_dead_pct: float = 0.1
    regime_price_full_pct: float = 1.0  # a move this large (in %) gives full magnitude
    regime_oi_full_pct: float = 2.0
    regime_unwind_factor: float = 0.5  # short covering / long liquidation are "weak" versions

    # --- volatility -------------------------------------------------------------------------------------------
    vol_bucket_s: float = 60.0  # realised volatility per completed bucket of this length
    vol_min_buckets: int = 5  # fewer completed buckets = regime "unknown"
    vol_compression_pct: float = 20.0  # current RV at or below this percentile = compression
    vol_expansion_pct: float = 80.0  # at or above = expansion
    vol_amp_compression: float = 1.2  # multiplier applied to the directional sum
    vol_amp_expansion: float = 1.1

    # --- footprint --------------------------------------------------------------------------------------------
    footprint_w_sweep: float = 0.3
    footprint_w_absorption: float = 0.2
    footprint_w_flow: float = 0.3
    footprint_w_impulse: float = 0.2
    sweep_lookback_s: float = 30.0
    sweep_group_ms: int = 250  # same-side trades this close together are one aggressive order
    sweep_min_levels: int = 3
    absorption_window_s: float = 10.0
    absorption_min_delta_share: float = 0.5  # |buy - sell| / total notional
    absorption_heavy_mult: float = 2.0  # window notional vs the average per equal window
    absorption_max_progress_bps: float = 5.0
    flow_window_s: float = 30.0
    flow_book_bps: float = 25.0  # book imbalance counts levels within this distance from mid
    flow_w_book: float = 0.5  # the rest is trade flow
    impulse_window_s: float = 5.0
    impulse_full_bps: float = 30.0
    impulse_min_bps: float = 8.0
    impulse_volume_mult: float = 1.5

    # --- funding (contrarian) ------------------------------------------------------------------------------
    funding_horizon_s: float = 8 * 3600.0
    funding_spacing_ms: int = 60_000  # one funding point per minute: the rate moves slowly
    funding_min_samples: int = 30
    funding_neutral: float = 0.0000125  # Hyperliquid's hourly baseline (0.01 % / 8 h)
    funding_abs_scale: float = 0.00005  # absolute anchor: z_abs = (rate - neutral) / scale
    funding_z_dead: float = 1.0
    funding_z_full: float = 3.0

    # --- liquidation ----------------------------------------------------------------------------------------
    liquidation_window_s: float = 300.0
    liquidation_full_notional: float = 250_000.0  # total notional giving full magnitude

    # --- probability (uncalibrated heuristic) -----------------------------------------------------------------
    prob_slope: float = 0.03
    prob_floor: float = 0.05
    prob_ceiling: float = 0.95

    # --- sizing ---------------------------------------------------------------------------------------------
    kelly_multiplier: float = 0.25  # quarter Kelly
    max_equity_fraction: float = 0.10
    target_vol_annual: float = 0.60
    vol_scale_max: float = 2.0
    vol_scale_unknown: float = 0.5  # conservative when realised volatility is not known yet
    stop_loss_pct: float = 3.0
    min_order_usd: float = 10.0

    # --- execution plan -------------------------------------------------------------------------------------
    plan_depth_bps: float = 20.0
    plan_single_max_ratio: float = 0.10
    plan_ladder_max_ratio: float = 0.50
    plan_ladder_levels: int = 5
    plan_ladder_span_bps: float = 15.0
    plan_twap_slice_ratio: float = 0.10
    plan_twap_interval_s: float = 30.0
    plan_twap_max_slices: int = 20

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float | int) and not isinstance(value, bool) and not math.isfinite(value):
                raise AlphaConfigError(f"{f.name} must be finite")
        weights = self.weights()
        if any(w < 0 for w in weights.values()):
            raise AlphaConfigError("weights must be >= 0")
        if sum(weights.values()) <= 0:
            raise AlphaConfigError("the total weight must be > 0")
        if not self.short_threshold < 50.0 < self.long_threshold:
            raise AlphaConfigError("short_threshold < 50 < long_threshold is required")
        if not 0.0 <= self.btc_blend <= 1.0:
            raise AlphaConfigError("btc_blend must be within [0, 1]")
        if self.decay_half_life_s <= 0 or self.transform_exponent <= 0:
            raise AlphaConfigError("decay_half_life_s and transform_exponent must be > 0")
        if not 0.0 < self.prob_floor < 0.5 < self.prob_ceiling < 1.0:
            raise AlphaConfigError("0 < prob_floor < 0.5 < prob_ceiling < 1 is required")
        if not self.vol_compression_pct < self.vol_expansion_pct:
            raise AlphaConfigError("vol_compression_pct must be below vol_expansion_pct")
        if not 0 < self.plan_single_max_ratio <= self.plan_ladder_max_ratio:
            raise AlphaConfigError("0 < plan_single_max_ratio <= plan_ladder_max_ratio is required")
        positive = (
            "series_spacing_ms",
            "funding_spacing_ms",
            "funding_horizon_s",
            "history_horizon_s",
            "series_max_points",
            "trades_max",
            "books_max",
            "book_levels",
            "liquidations_max",
            "vol_bucket_s",
            "vol_min_buckets",
            "plan_ladder_levels",
            "plan_twap_max_slices",
            "regime_window_s",
            "regime_price_full_pct",
            "regime_oi_full_pct",
            "funding_abs_scale",
            "liquidation_full_notional",
            "impulse_full_bps",
            "sweep_min_levels",
            "funding_z_full",
            "absorption_max_progress_bps",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise AlphaConfigError(f"{name} must be > 0")
        if self.funding_z_dead >= self.funding_z_full:
            raise AlphaConfigError("funding_z_dead must be below funding_z_full")
        for sym, coef in self.btc_correlation.items():
            if not isinstance(sym, str) or not isinstance(coef, float | int) or not math.isfinite(coef):
                raise AlphaConfigError("btc_correlation must map symbol -> finite number")
        # A read-only copy so a frozen config cannot be mutated through the mapping it was given.
        object.__setattr__(
            self, "btc_correlation", MappingProxyType({k.upper(): float(v) for k, v in self.btc_correlation.items()})
        )

    def weights(self) -> dict[str, float]:
        return {name: getattr(self, f"weight_{name}") for name in COMPONENTS}

    def btc_coefficient(self, symbol: str) -> float:
        return self.btc_correlation.get(symbol.upper(), self.btc_default_coef)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AlphaConfig:
        """Build from an admin-edited dict: unknown keys and wrong types raise AlphaConfigError."""
        if not isinstance(data, Mapping):
            raise AlphaConfigError("configuration must be a mapping")
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise AlphaConfigError(f"unknown configuration keys: {', '.join(map(str, unknown))}")
        kwargs: dict[str, Any] = {}
        defaults = cls()
        for name, value in data.items():
            kwargs[name] = _coerce(name, value, getattr(defaults, name))
        return cls(**kwargs)

    def as_dict(self) -> dict[str, Any]:
        out = fields_dict(self)
        out["btc_correlation"] = dict(self.btc_correlation)
        return out


def _coerce(name: str, value: Any, default: Any) -> Any:
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise AlphaConfigError(f"{name} must be a boolean")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise AlphaConfigError(f"{name} must be an integer")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise AlphaConfigError(f"{name} must be a number")
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str) or not value:
            raise AlphaConfigError(f"{name} must be a non-empty string")
        return value
    if isinstance(default, Mapping):
        if not isinstance(value, Mapping):
            raise AlphaConfigError(f"{name} must be a mapping")
        return dict(value)
    raise AlphaConfigError(f"{name} cannot be set")  # pragma: no cover - every field type is handled above


DEFAULT_CONFIG = AlphaConfig()
