"""Pre-trade checks: one pure function over a typed context (no ORM, no I/O), each failure with its own code.

The relay gathers the context (controls, capabilities, hot state, venue meta, positions, every live order of the
user, today's PnL, drawdown, open breakers) under the user's lock, calls `evaluate`, audits the verdict and only
then sends. `evaluate` also normalises the order: sizes in USD become coin sizes rounded down to the lot, market
orders get a bounded IOC price rounded to a valid tick; invalid limit prices are rejected with the reason (never
sent).

Limits are checked against the WORST CASE: the position plus every live order on the same side (pending,
submitted, resting, partially filled, unknown) plus the new one — a resting order can fill at any moment, and an
order whose outcome is unknown may have filled. Reduce-only orders (closes, stops, take-profits) cannot add risk:
the kill switch and breakers let them through.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Final

from kernel.contracts.snapshot import FRESHNESS_MS
from kernel.venue.rounding import (
    MIN_NOTIONAL_USD,
    AssetSpec,
    is_valid_price,
    is_valid_size,
    round_price,
    round_size,
    to_wire,
)

ZERO = Decimal(0)
BPS = Decimal(10_000)

# Reason codes (stable; the API returns them as `code`, docs/execution.md tabulates them).
KILL_SWITCH: Final = "kill_switch_engaged"
TRADING_DISABLED: Final = "server_trading_disabled"
ADMIN_ONLY: Final = "admin_only_mode"
NOT_AUTHENTICATED: Final = "session_not_authenticated"
AGENT_NOT_READY: Final = "execution_agent_not_ready"
SYMBOL_NOT_TRADABLE: Final = "symbol_not_tradable"
STALE_MARKET_DATA: Final = "stale_market_data"
INVALID_SIZE: Final = "invalid_size"
INVALID_PRICE: Final = "invalid_price"
MIN_NOTIONAL: Final = "below_min_notional"
SLIPPAGE: Final = "slippage_exceeded"
MAX_POSITION: Final = "max_position_exceeded"
MAX_EXPOSURE: Final = "max_exposure_exceeded"
MAX_DAILY_LOSS: Final = "max_daily_loss_reached"
LEVERAGE: Final = "leverage_exceeded"
CIRCUIT_BREAKER: Final = "circuit_breaker_open"
REDUCE_ONLY_NO_POSITION: Final = "reduce_only_without_position"
MAX_DRAWDOWN: Final = "max_drawdown_reached"
INVALID_TPSL: Final = "invalid_tpsl_price"

REASONS: Final[dict[str, str]] = {
    KILL_SWITCH: "The kill switch is engaged: new orders are blocked (cancels still pass).",
    TRADING_DISABLED: "Server-side trading is disabled.",
    ADMIN_ONLY: "Trading is restricted to admins.",
    NOT_AUTHENTICATED: "Sign in first.",
    AGENT_NOT_READY: "No approved trading agent: enable trading first.",
    SYMBOL_NOT_TRADABLE: "The symbol is not tradable on this venue.",
    STALE_MARKET_DATA: "Market data for the symbol is stale or missing.",
    INVALID_SIZE: "The size is not a valid lot size for the symbol.",
    INVALID_PRICE: "The price violates the venue's tick / 5-significant-figure rule.",
    MIN_NOTIONAL: "Orders must be worth at least $10.",
    SLIPPAGE: "The price is further from mid than the slippage limit.",
    MAX_POSITION: "The resulting position would exceed the per-position limit.",
    MAX_EXPOSURE: "Total exposure would exceed the limit.",
    MAX_DAILY_LOSS: "The daily loss limit is reached.",
    LEVERAGE: "The leverage is above the limit.",
    CIRCUIT_BREAKER: "A circuit breaker is open: new orders are blocked (cancels still pass).",
    REDUCE_ONLY_NO_POSITION: "A reduce-only order needs an opposite position.",
    MAX_DRAWDOWN: "The account's drawdown from its peak equity reached the limit.",
    INVALID_TPSL: "A take-profit / stop-loss price is on the wrong side of the price (or not positive).",
}


@dataclass(frozen=True, slots=True)
class Limits:
    max_position_usd: Decimal
    max_total_exposure_usd: Decimal
    max_daily_loss_usd: Decimal
    max_leverage: int
    max_slippage_bps: int
    max_drawdown_pct: Decimal | None = None


@dataclass(frozen=True, slots=True)
class OrderIntent:
    symbol: str
    is_buy: bool
    order_type: str  # limit | market | tp | sl
    size: Decimal | None = None  # coin
    size_usd: Decimal | None = None
    price: Decimal | None = None
    trigger_price: Decimal | None = None
    tif: str = "Gtc"
    reduce_only: bool = False
    leverage: int | None = None
    tp_price: Decimal | None = None  # attached take-profit (entry orders)
    sl_price: Decimal | None = None  # attached stop-loss (entry orders)

    @property
    def closes_only(self) -> bool:
        """Reduce-only or a trigger (always reduce-only): it cannot add risk."""
        return self.reduce_only or self.order_type in ("tp", "sl")


@dataclass(frozen=True, slots=True)
class LiveOrder:
    """A user's order that may still fill (pending, submitted, resting, partially filled, unknown)."""

    symbol: str
    is_buy: bool
    remaining: Decimal  # coin
    price: Decimal | None


def live_sizes(live: Sequence[LiveOrder], symbol: str) -> tuple[Decimal, Decimal]:
    """(buys, sells) still to fill on `symbol`."""
    buys = sum((o.remaining for o in live if o.symbol == symbol and o.is_buy), ZERO)
    sells = sum((o.remaining for o in live if o.symbol == symbol and not o.is_buy), ZERO)
    return buys, sells


def live_exposure_usd(
    *, positions: Mapping[str, tuple[Decimal, Decimal]], live: Sequence[LiveOrder], exclude: str
) -> Decimal:
    """Worst-case notional the live orders of OTHER symbols add to their positions if they all fill.

    `positions`: symbol → (signed size, |notional| at mark). Priced at the mark when there is a position, else at
    the highest live order price of that symbol."""
    extra = ZERO
    for symbol in {o.symbol for o in live} - {exclude}:
        size, value = positions.get(symbol, (ZERO, ZERO))
        prices = [o.price for o in live if o.symbol == symbol and o.price is not None]
        px = value / abs(size) if size else (max(prices) if prices else ZERO)
        buys, sells = live_sizes(live, symbol)
        worst = max(abs(size + buys), abs(size - sells))
        extra += max(ZERO, worst - abs(size)) * px
    return extra


@dataclass(frozen=True, slots=True)
class Book:
    best_bid: Decimal | None
    best_ask: Decimal | None
    ts_ms: int | None

    @property
    def mid(self) -> Decimal | None:
        if self.best_bid is None or self.best_ask is None:
            return None
        return (self.best_bid + self.best_ask) / 2


@dataclass(frozen=True, slots=True)
class RiskContext:
    now_ms: int
    kill_switch_engaged: bool
    server_trading_enabled: bool
    admin_only: bool
    user_is_admin: bool
    session_authenticated: bool
    execution_agent_ready: bool
    spec: AssetSpec | None
    book: Book | None
    limits: Limits
    position_size: Decimal = ZERO  # signed, coin, this symbol
    total_exposure_usd: Decimal = ZERO  # all positions' |notional|
    daily_pnl_usd: Decimal = ZERO  # realized today, net of fees (negative = loss)
    open_breakers: tuple[str, ...] = ()
    book_max_age_ms: int = FRESHNESS_MS["book"]
    live_buy_size: Decimal = ZERO  # coin still to fill on live non-reduce-only buys, this symbol
    live_sell_size: Decimal = ZERO  # the same for sells
    live_exposure_usd: Decimal = ZERO  # worst-case notional live orders add in OTHER symbols
    drawdown_pct: Decimal | None = None  # (peak equity - equity) / peak, in percent


@dataclass(frozen=True, slots=True)
class NormalizedOrder:
    symbol: str
    is_buy: bool
    order_type: str
    size: Decimal
    price: Decimal  # limit price sent (market: bounded IOC price; triggers: the trigger's limit)
    trigger_price: Decimal | None
    tif: str
    reduce_only: bool
    leverage: int | None

    def as_dict(self) -> dict[str, object]:
        return {
            "symbol": self.symbol,
            "side": "buy" if self.is_buy else "sell",
            "type": self.order_type,
            "size": to_wire(self.size),
            "price": to_wire(self.price),
            "trigger_price": None if self.trigger_price is None else to_wire(self.trigger_price),
            "tif": self.tif,
            "reduce_only": self.reduce_only,
            "leverage": self.leverage,
        }


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    reason: str = ""
    message: str = ""
    order: NormalizedOrder | None = None
    notional_usd: Decimal | None = None
    checks: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "reason": self.reason or None,
            "message": self.message,
            "order": None if self.order is None else self.order.as_dict(),
            "notional_usd": None if self.notional_usd is None else to_wire(self.notional_usd.quantize(Decimal("0.01"))),
            "checks_passed": list(self.checks),
        }


class _Reject(Exception):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


def _gates(ctx: RiskContext, intent: OrderIntent) -> None:
    # The kill switch and breakers block what adds risk; a reduce-only close or a protective trigger passes.
    if ctx.kill_switch_engaged and not intent.closes_only:
        raise _Reject(KILL_SWITCH)
    if not ctx.server_trading_enabled:
        raise _Reject(TRADING_DISABLED)
    if ctx.admin_only and not ctx.user_is_admin:
        raise _Reject(ADMIN_ONLY)
    if not ctx.session_authenticated:
        raise _Reject(NOT_AUTHENTICATED)
    if not ctx.execution_agent_ready:
        raise _Reject(AGENT_NOT_READY)
    if ctx.open_breakers and not intent.closes_only:
        raise _Reject(CIRCUIT_BREAKER, ", ".join(ctx.open_breakers))


def _market(ctx: RiskContext) -> tuple[AssetSpec, Book, Decimal]:
    spec = ctx.spec
    if spec is None or spec.delisted:
        raise _Reject(SYMBOL_NOT_TRADABLE)
    book = ctx.book
    if book is None or book.ts_ms is None or book.mid is None or ctx.now_ms - book.ts_ms > ctx.book_max_age_ms:
        raise _Reject(STALE_MARKET_DATA)
    assert book.mid is not None
    return spec, book, book.mid


def _size(intent: OrderIntent, spec: AssetSpec, ref_px: Decimal) -> Decimal:
    if intent.size is not None:
        if not is_valid_size(sz=intent.size, spec=spec):
            raise _Reject(INVALID_SIZE, f"at most {spec.sz_decimals} decimals, > 0")
        return intent.size
    if intent.size_usd is None or intent.size_usd <= 0:
        raise _Reject(INVALID_SIZE, "size or size_usd is required")
    size = round_size(sz=intent.size_usd / ref_px, spec=spec)
    if size <= 0:
        raise _Reject(INVALID_SIZE, "size_usd is below one lot")
    return size


def _price(intent: OrderIntent, spec: AssetSpec, book: Book, mid: Decimal, limits: Limits) -> Decimal:
    slip = Decimal(limits.max_slippage_bps) / BPS
    if intent.order_type == "market":
        # An IOC bounded by the slippage limit, rounded towards mid so it never exceeds the limit.
        raw = mid * (1 + slip) if intent.is_buy else mid * (1 - slip)
        return round_price(px=raw, spec=spec, mode="down" if intent.is_buy else "up")
    if intent.order_type in ("tp", "sl"):
        if intent.trigger_price is None or not is_valid_price(px=intent.trigger_price, spec=spec):
            raise _Reject(INVALID_PRICE, "trigger price")
        # A trigger closes a position: a sell closes a long, a buy closes a short.
        _tpsl_side(kind=intent.order_type, px=intent.trigger_price, ref=mid, long=not intent.is_buy)
        if intent.price is not None:
            if not is_valid_price(px=intent.price, spec=spec):
                raise _Reject(INVALID_PRICE)
            return intent.price
        # A market trigger still carries a limit price: bound it like the venue's 10 % trigger slippage.
        tp = intent.trigger_price
        raw = tp * Decimal("1.1") if intent.is_buy else tp * Decimal("0.9")
        return round_price(px=raw, spec=spec, mode="down" if intent.is_buy else "up")
    if intent.price is None:
        raise _Reject(INVALID_PRICE, "a limit order needs a price")
    if not is_valid_price(px=intent.price, spec=spec):
        raise _Reject(INVALID_PRICE, f"nearest valid price {to_wire(round_price(px=intent.price, spec=spec))}")
    return intent.price


def _slippage(intent: OrderIntent, price: Decimal, mid: Decimal, limits: Limits) -> None:
    if intent.order_type != "limit" or intent.tif == "Alo":
        return
    # Only an aggressive limit (buy above mid / sell below) can slip.
    away = (price - mid) / mid if intent.is_buy else (mid - price) / mid
    if away * BPS > limits.max_slippage_bps:
        raise _Reject(SLIPPAGE, f"{(away * BPS).quantize(Decimal(1))} bps > {limits.max_slippage_bps} bps")


def _tpsl_side(*, kind: str, px: Decimal, ref: Decimal, long: bool) -> None:
    """A take-profit is beyond the price in the position's favour, a stop-loss against it: anything else would
    trigger at once (or never make sense). `ref` is the entry price (attached) or mid (existing position)."""
    if px <= 0:
        raise _Reject(INVALID_TPSL, f"{kind} price must be positive")
    favourable = px > ref if long else px < ref
    if kind == "tp" and not favourable:
        side = "above" if long else "below"
        raise _Reject(INVALID_TPSL, f"take-profit {to_wire(px)} must be {side} {to_wire(ref)} for a {_dir(long)}")
    if kind == "sl" and (favourable or px == ref):
        side = "below" if long else "above"
        raise _Reject(INVALID_TPSL, f"stop-loss {to_wire(px)} must be {side} {to_wire(ref)} for a {_dir(long)}")


def _dir(long: bool) -> str:
    return "long" if long else "short"


def _attached(intent: OrderIntent, spec: AssetSpec, entry: Decimal) -> None:
    for kind, px in (("tp", intent.tp_price), ("sl", intent.sl_price)):
        if px is None:
            continue
        if not is_valid_price(px=px, spec=spec):
            raise _Reject(INVALID_PRICE, f"{kind} price; nearest valid {to_wire(round_price(px=px, spec=spec))}")
        _tpsl_side(kind=kind, px=px, ref=entry, long=intent.is_buy)


def worst_case(*, position: Decimal, live_buys: Decimal, live_sells: Decimal) -> tuple[Decimal, Decimal]:
    """(most long, most short) the position can become if every live order fills."""
    return position + live_buys, position - live_sells


def _exposure(intent: OrderIntent, ctx: RiskContext, size: Decimal, mid: Decimal) -> Decimal:
    p = ctx.position_size
    if intent.reduce_only:
        if p == 0 or (p > 0) == intent.is_buy:
            raise _Reject(REDUCE_ONLY_NO_POSITION)
        return abs(p) * mid
    long_now, short_now = worst_case(position=p, live_buys=ctx.live_buy_size, live_sells=ctx.live_sell_size)
    before = long_now if intent.is_buy else short_now  # the worst case on this order's side
    after = before + size if intent.is_buy else before - size
    if abs(after) <= abs(before) and (after == 0 or (after > 0) == (before > 0)):
        return abs(after) * mid  # moves towards flat even if every live order fills: cannot add risk
    limits = ctx.limits
    if ctx.daily_pnl_usd <= -limits.max_daily_loss_usd:
        raise _Reject(MAX_DAILY_LOSS, f"today {to_wire(ctx.daily_pnl_usd)} USD")
    dd, max_dd = ctx.drawdown_pct, limits.max_drawdown_pct
    if dd is not None and max_dd is not None and dd >= max_dd:
        raise _Reject(MAX_DRAWDOWN, f"{to_wire(dd.quantize(Decimal('0.01')))} % >= {to_wire(max_dd)} %")
    pos_usd = abs(after) * mid
    if pos_usd > limits.max_position_usd:
        raise _Reject(
            MAX_POSITION,
            f"{to_wire(pos_usd.quantize(Decimal(1)))} > {to_wire(limits.max_position_usd)} USD with every live order",
        )
    # This symbol's worst-case notional before and after; the other symbols' positions and live orders as given.
    sym_before = max(abs(long_now), abs(short_now)) * mid
    sym_after = max(abs(after), abs(short_now if intent.is_buy else long_now)) * mid
    others = ctx.total_exposure_usd - abs(p) * mid + ctx.live_exposure_usd
    if sym_after > sym_before and others + sym_after > limits.max_total_exposure_usd:
        raise _Reject(MAX_EXPOSURE, f"limit {to_wire(limits.max_total_exposure_usd)} USD with every live order")
    return pos_usd


def _leverage(intent: OrderIntent, spec: AssetSpec, limits: Limits) -> None:
    if intent.leverage is None:
        return
    cap = min(limits.max_leverage, spec.max_leverage)
    if intent.leverage < 1 or intent.leverage > cap:
        raise _Reject(LEVERAGE, f"max {cap}x")


def evaluate(intent: OrderIntent, ctx: RiskContext) -> Verdict:
    """Every pre-trade check in order; the first failure is the verdict's reason."""
    passed: list[str] = []
    try:
        _gates(ctx, intent)
        passed.append("gates")
        spec, book, mid = _market(ctx)
        passed.append("market_data")
        price = _price(intent, spec, book, mid, ctx.limits)
        ref_px = price if intent.order_type == "limit" else mid
        size = _size(intent, spec, ref_px)
        _attached(intent, spec, ref_px)
        passed.append("tick_lot")
        notional = size * (price if intent.order_type == "limit" else mid)
        if notional < MIN_NOTIONAL_USD and not intent.reduce_only and intent.order_type in ("limit", "market"):
            raise _Reject(MIN_NOTIONAL, f"{to_wire(notional.quantize(Decimal('0.01')))} USD")
        passed.append("min_notional")
        _slippage(intent, price, mid, ctx.limits)
        passed.append("slippage")
        _leverage(intent, spec, ctx.limits)
        passed.append("leverage")
        if intent.order_type in ("limit", "market"):
            _exposure(intent, ctx, size, mid)
        passed.append("exposure")
    except _Reject as rej:
        message = REASONS[rej.reason] + (f" ({rej.detail})" if rej.detail else "")
        return Verdict(ok=False, reason=rej.reason, message=message, checks=tuple(passed))
    tif = "Ioc" if intent.order_type == "market" else intent.tif
    order = NormalizedOrder(
        symbol=intent.symbol,
        is_buy=intent.is_buy,
        order_type=intent.order_type,
        size=size,
        price=price,
        trigger_price=intent.trigger_price,
        tif=tif,
        reduce_only=intent.reduce_only or intent.order_type in ("tp", "sl"),
        leverage=intent.leverage,
    )
    return Verdict(ok=True, message="ok", order=order, notional_usd=notional, checks=tuple(passed))
