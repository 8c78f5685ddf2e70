"""Default perp universe: names, szDecimals, maxLeverage and starting prices close to the venue's."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CoinSpec:
    name: str
    sz_decimals: int
    max_leverage: int
    start_px: float
    # Annualised volatility used by the price process.
    ann_vol: float
    # Typical taker trade notional in USD; scales sizes and depth.
    liquidity: float
    # Starting open interest in USD.
    oi_usd: float


# Venue-like parameters (szDecimals / maxLeverage as listed on Hyperliquid mainnet at the time of writing).
DEFAULT_COINS: tuple[CoinSpec, ...] = (
    CoinSpec("BTC", 5, 40, 67000.0, 0.55, 40000.0, 3.0e9),
    CoinSpec("ETH", 4, 25, 3000.0, 0.70, 25000.0, 1.5e9),
    CoinSpec("SOL", 2, 20, 150.0, 0.90, 12000.0, 6.0e8),
    CoinSpec("XRP", 0, 20, 0.52, 0.85, 6000.0, 2.0e8),
    CoinSpec("DOGE", 0, 20, 0.15, 1.00, 5000.0, 1.5e8),
    CoinSpec("AVAX", 2, 10, 28.0, 1.00, 3000.0, 8.0e7),
    CoinSpec("LINK", 1, 10, 14.0, 0.95, 3000.0, 7.0e7),
    CoinSpec("ARB", 1, 10, 0.80, 1.10, 2500.0, 5.0e7),
    CoinSpec("OP", 1, 10, 1.70, 1.10, 2500.0, 4.0e7),
    CoinSpec("SUI", 1, 10, 1.10, 1.20, 4000.0, 1.0e8),
    CoinSpec("APT", 2, 10, 7.5, 1.10, 2000.0, 4.0e7),
    CoinSpec("LTC", 2, 10, 75.0, 0.80, 2000.0, 5.0e7),
    CoinSpec("BNB", 3, 10, 580.0, 0.60, 4000.0, 8.0e7),
    CoinSpec("NEAR", 1, 10, 5.2, 1.10, 2000.0, 4.0e7),
    CoinSpec("INJ", 1, 10, 22.0, 1.20, 1500.0, 3.0e7),
    CoinSpec("TIA", 1, 10, 6.0, 1.30, 1500.0, 3.0e7),
    CoinSpec("SEI", 0, 10, 0.40, 1.30, 1500.0, 2.5e7),
    CoinSpec("WIF", 0, 10, 2.2, 1.60, 4000.0, 8.0e7),
    CoinSpec("kPEPE", 0, 10, 0.0098, 1.50, 4000.0, 7.0e7),
    CoinSpec("HYPE", 2, 10, 25.0, 1.20, 8000.0, 4.0e8),
    CoinSpec("ADA", 0, 10, 0.45, 0.90, 2000.0, 4.0e7),
    CoinSpec("DOT", 1, 10, 6.5, 0.90, 1500.0, 3.0e7),
    CoinSpec("ATOM", 2, 10, 7.8, 0.90, 1500.0, 2.5e7),
)

COINS_BY_NAME: dict[str, CoinSpec] = {c.name: c for c in DEFAULT_COINS}


def synthetic_coin(*, name: str, index: int) -> CoinSpec:
    """A deterministic extra perp for benchmarks asking for more symbols than the default universe has."""
    px = round(1.0 + (index * 7919 % 997) / 10.0, 2)
    return CoinSpec(name, 1, 10, px, 1.0, 2000.0, 2.0e7)


def resolve_universe(*, symbols: list[str] | None = None, n_symbols: int | None = None) -> tuple[CoinSpec, ...]:
    """Coins for a simulator: explicit `symbols`, else the first `n_symbols` (padded with synthetic coins)."""
    if symbols:
        unknown = [s for s in symbols if s not in COINS_BY_NAME]
        if unknown:
            raise ValueError(f"unknown symbols: {', '.join(unknown)} (known: {', '.join(COINS_BY_NAME)})")
        return tuple(COINS_BY_NAME[s] for s in symbols)
    if n_symbols is None or n_symbols <= len(DEFAULT_COINS):
        return DEFAULT_COINS[: n_symbols or len(DEFAULT_COINS)]
    extra = tuple(synthetic_coin(name=f"SYN{i}", index=i) for i in range(n_symbols - len(DEFAULT_COINS)))
    return DEFAULT_COINS + extra


# A small spot universe, enough for the SDK's Info constructor (asset id 10000 + index).
SPOT_META: dict = {
    "tokens": [
        {
            "name": "USDC",
            "szDecimals": 8,
            "weiDecimals": 8,
            "index": 0,
            "tokenId": "0x6d1e7cde53ba9467b783cb7c530ce054",
            "isCanonical": True,
            "evmContract": None,
            "fullName": None,
        },
        {
            "name": "PURR",
            "szDecimals": 0,
            "weiDecimals": 5,
            "index": 1,
            "tokenId": "0xc1fb593aeffbeb02f85e0308e9956a90",
            "isCanonical": True,
            "evmContract": None,
            "fullName": None,
        },
        {
            "name": "HYPE",
            "szDecimals": 2,
            "weiDecimals": 8,
            "index": 150,
            "tokenId": "0x0d01dc56dcaaca66ad901c959b4011ec",
            "isCanonical": False,
            "evmContract": None,
            "fullName": "Hyperliquid",
        },
    ],
    "universe": [
        {"name": "PURR/USDC", "tokens": [1, 0], "index": 0, "isCanonical": True},
        {"name": "@107", "tokens": [150, 0], "index": 107, "isCanonical": False},
    ],
}
