"""The paper venue: accounts, agents, nonces, order handling and matching against the generated market.

I/O-free: the server feeds it parsed requests, market step events and the wall clock, and drains
``outbox`` (WS pushes keyed by subscription key) after each call.
"""

from __future__ import annotations

import hashlib
import itertools
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import Any

from hlsim.accounts import (
    DEFAULT_LEVERAGE,
    ZERO,
    Account,
    Agent,
    Position,
    apply_fill,
    funding_payment,
    margin_summary,
    trade_fee,
)
from hlsim.candles import CandleStore
from hlsim.market import MarketEngine, MarketTrade, StepEvents
from hlsim.orders import (
    BadRequest,
    Order,
    OrderWire,
    parse_address,
    parse_cloid,
    parse_int,
    parse_oid_or_cloid,
    parse_order_wire,
    require,
)
from hlsim.signing import USER_SIGNED_TYPES, NonceTracker, SignatureError, recover_signer
from hlsim.ticks import fmt_decimal, fmt_float, is_valid_price, is_valid_size, price_decimals, round_px
from hlsim.universe import CoinSpec

MARKET_MAKER = "0x000000000000000000000000000000000000beef"
MIN_NOTIONAL = Decimal(10)
MAX_OPEN_ORDERS = 1000
MAX_NAMED_AGENTS = 3
TRIGGER_SLIPPAGE = Decimal("0.1")  # triggered market orders execute with 10 % slippage, as on the venue
DAY_MS = 86_400_000

ERR_TICK = "Price must be divisible by tick size."
ERR_MIN_NTL = "Order must have minimum value of $10."
ERR_MARGIN = "Insufficient margin to place order."
ERR_REDUCE_ONLY = "Reduce only order would increase position."
ERR_IOC = "Order could not immediately match against any resting orders."
ERR_NO_LIQ = "No liquidity available for market order."
ERR_MISSING = "Order was never placed, already canceled, or filled."
ERR_SIZE = "Order has invalid size."
ERR_ZERO = "Order has zero size."
ERR_TRIGGER = "Invalid TP/SL price."


Key = tuple  # WS subscription key, e.g. ("userFills", "0xabc...")


@dataclass
class ExchangeResult:
    body: Any
    status: int = 200
    rate_limited: bool = False


class Venue:
    """Accounts and matching on top of a `MarketEngine`."""

    def __init__(
        self,
        *,
        market: MarketEngine,
        clock: Callable[[], int],
        default_balance: Decimal = Decimal(100_000),
        backfill_minutes: int = 360,
    ) -> None:
        self.market = market
        self.clock = clock
        self.default_balance = default_balance
        self.specs: dict[str, CoinSpec] = {c.name: c for c in market.coins}
        self.asset_of: dict[str, int] = {c.name: i for i, c in enumerate(market.coins)}
        self.coin_of: dict[int, str] = {i: c.name for i, c in enumerate(market.coins)}
        self.accounts: dict[str, Account] = {}
        self.agent_master: dict[str, str] = {}
        self.nonces = NonceTracker()
        self.orders: dict[int, Order] = {}
        self.by_cloid: dict[tuple[str, str], int] = {}
        self.open_by_coin: dict[str, dict[int, Order]] = {c: {} for c in self.specs}
        self.consumed: dict[str, tuple[int, dict[tuple[str, float], float]]] = {}
        self.outbox: list[tuple[Key, Any]] = []
        self.recent_trades: dict[str, deque] = {c: deque(maxlen=30) for c in self.specs}
        self.candles: dict[str, CandleStore] = {c: CandleStore(spec=s) for c, s in self.specs.items()}
        self.funding_history: dict[str, list[dict]] = {c: [] for c in self.specs}
        self.touched_candles: set[str] = set()
        self._oids = itertools.count(1_000_000 + market.seed % 1000 * 1000)
        # User trade ids / hashes come from a separate RNG so user activity never perturbs the market stream.
        self._rng = random.Random(f"hlsim-user:{market.seed}")
        now = clock()
        for coin, store in self.candles.items():
            store.backfill(seed=market.seed, end_ms=now, end_px=market.mid(coin), minutes=backfill_minutes)
            self._backfill_funding(coin=coin, now=now, hours=max(1, backfill_minutes // 60))

    def _backfill_funding(self, *, coin: str, now: int, hours: int) -> None:
        rng = random.Random(f"hlsim-funding:{self.market.seed}:{coin}")
        hour = now - now % 3_600_000
        for h in range(hours, 0, -1):
            premium = rng.gauss(0.0, 0.0003)
            rate = (premium + min(max(0.0001 - premium, -0.0005), 0.0005)) / 8
            self.funding_history[coin].append(
                {"coin": coin, "fundingRate": f"{rate:.8f}", "premium": f"{premium:.8f}", "time": hour - h * 3_600_000}
            )

    # ----- accounts --------------------------------------------------------------------------------------
    def account(self, address: str, *, create: bool = True) -> Account | None:
        addr = address.lower()
        acct = self.accounts.get(addr)
        if acct is None and create and addr not in self.agent_master:
            acct = Account(address=addr, balance=self.default_balance)
            self.accounts[addr] = acct
        return acct

    def fund(self, *, address: str, usdc: Decimal) -> Account:
        addr = address.lower()
        acct = self.accounts.get(addr)
        if acct is None:
            acct = Account(address=addr, balance=usdc)  # --fund sets the starting balance
            self.accounts[addr] = acct
        else:
            acct.balance += usdc  # later funding is a deposit on top
        return acct

    def mark(self, coin: str) -> Decimal:
        spec = self.specs[coin]
        mid = self.market.mid(coin)
        return Decimal(fmt_float(mid, price_decimals(px=mid, sz_decimals=spec.sz_decimals) + 1))

    def leverage(self, acct: Account, coin: str) -> tuple[str, int]:
        return acct.leverage.get(coin, ("cross", min(DEFAULT_LEVERAGE, self.specs[coin].max_leverage)))

    def summary(self, acct: Account):
        rows = []
        for coin, pos in acct.positions.items():
            if pos.szi != 0:
                rows.append(
                    (
                        pos.szi,
                        pos.entry_px,
                        self.mark(coin),
                        self.leverage(acct, coin)[1],
                        self.specs[coin].max_leverage,
                    )
                )
        return margin_summary(balance=acct.balance, positions=rows, order_margin=self.open_order_margin(acct))

    def open_order_margin(self, acct: Account) -> Decimal:
        total = ZERO
        for coin, book in self.open_by_coin.items():
            lev = self.leverage(acct, coin)[1]
            for o in book.values():
                if o.user == acct.address and not o.reduce_only and not o.is_trigger:
                    total += o.sz * o.limit_px / lev
        return total

    def user_orders(self, user: str) -> list[Order]:
        return [o for book in self.open_by_coin.values() for o in book.values() if o.user == user]

    def resolve_agent(self, signer: str, now: int) -> str | None:
        master = self.agent_master.get(signer)
        if master is None:
            return None
        for agent in self.accounts[master].agents.values():
            if agent.address == signer:
                if agent.valid_until is not None and agent.valid_until <= now:
                    return None  # expired agents can no longer sign
                return master
        return None

    # ----- /exchange entry point --------------------------------------------------------------------------
    def handle_exchange(self, payload: Any) -> ExchangeResult:
        """Validate, authenticate and execute one signed action. Raises BadRequest for malformed bodies."""
        now = self.clock()
        require(isinstance(payload, dict))
        action, nonce, signature = payload.get("action"), payload.get("nonce"), payload.get("signature")
        require(isinstance(action, dict) and isinstance(action.get("type"), str))
        nonce = parse_int(nonce)
        vault = payload.get("vaultAddress")
        expires = payload.get("expiresAfter")
        require(vault is None or isinstance(vault, str))
        require(expires is None or (isinstance(expires, int) and not isinstance(expires, bool)))
        handler = ACTIONS.get(action["type"])
        require(handler is not None)
        validate_action(action)
        try:
            signer = recover_signer(
                action=action, signature=signature, nonce=nonce, vault_address=vault, expires_after=expires
            )
        except SignatureError:
            raise BadRequest("bad signature") from None
        user_signed = action["type"] in USER_SIGNED_TYPES
        if user_signed:
            if signer in self.agent_master or action.get("hyperliquidChain") != "Testnet":
                return ExchangeResult({"status": "err", "response": f"User or API Wallet {signer} does not exist."})
            master = signer
            self.account(master)  # first use of a user-signed action creates the paper account
        else:
            master = self.resolve_agent(signer, now) or (signer if signer in self.accounts else None)
            if master is None:
                return ExchangeResult({"status": "err", "response": f"User or API Wallet {signer} does not exist."})
        if vault is not None and vault.lower() != master:
            return ExchangeResult({"status": "err", "response": f"Vault {vault.lower()} does not exist."})
        if expires is not None and now > expires:
            return ExchangeResult({"status": "err", "response": f"Action expired at {expires} (now {now})."})
        err = self.nonces.check(signer=signer, nonce=nonce, now_ms=now)
        if err:
            return ExchangeResult({"status": "err", "response": err})
        acct = self.accounts[master]
        if not self._address_budget(acct, action, now):
            return ExchangeResult(None, status=429, rate_limited=True)
        self.nonces.use(signer=signer, nonce=nonce)
        digest = hashlib.sha256(f"{signer}:{nonce}".encode()).hexdigest()
        return ExchangeResult(handler(self, acct, action, now, "0x" + digest))

    def _address_budget(self, acct: Account, action: dict, now: int) -> bool:
        """Per-address action budget: 10 000 + 1 per USDC traded; then 1 request per 10 s (cancels get more)."""
        if self.address_limits_disabled:
            return True
        n = len(action.get("orders") or action.get("cancels") or action.get("modifies") or [None])
        cap = 10_000 + int(acct.cum_volume)
        is_cancel = action["type"] in ("cancel", "cancelByCloid")
        used = acct.n_requests + n
        limit = min(cap + 100_000, 2 * cap) if is_cancel else cap
        if used > limit:
            if now - acct.last_over_cap_ms < 10_000:
                return False
            acct.last_over_cap_ms = now
        acct.n_requests = used
        return True

    address_limits_disabled = False

    # ----- orders -------------------------------------------------------------------------------------------
    def _new_oid(self) -> int:
        return next(self._oids)

    def _book_levels(self, coin: str, is_buy: bool) -> list[tuple[Decimal, Decimal, float]]:
        """Opposite side of the generated book minus what users already took from this snapshot."""
        book = self.market.book(coin)
        seq, used = self.consumed.get(coin, (-1, {}))
        if seq != book.seq:
            used = {}
            self.consumed[coin] = (book.seq, used)
        side = "A" if is_buy else "B"
        levels = book.asks if is_buy else book.bids
        out = []
        for px, sz, _ in levels:
            left = sz - used.get((side, px), 0.0)
            if left > 1e-12:
                out.append((Decimal(repr(px)), Decimal(repr(round(left, 8))), px))
        return out

    def bbo(self, coin: str) -> tuple[str, str]:
        book = self.market.book(coin)
        d = price_decimals(px=book.bids[0][0], sz_decimals=self.specs[coin].sz_decimals)
        return fmt_float(book.bids[0][0], d), fmt_float(book.asks[0][0], d)

    def _validate_order(self, acct: Account, w: OrderWire, *, child: bool) -> tuple[str, str] | None:
        """Static venue checks; returns (error text, rejected status) or None."""
        coin = self.coin_of[w.asset]
        spec = self.specs[coin]
        if not is_valid_size(sz=w.sz, sz_decimals=spec.sz_decimals):
            return ERR_SIZE, "rejected"
        if w.sz == 0 and not (w.trigger_px is not None and child):
            return ERR_ZERO, "rejected"
        if not is_valid_price(px=w.px, sz_decimals=spec.sz_decimals):
            return ERR_TICK, "tickRejected"
        if w.trigger_px is not None and not is_valid_price(px=w.trigger_px, sz_decimals=spec.sz_decimals):
            return ERR_TICK, "tickRejected"
        if w.px * w.sz < MIN_NOTIONAL and not w.reduce_only and w.trigger_px is None:
            return ERR_MIN_NTL, "minTradeNtlRejected"
        if len(self.user_orders(acct.address)) >= MAX_OPEN_ORDERS:
            return "Too many open orders.", "rejected"
        return None

    def place(
        self,
        acct: Account,
        w: OrderWire,
        now: int,
        tx_hash: str,
        *,
        parent: Order | None = None,
        position_tpsl: bool = False,
    ) -> dict:
        """Place one order; returns its status entry for the response."""
        if w.asset not in self.coin_of:
            return {"error": f"Asset {w.asset} is out of range."}
        coin = self.coin_of[w.asset]
        rejected = self._validate_order(acct, w, child=parent is not None or position_tpsl)
        if rejected:
            self._record_rejection(acct, w, coin, now, rejected[1])
            return {"error": rejected[0]}
        order = self._order_from_wire(
            acct,
            w,
            coin,
            now,
            trigger_px=w.trigger_px,
            is_market=w.is_market,
            tpsl=w.tpsl,
            is_position_tpsl=position_tpsl,
        )
        if order.is_trigger:
            return self._place_trigger(acct, order, parent)
        return self._place_limit(acct, order, now, tx_hash)

    def _order_from_wire(self, acct: Account, w: OrderWire, coin: str, now: int, **extra: Any) -> Order:
        """A new order with a fresh oid from what the wire says; `extra` sets the fields the caller decides."""
        return Order(
            oid=self._new_oid(),
            user=acct.address,
            coin=coin,
            asset=w.asset,
            is_buy=w.is_buy,
            limit_px=w.px,
            sz=w.sz,
            orig_sz=w.sz,
            reduce_only=w.reduce_only,
            tif=w.tif,
            cloid=w.cloid,
            timestamp=now,
            status_ts=now,
            **extra,
        )

    def _record_rejection(self, acct: Account, w: OrderWire, coin: str, now: int, status: str) -> None:
        if not w.cloid:
            return
        order = self._order_from_wire(acct, w, coin, now, status=status)
        self.orders[order.oid] = order
        self.by_cloid[(acct.address, w.cloid)] = order.oid

    def _place_trigger(self, acct: Account, order: Order, parent: Order | None) -> dict:
        self._register(order)
        if parent is not None:
            order.parent = parent.oid
            parent.children.append(order.oid)
            order.waiting_for_fill = parent.status != "filled"
        self.open_by_coin[order.coin][order.oid] = order
        self._push_order_update(order)
        return "waitingForFill" if order.waiting_for_fill else "waitingForTrigger"  # type: ignore[return-value]

    def _register(self, order: Order) -> None:
        self.orders[order.oid] = order
        if order.cloid:
            self.by_cloid[(order.user, order.cloid)] = order.oid

    def _position(self, acct: Account, coin: str) -> Position:
        return acct.positions.setdefault(coin, Position())

    def _place_limit(self, acct: Account, order: Order, now: int, tx_hash: str) -> dict:
        coin = order.coin
        szi = self._position(acct, coin).szi
        if order.reduce_only:
            if szi == 0 or (szi > 0) == order.is_buy:
                return self._reject(acct, order, ERR_REDUCE_ONLY, "reduceOnlyRejected")
            order.sz = order.orig_sz = min(order.sz, abs(szi))
        levels = self._book_levels(coin, order.is_buy)
        crosses = bool(levels) and (levels[0][0] <= order.limit_px if order.is_buy else levels[0][0] >= order.limit_px)
        if order.tif == "Alo" and crosses:
            bid, ask = self.bbo(coin)
            return self._reject(
                acct, order, f"Post only order would have immediately matched, bbo was {bid}@{ask}.", "badAloPxRejected"
            )
        if not order.reduce_only and not self._margin_ok(acct, order, szi):
            return self._reject(acct, order, ERR_MARGIN, "perpMarginRejected")
        if order.tif == "Ioc" and not crosses:
            return self._reject(acct, order, ERR_IOC if levels else ERR_NO_LIQ, "iocCancelRejected")
        self._register(order)
        filled_sz, filled_ntl = ZERO, ZERO
        if crosses:
            filled_sz, filled_ntl = self._take(acct, order, levels, now, tx_hash)
        if order.reduce_only and order.sz > 0 and self._position(acct, coin).szi == 0:
            order.sz = ZERO  # a reduce-only remainder never rests against a flat position
            order.status, order.status_ts = "reduceOnlyCanceled", now
            self._push_order_update(order)
        if order.sz > 0 and order.tif != "Ioc" and order.status == "open":
            self.open_by_coin[coin][order.oid] = order
            self._push_order_update(order)
            return self._with_cloid({"resting": {"oid": order.oid}}, order)
        if order.sz > 0 and order.status == "open":
            order.status, order.status_ts = "canceled", now  # Ioc remainder is cancelled
            self._push_order_update(order)
        avg = (filled_ntl / filled_sz) if filled_sz else order.limit_px
        return self._with_cloid(
            {
                "filled": {
                    "totalSz": fmt_decimal(filled_sz),
                    "avgPx": fmt_decimal(self._px_round(coin, avg)),
                    "oid": order.oid,
                }
            },
            order,
        )

    def _px_round(self, coin: str, px: Decimal) -> Decimal:
        d = price_decimals(px=float(px), sz_decimals=self.specs[coin].sz_decimals) + 1
        return px.quantize(Decimal(1).scaleb(-d))

    @staticmethod
    def _with_cloid(status: dict, order: Order) -> dict:
        inner = next(iter(status.values()))
        if order.cloid:
            inner["cloid"] = order.cloid
        return status

    def _reject(self, acct: Account, order: Order, text: str, status: str) -> dict:
        order.status = status
        if order.cloid:
            self._register(order)
        return {"error": text}

    def _margin_ok(self, acct: Account, order: Order, szi: Decimal) -> bool:
        """Only the position-increasing part of an order needs initial margin (notional / leverage)."""
        signed = order.sz if order.is_buy else -order.sz
        pending = sum(
            (
                o.sz if o.is_buy else -o.sz
                for o in self.open_by_coin[order.coin].values()
                if o.user == acct.address and not o.reduce_only and not o.is_trigger and o.is_buy == order.is_buy
            ),
            ZERO,
        )
        increase = max(ZERO, abs(szi + pending + signed) - abs(szi + pending))
        if increase == 0:
            return True
        lev = self.leverage(acct, order.coin)[1]
        px = max(order.limit_px, self.mark(order.coin)) if order.is_buy else self.mark(order.coin)
        required = increase * px / lev
        s = self.summary(acct)
        available = s.account_value - s.total_margin_used - self.open_order_margin(acct)
        return required <= available

    def _take(self, acct: Account, order: Order, levels: list, now: int, tx_hash: str) -> tuple[Decimal, Decimal]:
        """Walk the book for a taker order: partial fills level by level up to the limit price."""
        filled, ntl = ZERO, ZERO
        fills: list[dict] = []
        seq, used = self.consumed[order.coin]
        side = "A" if order.is_buy else "B"
        for px, avail, raw_px in levels:
            if order.sz <= 0 or (px > order.limit_px if order.is_buy else px < order.limit_px):
                break
            qty = min(order.sz, avail)
            used[(side, raw_px)] = used.get((side, raw_px), 0.0) + float(qty)
            fills.append(self._fill(acct, order, px, qty, now, tx_hash, maker=False))
            filled += qty
            ntl += px * qty
        self._flush_fills(acct, fills)
        return filled, ntl

    def _fill(
        self, acct: Account, order: Order, px: Decimal, sz: Decimal, now: int, tx_hash: str, *, maker: bool
    ) -> dict:
        """Apply one fill to the account and the order; returns the user fill record."""
        pos = self._position(acct, order.coin)
        out = apply_fill(szi=pos.szi, entry_px=pos.entry_px, is_buy=order.is_buy, px=px, sz=sz)
        if pos.szi == 0 or (out.szi != 0 and (out.szi > 0) != (pos.szi > 0)):
            pos.funding_since_open = ZERO
        pos.szi, pos.entry_px = out.szi, out.entry_px
        fee = trade_fee(px=px, sz=sz, maker=maker)
        acct.balance += out.closed_pnl - fee
        acct.cum_volume += px * sz
        order.sz -= sz
        tid = self._rng.getrandbits(50)
        fill = {
            "coin": order.coin,
            "px": fmt_decimal(px),
            "sz": fmt_decimal(sz),
            "side": "B" if order.is_buy else "A",
            "time": now,
            "startPosition": fmt_decimal(out.start_position),
            "dir": out.direction,
            "closedPnl": fmt_decimal(out.closed_pnl),
            "hash": tx_hash,
            "oid": order.oid,
            "crossed": not maker,
            "fee": fmt_decimal(fee),
            "tid": tid,
            "feeToken": "USDC",
        }
        if order.cloid:
            fill["cloid"] = order.cloid
        acct.fills.append(fill)
        aggressor_buy = order.is_buy if not maker else not order.is_buy
        users = [acct.address, MARKET_MAKER] if order.is_buy else [MARKET_MAKER, acct.address]
        self._public_trade(order.coin, "B" if aggressor_buy else "A", px, sz, now, tx_hash, tid, users)
        if order.sz == 0:
            order.status, order.status_ts = "filled", now
            self.open_by_coin[order.coin].pop(order.oid, None)
            self._push_order_update(order)
            self._on_order_filled(acct, order, now)
        if out.szi == 0:
            self._cancel_reduce_only(acct, order.coin, now)
        return fill

    def _on_order_filled(self, acct: Account, order: Order, now: int) -> None:
        for child_oid in order.children:  # normalTpsl children become live once the parent fills
            child = self.orders[child_oid]
            if child.waiting_for_fill:
                child.waiting_for_fill = False
        if order.parent is not None or order.is_position_tpsl:
            siblings = self.orders[order.parent].children if order.parent is not None else []
            for sib_oid in siblings:
                sib = self.orders[sib_oid]
                if sib.oid != order.oid and sib.is_open:
                    self._cancel(sib, now, "siblingFilledCanceled")

    def _cancel_reduce_only(self, acct: Account, coin: str, now: int) -> None:
        for o in list(self.open_by_coin[coin].values()):
            if o.user == acct.address and o.reduce_only and not o.waiting_for_fill and not o.is_position_tpsl:
                self._cancel(o, now, "reduceOnlyCanceled")

    def _public_trade(
        self, coin: str, side: str, px: Decimal, sz: Decimal, now: int, tx_hash: str, tid: int, users: list[str]
    ) -> None:
        wire = {
            "coin": coin,
            "side": side,
            "px": fmt_decimal(px),
            "sz": fmt_decimal(sz),
            "time": now,
            "hash": tx_hash,
            "tid": tid,
            "users": users,
        }
        self.recent_trades[coin].append(wire)
        self.candles[coin].add_trade(t_ms=now, px=float(px), sz=float(sz))
        self.touched_candles.add(coin)
        self.outbox.append((("trades", coin), wire))

    def _flush_fills(self, acct: Account, fills: list[dict]) -> None:
        if fills:
            self.outbox.append(
                (("userFills", acct.address), {"user": acct.address, "isSnapshot": False, "fills": fills})
            )
            self.outbox.append((("userEvents", acct.address), {"fills": fills}))

    def _push_order_update(self, order: Order) -> None:
        status = order.status
        self.outbox.append(
            (
                ("orderUpdates", order.user),
                [{"order": order.basic_wire(), "status": status, "statusTimestamp": order.status_ts}],
            )
        )

    def _cancel(self, order: Order, now: int, status: str = "canceled") -> None:
        order.status, order.status_ts = status, now
        self.open_by_coin[order.coin].pop(order.oid, None)
        self._push_order_update(order)
        for child_oid in order.children:
            child = self.orders[child_oid]
            if child.is_open and child.waiting_for_fill:
                self._cancel(child, now, status)

    def find_order(self, user: str, ref: int | str) -> Order | None:
        oid = self.by_cloid.get((user, ref)) if isinstance(ref, str) else ref
        order = self.orders.get(oid) if oid is not None else None
        return order if order is not None and order.user == user else None

    # ----- market-driven processing -----------------------------------------------------------------------
    def on_market(self, ev: StepEvents) -> None:
        """Apply one market step: public trades, resting user fills, triggers and funding."""
        now = self.clock()
        for t in ev.trades:
            self._on_market_trade(t, now)
        for coin in ev.books:
            self._on_book(coin, now)
        for coin, rate in ev.funding:
            self._on_funding(coin, rate, now)

    def _on_market_trade(self, t: MarketTrade, now: int) -> None:
        spec = self.specs[t.coin]
        d = price_decimals(px=t.px, sz_decimals=spec.sz_decimals)
        wire = {
            "coin": t.coin,
            "side": t.side,
            "px": fmt_float(t.px, d),
            "sz": fmt_float(t.sz, spec.sz_decimals),
            "time": now,
            "hash": t.hash,
            "tid": t.tid,
            "users": [MARKET_MAKER, MARKET_MAKER],
        }
        self.recent_trades[t.coin].append(wire)
        self.candles[t.coin].add_trade(t_ms=now, px=t.px, sz=t.sz)
        self.touched_candles.add(t.coin)
        self.outbox.append((("trades", t.coin), wire))
        book = self.open_by_coin[t.coin]
        if book:
            px = Decimal(repr(t.px))
            for o in [o for o in book.values() if not o.is_trigger or o.status == "triggered"]:
                if (o.is_buy and px < o.limit_px) or (not o.is_buy and px > o.limit_px):
                    self._fill_resting(o, now)

    def _fill_resting(self, order: Order, now: int) -> None:
        """The market traded through a resting user order: it fills in full at its limit price (maker)."""
        acct = self.accounts[order.user]
        if order.reduce_only:
            szi = self._position(acct, order.coin).szi
            if szi == 0 or (szi > 0) == order.is_buy:
                self._cancel(order, now, "reduceOnlyCanceled")
                return
            order.sz = min(order.sz, abs(szi))
        tx_hash = f"0x{self._rng.getrandbits(256):064x}"
        fill = self._fill(acct, order, order.limit_px, order.sz, now, tx_hash, maker=True)
        self._flush_fills(acct, [fill])

    def _on_book(self, coin: str, now: int) -> None:
        book = self.open_by_coin[coin]
        if not book:
            return
        mb = self.market.book(coin)
        best_bid, best_ask = Decimal(repr(mb.bids[0][0])), Decimal(repr(mb.asks[0][0]))
        mark = self.mark(coin)
        for o in list(book.values()):
            if not o.is_open or o.oid not in book:
                continue
            if o.is_trigger and o.status == "open":
                if not o.waiting_for_fill and self._triggered(o, mark):
                    self._fire_trigger(o, mark, now)
            elif (o.is_buy and best_ask <= o.limit_px) or (not o.is_buy and best_bid >= o.limit_px):
                self._fill_resting(o, now)

    @staticmethod
    def _triggered(o: Order, mark: Decimal) -> bool:
        trig = o.trigger_px or ZERO
        # A sell stop (long SL) fires on the way down, a sell TP on the way up; mirrored for buys.
        if o.is_buy:
            return mark >= trig if o.tpsl == "sl" else mark <= trig
        return mark <= trig if o.tpsl == "sl" else mark >= trig

    def _fire_trigger(self, o: Order, mark: Decimal, now: int) -> None:
        acct = self.accounts[o.user]
        szi = self._position(acct, o.coin).szi
        if o.reduce_only or o.is_position_tpsl:
            if szi == 0 or (szi > 0) == o.is_buy:
                self._cancel(o, now, "reduceOnlyCanceled")
                return
            o.sz = abs(szi) if o.sz == 0 else min(o.sz, abs(szi))
            o.orig_sz = o.orig_sz or o.sz
        o.status, o.status_ts = "triggered", now
        self._push_order_update(o)
        self.open_by_coin[o.coin].pop(o.oid, None)
        if o.is_market:
            limit = mark * (1 + TRIGGER_SLIPPAGE) if o.is_buy else mark * (1 - TRIGGER_SLIPPAGE)
        else:
            limit = o.limit_px
        levels = self._book_levels(o.coin, o.is_buy)
        tx_hash = f"0x{self._rng.getrandbits(256):064x}"
        saved = o.limit_px
        o.limit_px = limit
        self._take(acct, o, levels, now, tx_hash)
        o.limit_px = saved
        if o.sz > 0 and o.status == "triggered":
            if o.is_market:
                self._cancel(o, now, "canceled")
            else:
                self.open_by_coin[o.coin][o.oid] = o  # a triggered limit rests at its limit price

    def _on_funding(self, coin: str, rate: float, now: int) -> None:
        premium = self.market.state[coin].premium_ema
        self.funding_history[coin].append(
            {"coin": coin, "fundingRate": f"{rate:.8f}", "premium": f"{premium:.8f}", "time": now}
        )
        mark = self.mark(coin)
        r = Decimal(f"{rate:.10f}")
        for acct in self.accounts.values():
            pos = acct.positions.get(coin)
            if pos is None or pos.szi == 0:
                continue
            pay = funding_payment(szi=pos.szi, mark=mark, rate=r)
            acct.balance += pay
            pos.funding_all_time -= pay
            pos.funding_since_open -= pay
            pos.funding_since_change -= pay
            rec = {
                "time": now,
                "coin": coin,
                "usdc": fmt_decimal(pay),
                "szi": fmt_decimal(pos.szi),
                "fundingRate": fmt_decimal(r),
            }
            acct.fundings.append(rec)
            self.outbox.append(
                (("userFundings", acct.address), {"user": acct.address, "isSnapshot": False, "fundings": [rec]})
            )
            self.outbox.append((("userEvents", acct.address), {"funding": rec}))

    def on_clock(self, now: int) -> None:
        """Dead-man switch: fire due scheduleCancel timers."""
        for acct in self.accounts.values():
            if acct.schedule_cancel_ms is not None and acct.schedule_cancel_ms <= now:
                acct.schedule_cancel_ms = None
                day = now // DAY_MS
                acct.schedule_triggers[day] = acct.schedule_triggers.get(day, 0) + 1
                for o in self.user_orders(acct.address):
                    self._cancel(o, now, "scheduledCancel")
                self.outbox.append(
                    (
                        ("notification", acct.address),
                        {"notification": "All open orders were canceled by the scheduled cancel."},
                    )
                )


# ----- action validation (malformed → 422) and handlers -----------------------------------------------------
def _objects(action: dict, key: str) -> list[dict]:
    """`action[key]`, required to be a list of objects."""
    items = action.get(key)
    require(isinstance(items, list) and all(isinstance(item, dict) for item in items))
    assert isinstance(items, list)
    return items


def validate_action(action: dict) -> None:
    kind = action["type"]
    if kind == "order":
        require(isinstance(action.get("orders"), list))
        for o in action["orders"]:
            parse_order_wire(o)
        g = action.get("grouping", "na")
        require(g in ("na", "normalTpsl", "positionTpsl") or (isinstance(g, dict) and "p" in g))
    elif kind == "cancel":
        for c in _objects(action, "cancels"):
            parse_int(c.get("a"))
            parse_int(c.get("o"))
    elif kind == "cancelByCloid":
        for c in _objects(action, "cancels"):
            parse_int(c.get("asset"))
            parse_cloid(c.get("cloid"))
    elif kind == "batchModify":
        for m in _objects(action, "modifies"):
            parse_oid_or_cloid(m.get("oid"))
            parse_order_wire(m.get("order"))
    elif kind == "modify":
        parse_oid_or_cloid(action.get("oid"))
        parse_order_wire(action.get("order"))
    elif kind == "updateLeverage":
        parse_int(action.get("asset"))
        parse_int(action.get("leverage"))
        require(isinstance(action.get("isCross"), bool))
    elif kind == "scheduleCancel":
        if action.get("time") is not None:
            parse_int(action["time"])
    elif kind == "approveAgent":
        parse_address(action.get("agentAddress"))
        parse_int(action.get("nonce"))
        require(isinstance(action.get("agentName", ""), str))


def _ok(kind: str, statuses: list | None = None) -> dict:
    if statuses is None:
        return {"status": "ok", "response": {"type": kind}}
    return {"status": "ok", "response": {"type": kind, "data": {"statuses": statuses}}}


def act_order(v: Venue, acct: Account, action: dict, now: int, tx_hash: str) -> dict:
    wires = [parse_order_wire(o) for o in action["orders"]]
    if not wires:
        return {"status": "err", "response": "Order list cannot be empty."}
    grouping = action.get("grouping", "na")
    statuses: list = []
    if grouping == "normalTpsl":
        parent_status = v.place(acct, wires[0], now, tx_hash)
        statuses.append(parent_status)
        parent_oid = next(iter(parent_status.values())).get("oid") if isinstance(parent_status, dict) else None
        parent = v.orders.get(parent_oid) if parent_oid else None
        for w in wires[1:]:
            if parent is None:
                statuses.append({"error": "Parent order rejected."})
            elif w.trigger_px is None or not w.reduce_only:
                statuses.append({"error": ERR_TRIGGER})
            else:
                statuses.append(v.place(acct, w, now, tx_hash, parent=parent))
        return _ok("order", statuses)
    for w in wires:
        statuses.append(v.place(acct, w, now, tx_hash, position_tpsl=grouping == "positionTpsl"))
    return _ok("order", statuses)


def act_cancel(v: Venue, acct: Account, action: dict, now: int, tx_hash: str) -> dict:
    statuses: list = []
    for c in action["cancels"]:
        ref = c["o"] if action["type"] == "cancel" else c["cloid"].lower()
        asset = c["a"] if action["type"] == "cancel" else c["asset"]
        order = v.find_order(acct.address, ref)
        if (
            order is None
            or not order.is_open
            and not order.waiting_for_fill
            or order.asset != asset
            or order.oid not in v.open_by_coin[order.coin]
        ):
            statuses.append({"error": ERR_MISSING})
            continue
        v._cancel(order, now)
        statuses.append("success")
    return _ok("cancel", statuses)


def _modify_one(v: Venue, acct: Account, ref: int | str, raw: dict, now: int, tx_hash: str) -> Any:
    """Modify = cancel + new order with a new oid; the original is restored if the new one is rejected."""
    order = v.find_order(acct.address, ref)
    if order is None or order.oid not in v.open_by_coin[order.coin]:
        return {"error": "Cannot modify canceled or filled order"}
    w = parse_order_wire(raw)
    v.open_by_coin[order.coin].pop(order.oid)
    status = v.place(acct, w, now, tx_hash)
    if isinstance(status, dict) and "error" in status:
        v.open_by_coin[order.coin][order.oid] = order
        if order.cloid:
            v.by_cloid[(acct.address, order.cloid)] = order.oid
        return status
    order.status, order.status_ts = "canceled", now
    v._push_order_update(order)
    return status


def act_batch_modify(v: Venue, acct: Account, action: dict, now: int, tx_hash: str) -> dict:
    statuses = [
        _modify_one(v, acct, parse_oid_or_cloid(m["oid"]), m["order"], now, tx_hash) for m in action["modifies"]
    ]
    return _ok("batchModify", statuses)


def act_modify(v: Venue, acct: Account, action: dict, now: int, tx_hash: str) -> dict:
    status = _modify_one(v, acct, parse_oid_or_cloid(action["oid"]), action["order"], now, tx_hash)
    if isinstance(status, dict) and "error" in status:
        return {"status": "err", "response": status["error"]}
    return _ok("default")


def act_update_leverage(v: Venue, acct: Account, action: dict, now: int, tx_hash: str) -> dict:
    coin = v.coin_of.get(action["asset"])
    if coin is None:
        return {"status": "err", "response": f"Asset {action['asset']} is out of range."}
    lev = action["leverage"]
    if not 1 <= lev <= v.specs[coin].max_leverage:
        return {"status": "err", "response": f"Invalid leverage value: {lev} (max {v.specs[coin].max_leverage})"}
    old = acct.leverage.get(coin)
    acct.leverage[coin] = ("cross" if action["isCross"] else "isolated", lev)
    s = v.summary(acct)
    if s.account_value < s.total_margin_used:
        if old is None:
            acct.leverage.pop(coin)
        else:
            acct.leverage[coin] = old
        return {"status": "err", "response": "Insufficient margin for this leverage."}
    return _ok("default")


def act_schedule_cancel(v: Venue, acct: Account, action: dict, now: int, tx_hash: str) -> dict:
    when = action.get("time")
    if when is None:
        acct.schedule_cancel_ms = None
        return _ok("default")
    if acct.schedule_triggers.get(now // DAY_MS, 0) >= 10:
        return {"status": "err", "response": "Too many scheduled cancel triggers today (max 10)."}
    if when < now + 5000:
        return {"status": "err", "response": "Scheduled cancel time too early, must be at least 5 seconds from now."}
    acct.schedule_cancel_ms = when
    return _ok("default")


def _parse_agent_name(raw: str) -> tuple[str, int | None]:
    """'<name> valid_until <ms>' carries an expiry inside the name (venue convention)."""
    if " valid_until " in raw:
        name, _, until = raw.rpartition(" valid_until ")
        if until.isdigit():
            return name, int(until)
    return raw, None


def act_approve_agent(v: Venue, acct: Account, action: dict, now: int, tx_hash: str) -> dict:
    agent_addr = action["agentAddress"].lower()
    name, valid_until = _parse_agent_name(action.get("agentName", ""))
    if agent_addr == acct.address:
        return {"status": "err", "response": "Agent address cannot be the user address."}
    if agent_addr in v.accounts:
        return {"status": "err", "response": "Agent address is already a user."}
    if valid_until is not None and valid_until <= now:
        return {"status": "err", "response": "Agent valid_until is in the past."}
    owner = v.agent_master.get(agent_addr)
    if owner is not None and owner != acct.address:
        return {"status": "err", "response": "Agent is already approved by another user."}
    named = [n for n in acct.agents if n]
    if name and name not in acct.agents and len(named) >= MAX_NAMED_AGENTS:
        return {"status": "err", "response": f"Too many named agents (max {MAX_NAMED_AGENTS})."}
    for existing_name, agent in list(acct.agents.items()):
        # A new unnamed (or same-name) approval replaces the old one; an address is held under one name only.
        if existing_name == name or agent.address == agent_addr:
            acct.agents.pop(existing_name)
            v.agent_master.pop(agent.address, None)
    acct.agents[name] = Agent(address=agent_addr, name=name, valid_until=valid_until)
    v.agent_master[agent_addr] = acct.address
    return _ok("default")


def act_noop(v: Venue, acct: Account, action: dict, now: int, tx_hash: str) -> dict:
    return _ok("default")


ACTIONS: dict[str, Callable[[Venue, Account, dict, int, str], dict]] = {
    "order": act_order,
    "cancel": act_cancel,
    "cancelByCloid": act_cancel,
    "batchModify": act_batch_modify,
    "modify": act_modify,
    "updateLeverage": act_update_leverage,
    "scheduleCancel": act_schedule_cancel,
    "approveAgent": act_approve_agent,
    "noop": act_noop,
}

__all__ = ["Venue", "ExchangeResult", "BadRequest", "MARKET_MAKER", "round_px", "ROUND_DOWN"]
