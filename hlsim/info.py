"""POST /info: request validation (malformed → 422) and the venue's response shapes."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from hlsim.accounts import liquidation_px, usd
from hlsim.candles import INTERVAL_MS
from hlsim.engine import Venue
from hlsim.orders import BadRequest, parse_address, parse_cloid, parse_int, require
from hlsim.ticks import aggregation_step, fmt_decimal, fmt_float, price_decimals
from hlsim.universe import SPOT_META

TIME_RANGE_LIMIT = 500
USER_FILLS_LIMIT = 2000

# IP weight per request type (protocol reference §4); everything else weighs 20.
INFO_WEIGHTS: dict[str, int] = {
    "l2Book": 2,
    "allMids": 2,
    "clearinghouseState": 2,
    "orderStatus": 2,
    "spotClearinghouseState": 2,
    "exchangeStatus": 2,
    "userRole": 60,
}
PER_ITEMS_WEIGHT: dict[str, int] = {
    "userFills": 20,
    "userFillsByTime": 20,
    "fundingHistory": 20,
    "userFunding": 20,
    "candleSnapshot": 60,
}


def info_weight(*, kind: str, n_items: int) -> int:
    base = INFO_WEIGHTS.get(kind, 20)
    per = PER_ITEMS_WEIGHT.get(kind)
    return base + (n_items // per if per else 0)


def _user(body: dict) -> str:
    return parse_address(body.get("user"))


def _coin(v: Venue, body: dict) -> str:
    coin = body.get("coin")
    require(isinstance(coin, str) and coin in v.specs)
    return str(coin)


def meta(v: Venue, body: dict) -> Any:
    require(body.get("dex", "") in ("", None))
    universe = [{"name": c.name, "szDecimals": c.sz_decimals, "maxLeverage": c.max_leverage} for c in v.market.coins]
    tables = sorted({c.max_leverage for c in v.market.coins})
    return {
        "universe": universe,
        "marginTables": [
            [lev, {"description": "", "marginTiers": [{"lowerBound": "0.0", "maxLeverage": lev}]}] for lev in tables
        ],
    }


def asset_ctx_wire(v: Venue, coin: str) -> dict:
    ctx = v.market.asset_ctx(coin)
    spec = v.specs[coin]
    d = price_decimals(px=float(ctx["markPx"]), sz_decimals=spec.sz_decimals)  # type: ignore[arg-type]
    impact = ctx["impactPxs"]
    return {
        "dayNtlVlm": fmt_float(ctx["dayNtlVlm"], 2),  # type: ignore[arg-type]
        "funding": fmt_float(ctx["funding"], 8),  # type: ignore[arg-type]
        "impactPxs": [fmt_float(impact[0], d), fmt_float(impact[1], d)],  # type: ignore[index]
        "markPx": fmt_float(ctx["markPx"], d),  # type: ignore[arg-type]
        "midPx": fmt_float(ctx["midPx"], d + 1),  # type: ignore[arg-type]
        "openInterest": fmt_float(ctx["openInterest"], spec.sz_decimals),  # type: ignore[arg-type]
        "oraclePx": fmt_float(ctx["oraclePx"], d),  # type: ignore[arg-type]
        "premium": fmt_float(ctx["premium"], 8),  # type: ignore[arg-type]
        "prevDayPx": fmt_float(ctx["prevDayPx"], d),  # type: ignore[arg-type]
        "dayBaseVlm": fmt_float(ctx["dayBaseVlm"], spec.sz_decimals),  # type: ignore[arg-type]
    }


def meta_and_asset_ctxs(v: Venue, body: dict) -> Any:
    return [meta(v, {}), [asset_ctx_wire(v, c.name) for c in v.market.coins]]


def spot_meta(v: Venue, body: dict) -> Any:
    return SPOT_META


def all_mids(v: Venue, body: dict) -> Any:
    require(body.get("dex", "") in ("", None))
    return all_mids_map(v)


def all_mids_map(v: Venue) -> dict[str, str]:
    out = {}
    for coin, spec in v.specs.items():
        mid = v.market.mid(coin)
        out[coin] = fmt_float(mid, price_decimals(px=mid, sz_decimals=spec.sz_decimals) + 1)
    return out


def _aggregate(levels: list, *, is_bid: bool, n_sig: int, mantissa: int | None) -> list[tuple[float, float, int]]:
    out: list[list] = []
    for px, sz, n in levels:
        step = aggregation_step(px=px, n_sig_figs=n_sig, mantissa=mantissa)
        bucket = (px // step) * step if is_bid else -((-px) // step) * step
        bucket = round(bucket, 10)
        if out and out[-1][0] == bucket:
            out[-1][1] += sz
            out[-1][2] += n
        else:
            out.append([bucket, sz, n])
    return [(p, s, n) for p, s, n in out]


def l2_book_wire(
    v: Venue, coin: str, n_sig: int | None = None, mantissa: int | None = None, *, now: int | None = None
) -> dict:
    book = v.market.book(coin)
    spec = v.specs[coin]
    bids, asks = book.bids, book.asks
    if n_sig is not None and n_sig < 5 or mantissa:
        bids = _aggregate(bids, is_bid=True, n_sig=n_sig or 5, mantissa=mantissa)
        asks = _aggregate(asks, is_bid=False, n_sig=n_sig or 5, mantissa=mantissa)
    d = price_decimals(px=bids[0][0], sz_decimals=spec.sz_decimals)
    szd = spec.sz_decimals
    return {
        "coin": coin,
        "time": now if now is not None else v.clock(),
        "levels": [
            [{"px": fmt_float(p, d), "sz": fmt_float(s, szd), "n": n} for p, s, n in bids[:20]],
            [{"px": fmt_float(p, d), "sz": fmt_float(s, szd), "n": n} for p, s, n in asks[:20]],
        ],
    }


def parse_book_params(body: dict) -> tuple[int | None, int | None]:
    n_sig = body.get("nSigFigs")
    mantissa = body.get("mantissa")
    require(n_sig is None or (isinstance(n_sig, int) and 2 <= n_sig <= 5))
    require(mantissa is None or (mantissa in (1, 2, 5) and n_sig == 5))
    return n_sig, mantissa


def l2_book(v: Venue, body: dict) -> Any:
    coin = body.get("coin")
    require(isinstance(coin, str))
    if coin not in v.specs:
        return None  # the venue answers null for an unknown coin
    n_sig, mantissa = parse_book_params(body)
    return l2_book_wire(v, coin, n_sig, mantissa)


def candle_snapshot(v: Venue, body: dict) -> Any:
    req = body.get("req")
    require(isinstance(req, dict))
    coin, interval = req.get("coin"), req.get("interval")
    require(isinstance(coin, str) and interval in INTERVAL_MS)
    start = parse_int(req.get("startTime"))
    end = req.get("endTime")
    end = parse_int(end) if end is not None else v.clock()
    if coin not in v.specs:
        return []
    return v.candles[coin].candles(interval=interval, start_ms=start, end_ms=end)


def clearinghouse_state(v: Venue, body: dict) -> Any:
    user = _user(body)
    acct = v.account(user)
    now = v.clock()
    if acct is None:  # an agent address has no state of its own
        return _empty_state(now)
    s = v.summary(acct)
    positions = []
    for coin, pos in acct.positions.items():
        if pos.szi == 0:
            continue
        spec = v.specs[coin]
        mark = v.mark(coin)
        kind, lev = v.leverage(acct, coin)
        value = abs(pos.szi) * mark
        upnl = (mark - pos.entry_px) * pos.szi
        margin = value / lev
        other_maint = s.maintenance - value / (2 * spec.max_leverage)
        liq = liquidation_px(
            szi=pos.szi,
            entry_px=pos.entry_px,
            mark=mark,
            account_value=s.account_value,
            other_maint=other_maint,
            max_leverage=spec.max_leverage,
        )
        leverage: dict[str, Any] = {"type": kind, "value": lev}
        if kind == "isolated":
            leverage["rawUsd"] = usd(-pos.szi * pos.entry_px + margin)
        positions.append(
            {
                "type": "oneWay",
                "position": {
                    "coin": coin,
                    "szi": fmt_decimal(pos.szi),
                    "entryPx": fmt_decimal(v._px_round(coin, pos.entry_px)),
                    "leverage": leverage,
                    "liquidationPx": fmt_decimal(v._px_round(coin, liq)) if liq else None,
                    "marginUsed": usd(margin),
                    "maxLeverage": spec.max_leverage,
                    "positionValue": usd(value),
                    "returnOnEquity": fmt_decimal(
                        (upnl / (abs(pos.szi) * pos.entry_px / lev)).quantize(Decimal("1e-8"))
                    ),
                    "unrealizedPnl": usd(upnl),
                    "cumFunding": {
                        "allTime": usd(pos.funding_all_time),
                        "sinceChange": usd(pos.funding_since_change),
                        "sinceOpen": usd(pos.funding_since_open),
                    },
                },
            }
        )
    summary = {
        "accountValue": usd(s.account_value),
        "totalMarginUsed": usd(s.total_margin_used),
        "totalNtlPos": usd(s.total_ntl_pos),
        "totalRawUsd": usd(s.total_raw_usd),
    }
    return {
        "assetPositions": positions,
        "crossMaintenanceMarginUsed": usd(s.maintenance),
        "crossMarginSummary": dict(summary),
        "marginSummary": summary,
        "time": now,
        "withdrawable": usd(s.withdrawable),
    }


def _empty_state(now: int) -> dict:
    zero = {"accountValue": "0.0", "totalMarginUsed": "0.0", "totalNtlPos": "0.0", "totalRawUsd": "0.0"}
    return {
        "assetPositions": [],
        "crossMaintenanceMarginUsed": "0.0",
        "crossMarginSummary": dict(zero),
        "marginSummary": zero,
        "time": now,
        "withdrawable": "0.0",
    }


def open_orders(v: Venue, body: dict) -> Any:
    user = _user(body)
    return [o.open_wire() for o in sorted(v.user_orders(user), key=lambda o: -o.oid) if not o.waiting_for_fill]


def frontend_open_orders(v: Venue, body: dict) -> Any:
    user = _user(body)
    out = []
    for o in sorted(v.user_orders(user), key=lambda o: -o.oid):
        if o.parent is not None:
            continue  # children are listed under their parent
        kids = [v.orders[c].frontend_wire() for c in o.children if v.orders[c].is_open]
        out.append(o.frontend_wire(kids))
    return out


def user_fills(v: Venue, body: dict) -> Any:
    acct = v.account(_user(body))
    fills = acct.fills if acct else []
    return list(reversed(fills[-USER_FILLS_LIMIT:]))


def _time_window(rows: list[dict], body: dict) -> list[dict]:
    """The rows from `startTime` to the optional `endTime` (both inclusive), at most TIME_RANGE_LIMIT of them."""
    start = parse_int(body.get("startTime"))
    end = body.get("endTime")
    end = parse_int(end) if end is not None else None
    return [r for r in rows if r["time"] >= start and (end is None or r["time"] <= end)][:TIME_RANGE_LIMIT]


def user_fills_by_time(v: Venue, body: dict) -> Any:
    acct = v.account(_user(body))
    return _time_window(acct.fills if acct else [], body)


def order_status(v: Venue, body: dict) -> Any:
    user = _user(body)
    raw = body.get("oid")
    ref: int | str = parse_cloid(raw) if isinstance(raw, str) else parse_int(raw)
    order = v.find_order(user, ref)
    if order is None:
        return {"status": "unknownOid"}
    return {
        "status": "order",
        "order": {"order": order.frontend_wire(), "status": order.status, "statusTimestamp": order.status_ts},
    }


def funding_history(v: Venue, body: dict) -> Any:
    coin = _coin(v, body)
    return _time_window(v.funding_history[coin], body)


def user_funding(v: Venue, body: dict) -> Any:
    acct = v.account(_user(body))
    return [
        {
            "time": r["time"],
            "hash": "0x" + "0" * 64,
            "delta": {
                "type": "funding",
                "coin": r["coin"],
                "usdc": r["usdc"],
                "szi": r["szi"],
                "fundingRate": r["fundingRate"],
            },
        }
        for r in _time_window(acct.fundings if acct else [], body)
    ]


def user_rate_limit(v: Venue, body: dict) -> Any:
    acct = v.account(_user(body))
    vol = acct.cum_volume if acct else Decimal(0)
    used = acct.n_requests if acct else 0
    return {"cumVlm": fmt_decimal(vol), "nRequestsUsed": used, "nRequestsCap": 10_000 + int(vol), "nRequestsSurplus": 0}


def user_role(v: Venue, body: dict) -> Any:
    user = _user(body)
    master = v.agent_master.get(user)
    if master is not None:
        return {"role": "agent", "data": {"user": master}}
    return {"role": "user"} if user in v.accounts else {"role": "missing"}


def extra_agents(v: Venue, body: dict) -> Any:
    acct = v.accounts.get(_user(body))
    if acct is None:
        return []
    return [{"name": a.name, "address": a.address, "validUntil": a.valid_until} for a in acct.agents.values()]


def spot_clearinghouse_state(v: Venue, body: dict) -> Any:
    _user(body)
    return {"balances": []}


def user_fees(v: Venue, body: dict) -> Any:
    _user(body)
    return {
        "userCrossRate": "0.00045",
        "userAddRate": "0.00015",
        "activeReferralDiscount": "0.0",
        "dailyUserVlm": [],
        "feeSchedule": {"cross": "0.00045", "add": "0.00015"},
    }


INFO_HANDLERS: dict[str, Callable[[Venue, dict], Any]] = {
    "meta": meta,
    "metaAndAssetCtxs": meta_and_asset_ctxs,
    "spotMeta": spot_meta,
    "allMids": all_mids,
    "l2Book": l2_book,
    "candleSnapshot": candle_snapshot,
    "clearinghouseState": clearinghouse_state,
    "openOrders": open_orders,
    "frontendOpenOrders": frontend_open_orders,
    "userFills": user_fills,
    "userFillsByTime": user_fills_by_time,
    "orderStatus": order_status,
    "fundingHistory": funding_history,
    "userFunding": user_funding,
    "userRateLimit": user_rate_limit,
    "userRole": user_role,
    "extraAgents": extra_agents,
    "spotClearinghouseState": spot_clearinghouse_state,
    "userFees": user_fees,
}


def handle_info(v: Venue, body: Any) -> tuple[str, Any]:
    """Returns (type, response). Raises BadRequest for anything that would not deserialize on the venue."""
    if not isinstance(body, dict) or not isinstance(body.get("type"), str):
        raise BadRequest("no type")
    kind = body["type"]
    handler = INFO_HANDLERS.get(kind)
    if handler is None:
        raise BadRequest(f"unknown type {kind}")
    return kind, handler(v, body)
