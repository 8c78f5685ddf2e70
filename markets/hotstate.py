"""The hot state store: one SymbolSnapshot per symbol, recent candles, ingest status and on-demand symbols.

One interface, two implementations: in memory for the one-process topology (no REDIS_URL) and Redis when
REDIS_URL is set, so a gateway in another process reads what ingest wrote. Redis keys:

    sym:{SYMBOL}:snapshot            orjson SymbolSnapshot
    sym:index                        set of symbols with a snapshot
    sym:{SYMBOL}:candles:{interval}  hash open-time-ms → orjson candle (wire shape)
    aggregator:status                orjson ingest status (with TTL: a dead ingest shows as not running)
    aggregator:universe              orjson list of perp tokens (name, szDecimals, maxLeverage, ...)
    demand:expiry / demand:count     zset / hash keyed "SYMBOL|process" (watchers per gateway process)

Async methods serve ingest and the gateway; `*_sync` variants serve DRF views running in threads.
"""

from __future__ import annotations

import abc
import asyncio
import threading
import time
import weakref
from collections.abc import Iterable, Sequence
from typing import Any, Final

import orjson
import redis
import redis.asyncio as aredis
from django.conf import settings

from kernel import clock
from kernel.contracts.snapshot import SymbolSnapshot

SNAPSHOT_KEY: Final = "sym:{}:snapshot"
INDEX_KEY: Final = "sym:index"
CANDLES_KEY: Final = "sym:{}:candles:{}"
STATUS_KEY: Final = "aggregator:status"
UNIVERSE_KEY: Final = "aggregator:universe"
DEMAND_EXPIRY_KEY: Final = "demand:expiry"
DEMAND_COUNT_KEY: Final = "demand:count"
CANDLES_KEPT: Final = 500


def _decode_snapshot(raw: bytes | str | None) -> SymbolSnapshot | None:
    return None if raw is None else SymbolSnapshot.from_dict(orjson.loads(raw))


class HotState(abc.ABC):
    """Interface; see the module docstring. Both implementations are safe to share between threads."""

    # --- snapshots
    @abc.abstractmethod
    async def put_many(self, snapshots: Sequence[SymbolSnapshot]) -> None: ...

    async def put(self, snapshot: SymbolSnapshot) -> None:
        await self.put_many([snapshot])

    async def get(self, symbol: str) -> SymbolSnapshot | None:
        return (await self.get_many([symbol])).get(symbol.upper())

    @abc.abstractmethod
    async def get_many(self, symbols: Iterable[str]) -> dict[str, SymbolSnapshot]: ...

    @abc.abstractmethod
    async def all_symbols(self) -> list[str]: ...

    def get_sync(self, symbol: str) -> SymbolSnapshot | None:
        return self.get_many_sync([symbol]).get(symbol.upper())

    @abc.abstractmethod
    def get_many_sync(self, symbols: Iterable[str]) -> dict[str, SymbolSnapshot]: ...

    @abc.abstractmethod
    def all_symbols_sync(self) -> list[str]: ...

    # --- candles (wire-shaped dicts with "t")
    @abc.abstractmethod
    async def put_candles(self, symbol: str, interval: str, candles: Sequence[dict[str, Any]]) -> None: ...

    @abc.abstractmethod
    def get_candles_sync(self, symbol: str, interval: str) -> list[dict[str, Any]]: ...

    # --- status and universe
    @abc.abstractmethod
    async def set_status(self, status: dict[str, Any], *, ttl_sec: float) -> None: ...

    @abc.abstractmethod
    def get_status_sync(self) -> dict[str, Any] | None: ...

    async def get_status(self) -> dict[str, Any] | None:
        return self.get_status_sync()

    @abc.abstractmethod
    async def set_universe(self, tokens: list[dict[str, Any]]) -> None: ...

    @abc.abstractmethod
    def get_universe_sync(self) -> list[dict[str, Any]] | None: ...

    # --- on-demand symbols (gateway → ingest)
    @abc.abstractmethod
    async def set_demand(self, symbol: str, process_id: str, count: int, ttl: float) -> None:
        """Record that `process_id` has `count` watchers of `symbol` (0 removes), valid for `ttl` seconds."""

    @abc.abstractmethod
    async def demanded_symbols(self) -> dict[str, int]:
        """Symbols with at least one live watcher in any process → total watchers."""


class MemoryHotState(HotState):
    """One-process topology: plain dicts. Snapshots are replaced whole, never mutated after `put`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._snapshots: dict[str, SymbolSnapshot] = {}
        self._candles: dict[tuple[str, str], dict[int, dict[str, Any]]] = {}
        self._status: tuple[dict[str, Any], float] | None = None
        self._universe: list[dict[str, Any]] | None = None
        self._demand: dict[tuple[str, str], tuple[int, float]] = {}

    async def put_many(self, snapshots: Sequence[SymbolSnapshot]) -> None:
        with self._lock:
            for snap in snapshots:
                self._snapshots[snap.symbol] = snap

    async def get_many(self, symbols: Iterable[str]) -> dict[str, SymbolSnapshot]:
        return self.get_many_sync(symbols)

    async def all_symbols(self) -> list[str]:
        return self.all_symbols_sync()

    def get_many_sync(self, symbols: Iterable[str]) -> dict[str, SymbolSnapshot]:
        with self._lock:
            found = {s.upper(): self._snapshots.get(s.upper()) for s in symbols}
        return {k: v for k, v in found.items() if v is not None}

    def all_symbols_sync(self) -> list[str]:
        with self._lock:
            return sorted(self._snapshots)

    async def put_candles(self, symbol: str, interval: str, candles: Sequence[dict[str, Any]]) -> None:
        with self._lock:
            series = self._candles.setdefault((symbol.upper(), interval), {})
            for c in candles:
                series[int(c["t"])] = c
            if len(series) > CANDLES_KEPT:
                for t in sorted(series)[: len(series) - CANDLES_KEPT]:
                    del series[t]

    def get_candles_sync(self, symbol: str, interval: str) -> list[dict[str, Any]]:
        with self._lock:
            series = self._candles.get((symbol.upper(), interval), {})
            return [series[t] for t in sorted(series)]

    async def set_status(self, status: dict[str, Any], *, ttl_sec: float) -> None:
        self._status = (status, time.monotonic() + ttl_sec)

    def get_status_sync(self) -> dict[str, Any] | None:
        current = self._status
        if current is None or current[1] < time.monotonic():
            return None
        return current[0]

    async def set_universe(self, tokens: list[dict[str, Any]]) -> None:
        self._universe = tokens

    def get_universe_sync(self) -> list[dict[str, Any]] | None:
        return self._universe

    async def set_demand(self, symbol: str, process_id: str, count: int, ttl: float) -> None:
        key = (symbol.upper(), process_id)
        with self._lock:
            if count <= 0:
                self._demand.pop(key, None)
            else:
                self._demand[key] = (count, time.monotonic() + ttl)

    async def demanded_symbols(self) -> dict[str, int]:
        now = time.monotonic()
        out: dict[str, int] = {}
        with self._lock:
            for key in [k for k, (_, exp) in self._demand.items() if exp < now]:
                del self._demand[key]
            for (symbol, _), (count, _) in self._demand.items():
                out[symbol] = out.get(symbol, 0) + count
        return out


class RedisHotState(HotState):
    """Split topologies: Redis. One sync client for views, one asyncio client per event loop."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._sync = redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
        self._async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()

    def _aclient(self) -> Any:
        loop = asyncio.get_running_loop()
        client = self._async.get(loop)
        if client is None:
            client = aredis.Redis.from_url(self.url, socket_timeout=2.0, socket_connect_timeout=2.0)
            self._async[loop] = client
        return client

    async def aclose(self) -> None:
        loop = asyncio.get_running_loop()
        client = self._async.pop(loop, None)
        if client is not None:
            await client.aclose()

    async def put_many(self, snapshots: Sequence[SymbolSnapshot]) -> None:
        if not snapshots:
            return
        pipe = self._aclient().pipeline(transaction=False)
        for snap in snapshots:
            # orjson serialises (slots) dataclasses natively: no asdict() deep copy on the hot path.
            pipe.set(SNAPSHOT_KEY.format(snap.symbol), orjson.dumps(snap))
        pipe.sadd(INDEX_KEY, *[s.symbol for s in snapshots])
        await pipe.execute()

    async def get_many(self, symbols: Iterable[str]) -> dict[str, SymbolSnapshot]:
        wanted = [s.upper() for s in symbols]
        if not wanted:
            return {}
        raws = await self._aclient().mget([SNAPSHOT_KEY.format(s) for s in wanted])
        return {s: snap for s, raw in zip(wanted, raws, strict=True) if (snap := _decode_snapshot(raw)) is not None}

    async def all_symbols(self) -> list[str]:
        return sorted(m.decode() for m in await self._aclient().smembers(INDEX_KEY))

    def get_many_sync(self, symbols: Iterable[str]) -> dict[str, SymbolSnapshot]:
        wanted = [s.upper() for s in symbols]
        if not wanted:
            return {}
        raws = self._sync.mget([SNAPSHOT_KEY.format(s) for s in wanted])
        return {s: snap for s, raw in zip(wanted, raws, strict=True) if (snap := _decode_snapshot(raw)) is not None}

    def all_symbols_sync(self) -> list[str]:
        return sorted(m.decode() if isinstance(m, bytes) else str(m) for m in self._sync.smembers(INDEX_KEY))

    async def put_candles(self, symbol: str, interval: str, candles: Sequence[dict[str, Any]]) -> None:
        if not candles:
            return
        key = CANDLES_KEY.format(symbol.upper(), interval)
        client = self._aclient()
        await client.hset(key, mapping={str(int(c["t"])): orjson.dumps(c) for c in candles})
        if await client.hlen(key) > CANDLES_KEPT + 50:
            times = sorted(int(t) for t in await client.hkeys(key))
            await client.hdel(key, *[str(t) for t in times[: len(times) - CANDLES_KEPT]])

    def get_candles_sync(self, symbol: str, interval: str) -> list[dict[str, Any]]:
        raw = self._sync.hgetall(CANDLES_KEY.format(symbol.upper(), interval))
        return [orjson.loads(raw[t]) for t in sorted(raw, key=int)]

    async def set_status(self, status: dict[str, Any], *, ttl_sec: float) -> None:
        await self._aclient().set(STATUS_KEY, orjson.dumps(status), px=max(1, int(ttl_sec * 1000)))

    def get_status_sync(self) -> dict[str, Any] | None:
        raw = self._sync.get(STATUS_KEY)
        return None if raw is None else orjson.loads(raw)

    async def get_status(self) -> dict[str, Any] | None:
        raw = await self._aclient().get(STATUS_KEY)
        return None if raw is None else orjson.loads(raw)

    async def set_universe(self, tokens: list[dict[str, Any]]) -> None:
        await self._aclient().set(UNIVERSE_KEY, orjson.dumps(tokens))

    def get_universe_sync(self) -> list[dict[str, Any]] | None:
        raw = self._sync.get(UNIVERSE_KEY)
        return None if raw is None else orjson.loads(raw)

    async def set_demand(self, symbol: str, process_id: str, count: int, ttl: float) -> None:
        member = f"{symbol.upper()}|{process_id}"
        pipe = self._aclient().pipeline(transaction=True)
        if count <= 0:
            pipe.zrem(DEMAND_EXPIRY_KEY, member)
            pipe.hdel(DEMAND_COUNT_KEY, member)
        else:
            pipe.zadd(DEMAND_EXPIRY_KEY, {member: clock.now_ms() + int(ttl * 1000)})
            pipe.hset(DEMAND_COUNT_KEY, member, count)
        await pipe.execute()

    async def demanded_symbols(self) -> dict[str, int]:
        client = self._aclient()
        expired = await client.zrangebyscore(DEMAND_EXPIRY_KEY, "-inf", clock.now_ms())
        if expired:
            pipe = client.pipeline(transaction=True)
            pipe.zrem(DEMAND_EXPIRY_KEY, *expired)
            pipe.hdel(DEMAND_COUNT_KEY, *expired)
            await pipe.execute()
        counts = await client.hgetall(DEMAND_COUNT_KEY)
        out: dict[str, int] = {}
        for member, count in counts.items():
            symbol = member.decode().split("|", 1)[0]
            out[symbol] = out.get(symbol, 0) + int(count)
        return {s: n for s, n in out.items() if n > 0}


_instance: HotState | None = None
_instance_lock = threading.Lock()


def get_hot_state() -> HotState:
    """The process's hot state: Redis when REDIS_URL is set, else memory (one-process topology)."""
    global _instance
    with _instance_lock:
        if _instance is None:
            _instance = RedisHotState(settings.REDIS_URL) if settings.REDIS_URL else MemoryHotState()
        return _instance


async def demand_record(symbol: str, process_id: str, count: int, ttl: float) -> None:
    """The realtime hub's demand sink (registered in markets.apps): watchers per symbol, for ingest."""
    await get_hot_state().set_demand(symbol, process_id, count, ttl)


def set_hot_state(state: HotState | None) -> None:
    """Replace the process's hot state (tests; `None` re-reads settings on next use)."""
    global _instance
    with _instance_lock:
        _instance = state
