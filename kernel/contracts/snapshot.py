"""The per-symbol hot snapshot (architecture seed §7) and its freshness rules as data.

Every field group carries its own `*_ts` (epoch ms of the venue data it came from). Staleness is a pure
function of the snapshot and a time, so the gateway, the pages and the engines agree on it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Final

# Thresholds in milliseconds. A field is stale when its age is strictly greater than the threshold;
# a field that has never been seen is stale.
FRESHNESS_MS: Final[dict[str, int]] = {
    "price": 3_000,
    "book": 4_000,
    "trades": 5_000,
    "oi": 15_000,
    "funding": 15_000,
    "cvd": 5_000,
    "intel": 60_000,
}

# Which timestamp attribute each freshness group reads.
_TS_FIELD: Final[dict[str, str]] = {
    "price": "price_ts",
    "book": "book_ts",
    "trades": "trades_ts",
    "oi": "oi_ts",
    "funding": "funding_ts",
    "cvd": "cvd_ts",
    "intel": "intel_ts",
}


@dataclass(slots=True)
class SymbolSnapshot:
    symbol: str
    price: str | None = None
    price_ts: int | None = None
    book: dict[str, list[list[str]]] = field(default_factory=lambda: {"bids": [], "asks": []})
    book_ts: int | None = None
    book_stats: dict[str, Any] = field(default_factory=dict)
    trades: list[dict[str, Any]] = field(default_factory=list)
    trades_ts: int | None = None
    cvd_venue: float | None = None
    cvd_venue_1m: float | None = None
    cvd_venue_5m: float | None = None
    cvd_spot_1m: float | None = None
    cvd_spot_5m: float | None = None
    cvd_source: str | None = None
    cvd_ts: int | None = None
    oi_total: float | None = None
    oi_hl: float | None = None
    oi_binance_perp: float | None = None
    oi_source: str | None = None
    oi_ts: int | None = None
    funding_rate: float | None = None
    funding_annualized: float | None = None
    next_funding_ms: int | None = None
    funding_ts: int | None = None
    mark_px: str | None = None
    oracle_px: str | None = None
    premium: float | None = None
    change_24h: float | None = None
    volume_24h: float | None = None
    intel: dict[str, Any] = field(default_factory=dict)
    intel_ts: int | None = None
    stale_reason: str | None = None
    updated_at: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> SymbolSnapshot:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in obj.items() if k in known})


@dataclass(frozen=True, slots=True)
class Freshness:
    age_ms: int | None
    threshold_ms: int
    stale: bool


def field_staleness(ts_ms: int | None, now_ms: int, threshold_ms: int) -> Freshness:
    if ts_ms is None:
        return Freshness(age_ms=None, threshold_ms=threshold_ms, stale=True)
    age = max(0, now_ms - ts_ms)
    return Freshness(age_ms=age, threshold_ms=threshold_ms, stale=age > threshold_ms)


def staleness(snapshot: SymbolSnapshot, now_ms: int) -> dict[str, Freshness]:
    """Per-group freshness of a snapshot at `now_ms`."""
    return {
        group: field_staleness(getattr(snapshot, _TS_FIELD[group]), now_ms, threshold)
        for group, threshold in FRESHNESS_MS.items()
    }


def staleness_dict(snapshot: SymbolSnapshot, now_ms: int) -> dict[str, dict[str, Any]]:
    """The same, shaped for the wire: {"price": {"age_ms": 120, "stale": false}, ...}."""
    return {
        group: {"age_ms": f.age_ms, "threshold_ms": f.threshold_ms, "stale": f.stale}
        for group, f in staleness(snapshot, now_ms).items()
    }
