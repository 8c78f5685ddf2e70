"""The user's venue account (clearinghouseState under the MASTER address): cached, budgeted, never a 500.

* At most one venue read per user per EXECUTION_ACCOUNT_CACHE_SEC for display (less for risk checks), charged to the
  user's own read quota and the shared IP budget (kernel.venue.client); concurrent reads of one user in a
  process share one request (singleflight).
* Every cached state carries the user's account EPOCH. Whatever changes a position (a fill applied to an order)
  bumps the epoch before it updates the order row, so a state fetched before the fill is never used after it:
  risk checks read the live orders first, then an account state of the current epoch.
* When the venue cannot be asked (our budget, backoff after a 429, 429, timeout, unreachable) the last known state
  is served with `stale=True` and its time; only when there never was one does the read fail with
  `account_unavailable` (503, nothing stored).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.cache import cache

from accounts.models import User
from execution.services.drawdown import equity_observe
from kernel.cache_safe import cache_call
from kernel.errors import ApplicationError
from kernel.singleflight import Singleflight
from kernel.venue import client as vc

logger = logging.getLogger(__name__)
ZERO = Decimal(0)
LAST_KNOWN_TTL_SEC = 86_400
_flights = Singleflight()


class AccountUnavailable(ApplicationError):
    code = "account_unavailable"
    status = 503


@dataclass(frozen=True, slots=True)
class AccountState:
    state: dict[str, Any]
    fetched_at: float  # epoch seconds of the venue answer
    epoch: int
    stale: bool = False
    reason: str = ""  # why stale: budget | backoff | rate_limited | timeout | unreachable | error
    positions: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def equity(self) -> Decimal | None:
        value = (self.state.get("marginSummary") or {}).get("accountValue")
        try:
            return None if value is None else Decimal(str(value))
        except ArithmeticError:
            return None

    def position_size(self, symbol: str) -> Decimal:
        return Decimal(str(self.positions.get(symbol, {}).get("szi", "0")))

    def exposure_usd(self) -> Decimal:
        return sum((abs(Decimal(str(p.get("positionValue", "0")))) for p in self.positions.values()), ZERO)

    def as_meta(self) -> dict[str, Any]:
        """What an API answer says about where the numbers come from."""
        return {"stale": self.stale, "as_of_ms": int(self.fetched_at * 1000), "stale_reason": self.reason or None}


def positions_from_state(state: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Open positions by coin (size != 0) from a clearinghouseState answer."""
    out: dict[str, dict[str, Any]] = {}
    for ap in state.get("assetPositions", []) or []:
        pos = ap.get("position", {}) if isinstance(ap, dict) else {}
        try:
            if Decimal(str(pos.get("szi", "0"))) != 0:
                out[str(pos.get("coin"))] = pos
        except ArithmeticError:
            logger.warning("unparseable position from the venue", extra={"position": str(pos)[:200]})
    return out


def _epoch_key(user_id: int) -> str:
    return f"exec:acct-epoch:{user_id}"


def account_epoch(*, user: User) -> int:
    """The user's account epoch; -1 when the shared cache cannot tell (no cached state is then trusted)."""
    return int(cache_call(lambda: cache.get(_epoch_key(user.pk)) or 0, fallback=-1, what="account_epoch"))


def account_invalidate(*, user: User) -> None:
    """Something changed the account (a fill): states fetched before now are no longer used."""
    cache_call(lambda: vc.counter_add(_epoch_key(user.pk), 1, None), fallback=0, what="account_epoch")


def _state_of(raw: dict[str, Any], *, at: float, epoch: int, stale: bool, reason: str = "") -> AccountState:
    state = raw if isinstance(raw, dict) else {}
    return AccountState(
        state=state, fetched_at=at, epoch=epoch, stale=stale, reason=reason, positions=positions_from_state(state)
    )


def _fetch(user: User, *, priority: str, quota: bool) -> AccountState:
    epoch = account_epoch(user=user)  # read BEFORE asking: a fill applied meanwhile makes this answer old
    if quota:
        vc.user_quota_take(user.pk, vc.info_weight({"type": "clearinghouseState"}))
    raw = vc.info({"type": "clearinghouseState", "user": user.address, "dex": ""}, priority=priority)
    if not isinstance(raw, dict):
        raise vc.VenueError(f"clearinghouseState answer is not an object: {str(raw)[:100]}", kind="error")
    at = time.time()
    entry = {"at": at, "epoch": epoch, "state": raw}

    def store() -> None:
        cache.set(f"exec:acct:{user.pk}", entry, 120)
        cache.set(f"exec:acct-last:{user.pk}", entry, LAST_KNOWN_TTL_SEC)

    cache_call(store, fallback=None, what="account_state")
    result = _state_of(raw, at=at, epoch=epoch, stale=False)
    _observe_equity(user=user, result=result)
    return result


def _observe_equity(*, user: User, result: AccountState) -> None:

    if result.equity is not None:
        try:
            equity_observe(user=user, equity=result.equity)
        except Exception:  # bookkeeping must never fail a read; logged, re-observed next read
            logger.warning("equity high-water mark not updated", extra={"user_id": user.pk}, exc_info=True)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, vc.VenueTimeout):
        return "timeout"
    if isinstance(exc, vc.VenueError):
        return {"server": "unreachable", "client": "error"}.get(exc.kind, exc.kind)
    return "error"


def account_read(
    *, user: User, max_age: float | None = None, priority: str = vc.ACCOUNT, quota: bool = True, fresh: bool = False
) -> AccountState:
    """The user's account, at most `max_age` seconds old and of the current epoch when the venue can be asked;
    otherwise the last known state with stale=True. `fresh` skips the cache (and singleflight) entirely."""
    limit = settings.EXECUTION_ACCOUNT_CACHE_SEC if max_age is None else max_age
    epoch = account_epoch(user=user)
    hit = (
        None
        if fresh or epoch < 0
        else cache_call(lambda: cache.get(f"exec:acct:{user.pk}"), fallback=None, what="account_state")
    )
    if hit is not None and hit.get("epoch") == epoch and time.time() - hit["at"] <= limit:
        return _state_of(hit["state"], at=hit["at"], epoch=epoch, stale=False)
    try:
        if fresh:
            return _fetch(user, priority=priority, quota=quota)
        result = _flights.do(f"acct:{user.pk}", lambda: _fetch(user, priority=priority, quota=quota))
        if result.epoch != epoch:  # joined a read that started before a fill we already know of
            result = _fetch(user, priority=priority, quota=quota)
        return result
    except (vc.VenueError, vc.VenueTimeout) as exc:
        return _last_known(user=user, reason=_reason(exc), error=exc)


def _last_known(*, user: User, reason: str, error: BaseException) -> AccountState:
    last = cache_call(lambda: cache.get(f"exec:acct-last:{user.pk}"), fallback=None, what="account_state")
    if last is None:
        retry = getattr(error, "retry_after", 0.0) or 1.0
        raise AccountUnavailable(
            f"the venue account could not be read ({reason}) and nothing is known yet; retry shortly",
            extra={"reason": reason, "retry_after_s": round(float(retry), 1)},
        ) from error
    logger.info("serving the last known account state", extra={"user_id": user.pk, "reason": reason})
    return _state_of(last["state"], at=last["at"], epoch=int(last.get("epoch", -1)), stale=True, reason=reason)
