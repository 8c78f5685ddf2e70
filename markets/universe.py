"""The perp universe from REST (metaAndAssetCtxs): tokens with their contexts, ranking and the symbol map.

The venue's socket pieces (URL, frames, back-off) are in kernel.venue.streams; the socket loop in markets.ingest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from kernel.venue.market_data import Upstream
from markets import normalize

# What a token says about itself (as_dict): its own fields, then the venue context under our names.
TOKEN_FIELDS: Final = ("symbol", "coin", "sz_decimals", "max_leverage", "day_ntl_vlm")
CTX_FIELDS: Final = {
    "mark_px": "markPx",
    "mid_px": "midPx",
    "prev_day_px": "prevDayPx",
    "funding": "funding",
    "open_interest": "openInterest",
}


@dataclass(frozen=True, slots=True)
class Token:
    symbol: str
    coin: str
    sz_decimals: int
    max_leverage: int
    day_ntl_vlm: float
    ctx: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {name: getattr(self, name) for name in TOKEN_FIELDS}
        out.update({name: self.ctx.get(wire) for name, wire in CTX_FIELDS.items()})
        return out


def parse_universe(payload: Any) -> list[Token]:
    """metaAndAssetCtxs → tokens (delisted perps skipped), ctx[i] ↔ universe[i]."""
    if not isinstance(payload, list) or len(payload) != 2:
        raise ValueError("metaAndAssetCtxs must be [meta, ctxs]")
    meta, ctxs = payload
    universe = meta.get("universe") if isinstance(meta, dict) else None
    if not isinstance(universe, list) or not isinstance(ctxs, list):
        raise ValueError("metaAndAssetCtxs without universe/ctxs lists")
    tokens = []
    for asset, ctx in zip(universe, ctxs, strict=False):
        if not isinstance(asset, dict) or asset.get("isDelisted") or not isinstance(asset.get("name"), str):
            continue
        ctx = ctx if isinstance(ctx, dict) else {}
        try:
            vlm = float(ctx.get("dayNtlVlm") or 0.0)
        except (TypeError, ValueError):
            vlm = 0.0
        coin = asset["name"]
        tokens.append(
            Token(
                symbol=coin.upper(),
                coin=coin,
                sz_decimals=int(asset.get("szDecimals", 0)),
                max_leverage=int(asset.get("maxLeverage", 1)),
                day_ntl_vlm=vlm,
                ctx=ctx,
            )
        )
    return tokens


def top_by_volume(tokens: list[Token], n: int) -> list[str]:
    return [t.symbol for t in sorted(tokens, key=lambda t: -t.day_ntl_vlm)[:n]]


def fetch_universe(upstream: Upstream, *, ttl_sec: float) -> list[Token]:
    """Blocking (call through asyncio.to_thread): the perp universe with contexts, under the metadata budget."""
    result = upstream.info({"type": "metaAndAssetCtxs"}, ttl_sec=ttl_sec)
    return parse_universe(result.data)


def symbol_map(tokens: list[Token]) -> normalize.SymbolMap:
    return normalize.SymbolMap([t.coin for t in tokens])
