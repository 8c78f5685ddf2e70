"""What the pre-trade checks see: the book (hot state, or the venue when it is stale), the user's live orders and
account (fresh enough, of the current fill epoch), the limits and switches — assembled into a risk.RiskContext.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import asdict, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.conf import settings

from accounts.models import User
from accounts.selectors import agent_current
from execution import risk, selectors
from execution.models import UNSETTLED_STATES, Order, PositionSnapshot
from execution.services import breakers
from execution.services import controls as ctl
from execution.services.account import AccountState, AccountUnavailable, account_read
from execution.services.equity_peaks import drawdown_pct, peak_get
from kernel import clock
from kernel.venue import client as vc
from kernel.venue import meta
from kernel.venue.rounding import AssetSpec, to_wire
from markets.hotstate import get_hot_state

logger = logging.getLogger(__name__)
ZERO = Decimal(0)
# Risk checks use an account state at most this old (and always of the current epoch: no fill since).
RISK_ACCOUNT_MAX_AGE_SEC = 2.0


# --- context ----------------------------------------------------------------------------------------------
def hot_book(symbol: str) -> risk.Book | None:

    try:
        snap = get_hot_state().get_sync(symbol)
    except Exception:  # a broken hot state means "no book": the check refuses, never crashes
        logger.warning("hot state read failed", extra={"symbol": symbol}, exc_info=True)
        return None
    if snap is None:
        return None
    bids, asks = snap.book.get("bids") or [], snap.book.get("asks") or []
    try:
        bid = Decimal(str(bids[0][0])) if bids else None
        ask = Decimal(str(asks[0][0])) if asks else None
    except (ArithmeticError, IndexError, TypeError):
        return None
    return risk.Book(best_bid=bid, best_ask=ask, ts_ms=snap.book_ts)


def market_feed_down() -> bool:
    """The market feed as a whole (ingest status) is down or silent for BREAKER_STALE_DATA_SEC."""

    try:
        status = get_hot_state().get_status_sync()
    except Exception:  # noqa: BLE001 - an unreadable status counts as down
        return True
    if not status or not status.get("running"):
        return True
    age_ms = clock.now_ms() - int(status.get("updated_at_ms") or 0)
    return age_ms > settings.BREAKER_STALE_DATA_SEC * 1000


def _venue_book(symbol: str) -> risk.Book | None:
    """The venue's own l2Book (weight 2): for emergency closes when the hot state is stale."""
    try:
        raw = vc.info({"type": "l2Book", "coin": symbol}, priority=vc.ORDER)
        bids, asks = raw["levels"][0], raw["levels"][1]
        return risk.Book(
            best_bid=Decimal(str(bids[0]["px"])) if bids else None,
            best_ask=Decimal(str(asks[0]["px"])) if asks else None,
            ts_ms=clock.now_ms(),
        )
    except (vc.VenueError, vc.VenueTimeout, KeyError, IndexError, TypeError, ArithmeticError):
        return None


def live_orders(*, user: User, exclude: Iterable[int] = ()) -> list[risk.LiveOrder]:
    """Every order of the user that may still fill and add risk (reduce-only orders and triggers cannot)."""
    rows = (
        Order.objects.filter(user=user, state__in=UNSETTLED_STATES, reduce_only=False)
        .exclude(order_type__in=("tp", "sl"))
        .exclude(pk__in=list(exclude))
        .values_list("symbol", "side", "size", "filled_size", "price")
    )
    return [
        risk.LiveOrder(symbol=sym, is_buy=side == "buy", remaining=max(ZERO, size - filled), price=price)
        for sym, side, size, filled, price in rows
    ]


def _account_for_risk(user: User) -> tuple[dict[str, dict[str, Any]], float, bool, Decimal | None]:
    """(positions, as-of time, stale, equity) for a risk check; falls back to the last reconciled snapshots."""
    try:
        acct: AccountState = account_read(user=user, max_age=RISK_ACCOUNT_MAX_AGE_SEC, priority=vc.ORDER, quota=False)
        return acct.positions, acct.fetched_at, acct.stale, acct.equity
    except AccountUnavailable:
        snaps = list(PositionSnapshot.objects.filter(user=user))
        positions = {
            s.symbol: {"coin": s.symbol, "szi": str(s.size), "positionValue": str(abs(s.position_value))} for s in snaps
        }
        as_of = max((s.updated_at.timestamp() for s in snaps), default=0.0)
        return positions, as_of, True, None


def _unseen_fills(*, user: User, since: float) -> dict[str, tuple[Decimal, Decimal]]:
    """(signed size, notional) filled on orders updated after a stale account state was taken (it cannot include
    them), per symbol."""
    out: dict[str, tuple[Decimal, Decimal]] = {}
    cutoff = datetime.fromtimestamp(since, tz=UTC)
    rows = Order.objects.filter(user=user, updated_at__gte=cutoff, filled_size__gt=0).values_list(
        "symbol", "side", "filled_size", "avg_fill_price", "price"
    )
    for sym, side, filled, avg, limit in rows:
        size, notional = out.get(sym, (ZERO, ZERO))
        px = avg or limit or ZERO
        out[sym] = (size + (filled if side == "buy" else -filled), notional + filled * px)
    return out


def risk_context(
    *,
    user: User,
    symbol: str,
    session_authenticated: bool,
    emergency: bool = False,
    exclude_orders: Iterable[int] = (),
) -> tuple[risk.RiskContext, AssetSpec | None]:
    """Everything `risk.evaluate` needs. Live orders are read BEFORE the account: an order that filled in between
    is then in the account state (whose epoch moved) or still counted as live — never in neither."""
    controls = ctl.controls_get()
    spec = meta.asset_spec(symbol)
    book = hot_book(symbol)
    if emergency and (book is None or book.ts_ms is None or clock.now_ms() - book.ts_ms > 4000):
        book = _venue_book(symbol) or book
    live = live_orders(user=user, exclude=exclude_orders)
    positions, as_of, stale, equity = _account_for_risk(user)
    sizes = {s: Decimal(str(p.get("szi", "0"))) for s, p in positions.items()}
    values = {s: abs(Decimal(str(p.get("positionValue", "0")))) for s, p in positions.items()}
    if stale:  # conservative: fills the stale state may not include count on top, in size and in notional
        for s, (delta, notional) in _unseen_fills(user=user, since=as_of).items():
            sizes[s] = sizes.get(s, ZERO) + delta
            values[s] = values.get(s, ZERO) + notional
    buys, sells = risk.live_sizes(live, symbol)
    limits = ctl.limits_for(user=user)
    ctx = risk.RiskContext(
        now_ms=clock.now_ms(),
        kill_switch_engaged=controls.kill_switch_engaged,
        server_trading_enabled=controls.server_trading_enabled,
        admin_only=controls.admin_only,
        user_is_admin=user.is_admin,
        session_authenticated=session_authenticated and user.is_active,
        execution_agent_ready=agent_current(user=user) is not None,
        spec=spec,
        book=book,
        limits=limits,
        position_size=sizes.get(symbol, ZERO),
        total_exposure_usd=sum(values.values(), ZERO),
        daily_pnl_usd=selectors.daily_pnl(user=user),
        open_breakers=breakers.breakers_open(user=user),
        live_buy_size=buys,
        live_sell_size=sells,
        live_exposure_usd=risk.live_exposure_usd(
            positions={s: (sizes.get(s, ZERO), values.get(s, ZERO)) for s in set(sizes) | set(values)},
            live=live,
            exclude=symbol,
        ),
        drawdown_pct=drawdown_pct(peak=peak_get(user=user), equity=equity),
    )
    return ctx, spec


def order_preview(
    *, user: User, intent: risk.OrderIntent, session_authenticated: bool = True, exclude_orders: Iterable[int] = ()
) -> risk.Verdict:
    ctx, _ = risk_context(
        user=user, symbol=intent.symbol, session_authenticated=session_authenticated, exclude_orders=exclude_orders
    )
    return risk.evaluate(intent, ctx)


def without_gates(ctx: risk.RiskContext) -> risk.RiskContext:
    return replace(ctx, kill_switch_engaged=False, server_trading_enabled=True, admin_only=False, open_breakers=())


def intent_dict(intent: risk.OrderIntent) -> dict[str, Any]:
    return {k: (to_wire(v) if isinstance(v, Decimal) else v) for k, v in asdict(intent).items()}
