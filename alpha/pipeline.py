"""The alpha pipeline worker: hot state → per-symbol history → ConvictionEngine.analyze → envelopes.

Every ~200 ms (`ALPHA_INTERVAL_MS`) one round:
1. reads the active symbols' snapshots from hot state in one call;
2. folds each changed snapshot into the symbol's in-process history and scores it (BTC first, then the alts
   with BTC's reference); unchanged symbols are re-scored at most once a second (time decay);
3. publishes `alpha_conviction` per symbol on public.alpha, and `gov_update` (the public gate view) at 1 Hz;
4. writes the latest envelope per symbol (which carries the last-10 rolling window and the streak) to the
   cache — Redis in split topologies — for REST and the trigger endpoint (in a thread; skipped if the previous
   write is still running);
5. once a second, for users who watch the alpha page (private socket in this process, or presence recorded
   by the page) or have auto mode on (bounded by ALPHA_MAX_PRIVATE_USERS): `risk_update` and `exec_plan`s
   sized with the user's equity (refreshed in the background at most every ALPHA_EQUITY_REFRESH_SEC);
6. for auto-mode users whose in-memory gate view passes, one autonomous attempt per user at a time, in a
   thread, through `alpha.services.autotrade_attempt` (which re-checks every gate in the database).

Under pressure it stays current rather than falling behind: a round stops scoring when its budget (75 % of the
interval) is spent and counts the rest as dropped (the next round reads their latest snapshot anyway), and a
round after an overrun only scores symbols whose inputs changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from accounts.models import User
from alpha import gates as g
from alpha import metrics, selectors
from alpha.engine import (
    AlphaConfig,
    ConvictionEngine,
    ConvictionResult,
    SymbolHistory,
    empty_history,
    trade_idea,
    update,
    win_probability,
)
from alpha.readings import Reading, SymbolTrack, conviction_payload
from alpha.services import autotrade_attempt, conviction_store_many, user_context_get
from execution.services.breakers import breakers_open
from execution.services.controls import controls_get
from kernel.contracts import channels as ch
from kernel.contracts.envelope import SequenceCounter, make_envelope
from kernel.realtime import get_broadcaster
from kernel.workers import AsyncWorker
from markets.hotstate import get_hot_state

logger = logging.getLogger(__name__)
SOURCE = "alpha"


@dataclass(frozen=True, slots=True)
class Runtime:
    """What the round needs from the database, refreshed every few seconds (never per symbol)."""

    engine_config: AlphaConfig = field(default_factory=AlphaConfig)
    thresholds: g.GateThresholds = field(default_factory=g.GateThresholds)
    reference_equity: Decimal = Decimal("10000")
    kill_switch: bool = False
    auto_halted: bool = False
    trading_enabled: bool = True
    breakers: tuple[str, ...] = ()
    auto_mode_global: bool = False
    auto_user_ids: tuple[int, ...] = ()
    presence_user_ids: tuple[int, ...] = ()

    def general_blocker(self) -> str | None:
        return g.general_blockers(
            kill_switch=self.kill_switch,
            auto_halted=self.auto_halted,
            trading_enabled=self.trading_enabled,
            breakers=self.breakers,
            auto_mode_global=self.auto_mode_global,
        )


def runtime_load(*, max_users: int) -> Runtime:
    """Sync (runs in a thread): settings row, controls, global breakers, auto-mode users and presence."""
    from django.conf import settings
    from django.db import close_old_connections

    close_old_connections()
    row = selectors.alpha_settings_get()
    controls = controls_get()
    return Runtime(
        engine_config=selectors.engine_config_from(row),
        thresholds=selectors.thresholds_from(row),
        reference_equity=Decimal(row.reference_equity_usd),
        kill_switch=controls.kill_switch_engaged,
        auto_halted=controls.auto_trading_halted,
        trading_enabled=controls.server_trading_enabled,
        breakers=breakers_open(user=None),
        auto_mode_global=bool(settings.RISK_AUTO_MODE_ENABLED),
        auto_user_ids=tuple(selectors.auto_mode_user_ids(limit=max_users)),
        presence_user_ids=tuple(sorted(selectors.presence_user_ids()))[:max_users],
    )


@dataclass(slots=True)
class PipelineConfig:
    interval_s: float = 0.2
    budget_fraction: float = 0.75
    max_symbols: int = 100
    refresh_unchanged_s: float = 1.0
    gov_interval_s: float = 1.0
    private_interval_s: float = 1.0
    plan_resend_s: float = 10.0
    max_plans_per_user: int = 30
    equity_refresh_s: float = 5.0
    max_private_users: int = 200
    runtime_refresh_s: float = 3.0
    symbols_refresh_s: float = 2.0
    symbols: tuple[str, ...] | None = None  # fixed universe (tests, bench); else hot state's live symbols
    store: bool = True
    private: bool = True
    auto: bool = True

    @classmethod
    def from_settings(cls) -> PipelineConfig:
        from django.conf import settings

        return cls(
            interval_s=settings.ALPHA_INTERVAL_MS / 1000.0,
            max_symbols=settings.ALPHA_MAX_SYMBOLS,
            max_private_users=settings.ALPHA_MAX_PRIVATE_USERS,
            equity_refresh_s=settings.ALPHA_EQUITY_REFRESH_SEC,
        )


@dataclass(slots=True)
class RoundStats:
    scored: int = 0
    dropped: int = 0
    published: int = 0
    skipped_unchanged: int = 0
    elapsed_s: float = 0.0


@dataclass(slots=True)
class PipelineSymbol:
    history: SymbolHistory
    track: SymbolTrack = field(default_factory=SymbolTrack)
    result: ConvictionResult | None = None
    payload: dict[str, Any] | None = None
    text: str | None = None
    gov_sent: float = 0.0
    gov_blocker: str | None = None


class AlphaPipeline:
    """Owns the per-symbol histories and latest results of this process."""

    def __init__(
        self,
        *,
        config: PipelineConfig | None = None,
        hot: Any = None,
        broadcaster: Any = None,
        runtime: Runtime | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config or PipelineConfig()
        self._hot = hot
        self._broadcaster = broadcaster
        self.runtime = runtime or Runtime()
        self._runtime_fixed = runtime is not None
        self._runtime_at = 0.0
        self.clock = clock
        self.engine = ConvictionEngine(self.runtime.engine_config)
        self.symbols: dict[str, PipelineSymbol] = {}
        self.seq = SequenceCounter()
        self._universe: list[str] = []
        self._universe_at = 0.0
        self._overran = False
        self._store_task: asyncio.Task[None] | None = None
        self._store_dirty: dict[str, str] = {}
        self._private_at = 0.0
        self._contexts: dict[int, Any] = {}  # user id -> services.UserContext
        self._ctx_loading: dict[int, asyncio.Task[None]] = {}
        self._plans_sent: dict[tuple[int, str], tuple[tuple[Any, ...], float]] = {}
        self._attempts: dict[int, asyncio.Task[None]] = {}
        self._attempted: set[tuple[int, str]] = set()
        self.totals = RoundStats()

    # --- collaborators ---------------------------------------------------------------------------------------
    @property
    def hot(self) -> Any:
        if self._hot is None:
            return get_hot_state()
        return self._hot

    @property
    def broadcaster(self) -> Any:
        if self._broadcaster is None:
            return get_broadcaster()
        return self._broadcaster

    # --- one round -------------------------------------------------------------------------------------------
    async def run_once(self) -> RoundStats:
        started = time.perf_counter()
        mono = time.monotonic()
        await self._refresh_runtime(mono)
        symbols = await self._active_symbols(mono)
        snaps = await self.hot.get_many(symbols) if symbols else {}
        stats = RoundStats()
        await self._score_all(symbols, snaps, started, mono, stats)
        await self._publish_gov(mono)
        self._store_schedule()
        if self.config.private and mono - self._private_at >= self.config.private_interval_s:
            self._private_at = mono
            await self._publish_private(mono)
        if self.config.auto:
            self._auto_schedule()
        stats.elapsed_s = time.perf_counter() - started
        self._overran = stats.elapsed_s > self.config.interval_s
        metrics.ROUND_SECONDS.observe(stats.elapsed_s)
        for name in ("scored", "dropped", "published", "skipped_unchanged"):
            setattr(self.totals, name, getattr(self.totals, name) + getattr(stats, name))
        return stats

    async def _refresh_runtime(self, mono: float) -> None:
        if self._runtime_fixed or mono - self._runtime_at < self.config.runtime_refresh_s:
            return
        self._runtime_at = mono
        runtime = await asyncio.to_thread(runtime_load, max_users=self.config.max_private_users)
        if runtime.engine_config != self.runtime.engine_config:
            self.engine = ConvictionEngine(runtime.engine_config)
        self.runtime = runtime

    async def _active_symbols(self, mono: float) -> list[str]:
        if self.config.symbols is not None:
            return list(self.config.symbols)
        if self._universe and mono - self._universe_at < self.config.symbols_refresh_s:
            return self._universe
        self._universe_at = mono
        status = await self.hot.get_status() or {}
        live = list((status.get("subscriptions") or {}).get("symbols") or [])
        universe = [s.upper() for s in (live or await self.hot.all_symbols())]
        btc = self.runtime.engine_config.btc_symbol.upper()
        ordered = ([btc] if btc in universe else []) + [s for s in universe if s != btc]
        self._universe = ordered[: self.config.max_symbols]
        return self._universe

    def _plan_order(self, symbols: list[str], snaps: dict[str, Any], mono: float) -> tuple[list[str], int]:
        """BTC first; then changed inputs, least recently scored first; then unchanged ones due a decay refresh
        (not after an overrun). Returns (order, changed count)."""
        btc = self.runtime.engine_config.btc_symbol.upper()
        changed: list[tuple[float, str]] = []
        due: list[str] = []
        for sym in symbols:
            snap = snaps.get(sym)
            if snap is None:
                continue
            state = self.symbols.get(sym)
            if state is None or snap.updated_at is None or snap.updated_at != state.track.last_input_ms:
                changed.append((0.0 if state is None else state.track.last_analyzed, sym))
            elif not self._overran and mono - state.track.last_analyzed >= self.config.refresh_unchanged_s:
                due.append(sym)
        changed.sort()
        order = [s for _, s in changed]
        if btc in order:
            order.remove(btc)
            order.insert(0, btc)
        return order + due, len(changed)

    async def _score_all(
        self, symbols: list[str], snaps: dict[str, Any], started: float, mono: float, stats: RoundStats
    ) -> None:
        order, changed = self._plan_order(symbols, snaps, mono)
        stats.skipped_unchanged = len(snaps) - len(order)
        metrics.QUEUE_DEPTH.set(changed)
        budget = self.config.interval_s * self.config.budget_fraction
        now_ms = int(self.clock() * 1000)
        btc = self.runtime.engine_config.btc_symbol.upper()
        for i, sym in enumerate(order):
            if i and time.perf_counter() - started > budget:
                stats.dropped += len(order) - i
                metrics.DROPPED.labels("round_budget").inc(len(order) - i)
                metrics.QUEUE_DEPTH.set(max(0, changed - i))
                break
            btc_state = self.symbols.get(btc)
            btc_ref = btc_state.result.btc_reference() if btc_state and btc_state.result and sym != btc else None
            t0 = time.perf_counter()
            text = self.score(sym, snaps[sym], now_ms=now_ms, btc=btc_ref, mono=mono)
            metrics.COMPUTE_SECONDS.observe(time.perf_counter() - t0)
            stats.scored += 1
            await self.broadcaster.publish(
                channel=ch.PUBLIC_ALPHA, symbol=sym, text=text, event_type=ch.ALPHA_CONVICTION
            )
            stats.published += 1
            if i % 16 == 15:
                await asyncio.sleep(0)  # the one-process topology shares this loop with the web server
        metrics.PUBLISHED.labels(ch.ALPHA_CONVICTION).inc(stats.published)

    def score(self, sym: str, snap: Any, *, now_ms: int, btc: Any, mono: float) -> str:
        """Fold `snap` into the symbol's history, analyze, and encode the alpha_conviction envelope once."""
        cfg = self.runtime.engine_config
        state = self.symbols.get(sym)
        if state is None:
            state = self.symbols[sym] = PipelineSymbol(history=empty_history(sym))
        if snap.updated_at is None or snap.updated_at != state.track.last_input_ms:
            state.history = update(state.history, snap, config=cfg)
            state.track.last_input_ms = snap.updated_at
        result = self.engine.analyze(history=state.history, now_ms=now_ms, btc=btc)
        state.track.push(ts_ms=now_ms, score=result.score, bias=result.bias)
        state.track.last_analyzed = mono
        rv = result.components["volatility"].inputs.get("rv_annualised")
        p = None if result.bias == "NEUTRAL" else win_probability(score=result.score, side=result.bias, config=cfg)
        payload = conviction_payload(
            result=result, track=state.track, price=state.history.last_price, rv_annual=rv, win_probability=p
        )
        envelope = make_envelope(
            event_type=ch.ALPHA_CONVICTION,
            symbol=sym,
            ts_ms=now_ms,
            source=SOURCE,
            seq=self.seq.next(sym),
            data=payload,
        )
        state.result, state.payload = result, payload
        state.text = envelope.encode().decode()
        self._store_dirty[sym] = state.text
        return state.text

    # --- governance view -------------------------------------------------------------------------------------
    def gov_data(self, sym: str, state: PipelineSymbol) -> dict[str, Any]:
        """The public gate view of a symbol: market-level gates, the general blocker and a reference-size plan."""
        rt, t = self.runtime, self.runtime.thresholds
        result, track = state.result, state.track
        assert result is not None
        side = g.side_for(result.score, t)
        streak = track.streak if track.streak_side == side else 0
        market = [
            g.Gate(
                g.SCORE, side != g.NONE, round(result.score, 2), {"long": t.min_score_long, "short": t.max_score_short}
            ),
            g.Gate(g.STREAK, side != g.NONE and streak >= t.min_streak, streak, t.min_streak),
        ]
        general = rt.general_blocker()
        blocked = (
            general
            if general is not None and general != g.AUTO_MODE
            else next((x.code for x in market if not x.ok), general)
        )
        idea = trade_idea(
            conviction=result,
            equity_usd=float(rt.reference_equity),
            price=state.history.last_price,
            book=state.history.book,
            realised_vol_annual=result.components["volatility"].inputs.get("rv_annualised"),
            config=rt.engine_config,
        )
        return {
            "symbol": sym,
            "score": result.score,
            "bias": result.bias,
            "side": side,
            "streak": {"side": track.streak_side, "count": track.streak, "start_ms": track.streak_start_ms},
            "gates": [x.as_dict() for x in market],
            "general_blocker": general,
            "blocked_by": blocked,
            "message": g.MESSAGES.get(blocked, "") if blocked else "",
            "controls": {
                "kill_switch": rt.kill_switch,
                "auto_halted": rt.auto_halted,
                "trading_enabled": rt.trading_enabled,
                "breakers": list(rt.breakers),
                "auto_mode_global": rt.auto_mode_global,
            },
            "thresholds": {
                "min_score_long": t.min_score_long,
                "max_score_short": t.max_score_short,
                "min_streak": t.min_streak,
                "min_size_usd": t.min_size_usd,
                "venue_min_notional_usd": t.venue_min_notional_usd,
                "cooldown_s": t.cooldown_ms // 1000,
                "max_concurrent": t.max_concurrent,
            },
            "reference": {
                "equity_usd": rt.reference_equity,
                "note": "sized for a reference equity (not your account)",
                "win_probability": idea.win_probability,
                "sizing": idea.sizing.as_dict(),
                "plan": idea.plan.as_dict(),
            },
        }

    async def _publish_gov(self, mono: float) -> None:
        now_ms = int(self.clock() * 1000)
        sent = 0
        for sym, state in self.symbols.items():
            if state.result is None or (mono - state.gov_sent < self.config.gov_interval_s):
                continue
            data = self.gov_data(sym, state)
            state.gov_sent, state.gov_blocker = mono, data["blocked_by"]
            text = (
                make_envelope(
                    event_type=ch.GOV_UPDATE,
                    symbol=sym,
                    ts_ms=now_ms,
                    source=SOURCE,
                    seq=self.seq.next(f"gov:{sym}"),
                    data=data,
                )
                .encode()
                .decode()
            )
            await self.broadcaster.publish(channel=ch.PUBLIC_ALPHA, symbol=sym, text=text, event_type=ch.GOV_UPDATE)
            sent += 1
        if sent:
            metrics.PUBLISHED.labels(ch.GOV_UPDATE).inc(sent)

    # --- store -----------------------------------------------------------------------------------------------
    def _store_schedule(self) -> None:
        if not self.config.store or not self._store_dirty:
            return
        if self._store_task is not None and not self._store_task.done():
            metrics.DROPPED.labels("store_busy").inc()
            return  # the dirty set carries over: the next write has the latest of everything
        envelopes, self._store_dirty = self._store_dirty, {}
        index = {
            s: {
                "score": st.result.score,
                "bias": st.result.bias,
                "rolling_avg": st.track.rolling_avg(),
                "streak": st.track.streak,
                "streak_side": st.track.streak_side,
                "ts": st.result.now_ms,
            }
            for s, st in self.symbols.items()
            if st.result is not None
        }
        self._store_task = asyncio.get_running_loop().create_task(self._store_write(envelopes, index))

    async def _store_write(self, envelopes: dict[str, str], index: dict[str, Any]) -> None:

        try:
            await asyncio.to_thread(conviction_store_many, envelopes=envelopes, index=index)
        except Exception:
            logger.exception("alpha store write failed", extra={"symbols": len(envelopes)})

    async def flush_store(self) -> None:
        """Tests and shutdown: write what is pending and wait for it."""
        if self._store_task is not None:
            with contextlib.suppress(Exception):
                await self._store_task
        self._store_schedule()
        if self._store_task is not None:
            await self._store_task

    # --- private streams -------------------------------------------------------------------------------------
    def private_targets(self) -> list[int]:
        local: set[int] = set()
        hub = getattr(self.broadcaster, "hub", None)
        if hub is not None:
            local = {uid for uid, conns in hub.users.items() if any(c.private_channels for c in conns)}
        ids = sorted(local | set(self.runtime.presence_user_ids) | set(self.runtime.auto_user_ids))
        return ids[: self.config.max_private_users]

    def _refresh_contexts(self, targets: list[int], mono: float) -> None:
        for uid in targets:
            ctx = self._contexts.get(uid)
            task = self._ctx_loading.get(uid)
            fresh = ctx is not None and mono - ctx.extra.get("mono", 0.0) < self.config.equity_refresh_s
            if fresh or (task is not None and not task.done()):
                continue
            self._ctx_loading[uid] = asyncio.get_running_loop().create_task(self._load_context(uid))
        for uid in [u for u in self._contexts if u not in targets]:
            self._contexts.pop(uid, None)

    async def _load_context(self, uid: int) -> None:
        try:
            ctx = await asyncio.to_thread(_context_for, uid)
        except Exception:
            logger.exception("alpha user context failed", extra={"user_id": uid})
            return
        if ctx is not None:
            ctx.extra["mono"] = time.monotonic()
            self._contexts[uid] = ctx

    async def _publish_private(self, mono: float) -> None:
        targets = self.private_targets()
        self._refresh_contexts(targets, mono)
        for uid in targets:
            ctx = self._contexts.get(uid)
            if ctx is None:
                continue
            risk = ctx.as_dict()
            risk["general_blocker"] = self.runtime.general_blocker()
            await self.broadcaster.publish_private(user_id=uid, event_type=ch.RISK_UPDATE, data=risk, source=SOURCE)
            await self._publish_plans(uid, ctx, mono)

    def user_gates(self, ctx: Any, sym: str, state: PipelineSymbol, size: Decimal | None) -> g.GateResult:
        """The in-memory gate view for one user (the database re-check happens in autotrade_attempt)."""
        rt, result, track = self.runtime, state.result, state.track
        assert result is not None
        last = ctx.extra.get("last_trade_ms", {}).get(sym)
        side = g.side_for(result.score, rt.thresholds)
        key = f"{sym}:{track.streak_start_ms}:{side}"
        inputs = g.GateInputs(
            now_ms=int(self.clock() * 1000),
            kill_switch=rt.kill_switch,
            auto_halted=rt.auto_halted,
            trading_enabled=rt.trading_enabled,
            breakers=rt.breakers + tuple(ctx.extra.get("user_breakers", ())),
            auto_mode=ctx.auto_mode,
            agent_ready=ctx.agent_ready,
            reading_ts_ms=result.now_ms,
            score=result.score,
            streak_side=track.streak_side,
            streak=track.streak,
            last_trade_ms=last,
            open_trades=ctx.open_auto_trades,
            already_traded=key in ctx.extra.get("traded_keys", set()) or (ctx.user_id, key) in self._attempted,
            size_usd=size,
        )
        return g.gates_evaluate(inputs, rt.thresholds)

    def _idea(self, ctx: Any, state: PipelineSymbol) -> Any:
        assert state.result is not None
        return trade_idea(
            conviction=state.result,
            equity_usd=None if ctx.equity_usd is None else float(ctx.equity_usd),
            price=state.history.last_price,
            book=state.history.book,
            realised_vol_annual=state.result.components["volatility"].inputs.get("rv_annualised"),
            current_exposure_usd=float(ctx.exposure_usd),
            limits=ctx.limits,
            config=self.runtime.engine_config,
        )

    async def _publish_plans(self, uid: int, ctx: Any, mono: float) -> None:
        sent = 0
        for sym, state in self.symbols.items():
            if state.result is None or sent >= self.config.max_plans_per_user:
                continue
            idea = self._idea(ctx, state)
            gates = self.user_gates(ctx, sym, state, idea.sizing.size_usd)
            sig = (idea.sizing.side, idea.sizing.size_usd, idea.plan.kind, gates.blocked_by, state.track.streak >= 5)
            last = self._plans_sent.get((uid, sym))
            if last is not None and last[0] == sig and mono - last[1] < self.config.plan_resend_s:
                continue
            self._plans_sent[(uid, sym)] = (sig, mono)
            data = {
                "symbol": sym,
                "score": state.result.score,
                "bias": state.result.bias,
                "equity_usd": ctx.equity_usd,
                "equity_source": "account",
                "win_probability": idea.win_probability,
                "sizing": idea.sizing.as_dict(),
                "plan": idea.plan.as_dict(),
                "auto": gates.as_dict(),
            }
            await self.broadcaster.publish_private(
                user_id=uid, event_type=ch.EXEC_PLAN, data=data, symbol=sym, source=SOURCE
            )
            sent += 1
        if sent:
            metrics.PUBLISHED.labels(ch.EXEC_PLAN).inc(sent)

    # --- autonomous execution --------------------------------------------------------------------------------
    def _auto_schedule(self) -> None:
        for uid, ctx in list(self._contexts.items()):
            if not ctx.auto_mode or not ctx.agent_ready:
                continue
            task = self._attempts.get(uid)
            if task is not None and not task.done():
                continue
            for sym, state in self.symbols.items():
                if state.result is None:
                    continue
                idea = self._idea(ctx, state)
                gates = self.user_gates(ctx, sym, state, idea.sizing.size_usd)
                if not gates.ok:
                    continue
                reading = Reading.from_payload(state.payload or {})
                self._attempted.add((uid, f"{sym}:{reading.streak_start_ms}:{gates.side}"))
                self._attempts[uid] = asyncio.get_running_loop().create_task(self._attempt(uid, reading))
                break

    async def _attempt(self, uid: int, reading: Reading) -> None:
        try:
            outcome = await asyncio.to_thread(_attempt_for, uid, reading)
            logger.info(
                "auto trade attempt",
                extra={
                    "user_id": uid,
                    "symbol": reading.symbol,
                    "status": outcome.status,
                    "code": outcome.body.get("code"),
                    "source": "alpha",
                },
            )
        except Exception:
            logger.exception("auto trade attempt failed", extra={"user_id": uid, "symbol": reading.symbol})
        finally:
            self._contexts.pop(uid, None)  # refresh equity, open trades and cooldowns before the next one

    async def drain(self) -> None:
        """Wait for background work (context loads, attempts, store write)."""
        tasks = [t for t in (*self._ctx_loading.values(), *self._attempts.values(), self._store_task) if t]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


def _context_for(uid: int) -> Any:
    from django.db import close_old_connections

    close_old_connections()
    try:
        user = User.objects.filter(pk=uid, is_active=True).first()
        return None if user is None else user_context_get(user=user)
    finally:
        close_old_connections()


def _attempt_for(uid: int, reading: Reading) -> Any:
    from django.db import close_old_connections

    close_old_connections()
    try:
        user = User.objects.get(pk=uid)
        return autotrade_attempt(user=user, reading=reading, trigger="worker")
    finally:
        close_old_connections()


class AlphaWorker(AsyncWorker):
    """`run_alpha` and the one-process component: rounds every ALPHA_INTERVAL_MS (sleep = period − elapsed)."""

    name = "alpha"

    def __init__(self, pipeline: AlphaPipeline | None = None) -> None:
        super().__init__()
        self.pipeline = pipeline or AlphaPipeline(config=PipelineConfig.from_settings())
        self.period = self.pipeline.config.interval_s
        self.round_timeout = 10.0

    async def run_once(self) -> None:
        stats = await self.pipeline.run_once()
        self.interval = max(0.0, self.period - stats.elapsed_s)

    async def teardown(self) -> None:
        await self.pipeline.drain()


async def run_embedded(stop: asyncio.Event) -> None:
    """The one-process topology's alpha component (registered in hypersentry.topology)."""
    from django.conf import settings

    if not settings.ALPHA_EMBEDDED:
        logger.info("embedded alpha disabled (ALPHA_EMBEDDED=false)")
        await stop.wait()
        return
    worker = AlphaWorker()
    watcher = asyncio.get_running_loop().create_task(stop.wait())
    watcher.add_done_callback(lambda _: worker.stop())
    try:
        await worker.run()
    finally:
        watcher.cancel()
