"""Which components run where: one heartbeat per component per process, in the cache (Redis in split topologies,
memory in one process), read by `/system` and `manage.py healthcheck`.

Every long-running process beats for each component it runs: the web (from the ASGI app), the workers built on
`kernel.workers` (alpha, user feeds), ingest, the simulator, Celery worker and beat, and `serve`'s components.
A beat row names the component and the process (host:pid, so two web replicas are two rows), when the process
started, when it last beat, and the last error its loop caught. Readers judge freshness: a row older than its
component's bound is stale (the process hangs or was killed); a process that stops cleanly deletes its row, and a
killed one's row expires after `ROW_TTL_SEC`.

The cache cannot list keys, so each component keeps an index of the processes that beat for it. The index is
read-modify-written without a lock; a lost update (two processes registering at once) is healed by the next
beat, since every beat checks that its process is still listed.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Final, TypedDict

from django.core.cache import cache
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

# Every beating helper writes this often; each component's bound leaves room for a few missed beats.
BEAT_EVERY_SEC: Final = 5.0
# How long a killed process stays listed (as stale) before its row expires.
ROW_TTL_SEC: Final = 600
_ERROR_MAX_CHARS: Final = 300

RUNNING: Final = "running"
STALE: Final = "stale"
NOT_RUNNING: Final = "not running"


@dataclass(frozen=True, slots=True)
class Component:
    name: str
    description: str
    fresh_within_sec: float  # a process whose last beat is older is stale; the healthcheck fails on it


COMPONENTS: Final[dict[str, Component]] = {
    c.name: c
    for c in (
        Component("web", "HTTP + WebSocket gateway", 20.0),
        Component("hlsim", "Hyperliquid-compatible venue simulator (paper trading)", 20.0),
        Component("ingest", "Market ingest: venue WS → normalised events → hot state → publish", 20.0),
        Component("alpha", "Conviction engine pipeline", 20.0),
        Component("execution", "Venue user feeds → private order/fill/account streams", 20.0),
        Component("jobs", "Periodic jobs run by `serve` itself (one-process topology)", 20.0),
        Component("celery", "Celery worker: runs the periodic jobs and background tasks (split topologies)", 20.0),
        # Beat beats on its scheduler tick (at most hypersentry.celery.BEAT_TICK_MAX_SEC apart); sending a due job
        # to a slow broker can hold a tick up, hence the wider bound.
        Component("beat", "Celery beat: schedules the periodic jobs (split topologies)", 30.0),
    )
}


class Beat(TypedDict):
    """One process's heartbeat for one component, as stored in the cache."""

    component: str
    host: str
    pid: int
    started_at: float  # epoch seconds: when this process started beating for the component
    last_beat: float  # epoch seconds
    detail: str


class SeenError(TypedDict):
    message: str
    at: float  # epoch seconds


def _instance(host: str, pid: int) -> str:
    return f"{host}:{pid}"


def _row_key(component: str, instance: str) -> str:
    return f"component:beat:{component}:{instance}"


def _error_key(component: str, instance: str) -> str:
    return f"component:error:{component}:{instance}"


def _index_key(component: str) -> str:
    return f"component:procs:{component}"


# --- this process's side -----------------------------------------------------------------------------------------


class _ProcessState:
    """What this process has written. Reset in a forked child: it is another process with rows of its own."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.started: dict[str, float] = {}  # epoch seconds, shown as uptime
        self.last_write: dict[str, float] = {}  # monotonic: a wall clock stepped back must not stop the writes
        self.exit_hook = False

    @property
    def instance(self) -> str:
        return _instance(self.host, self.pid)


_state = _ProcessState()


def _after_fork() -> None:
    global _state
    _state = _ProcessState()


os.register_at_fork(after_in_child=_after_fork)


def heartbeat(name: str, *, detail: str = "", min_interval: float = 2.0) -> None:
    """Record that this process runs `name` (throttled: at most one cache write per `min_interval`).

    Raises what the cache raises; the beating helpers below log it instead."""
    now, tick = time.time(), time.monotonic()
    state = _state
    with state.lock:
        last = state.last_write.get(name)
        if last is not None and tick - last < min_interval:
            return
        state.last_write[name] = tick
        started = state.started.setdefault(name, now)
        if not state.exit_hook:
            # A clean exit deletes the rows this process still has (ingest and the embedded components have no
            # stop hook of their own); a killed process cannot, and its rows go stale instead.
            atexit.register(_remove_own_rows)
            state.exit_hook = True
    row: Beat = {
        "component": name,
        "host": state.host,
        "pid": state.pid,
        "started_at": started,
        "last_beat": now,
        "detail": detail,
    }
    cache.set(_row_key(name, state.instance), row, ROW_TTL_SEC)
    _index_ensure(name, state.instance, now)


def _index_ensure(name: str, instance: str, now: float) -> None:
    """List `instance` in the component's index (re-listed once its entry is half-way to expiry)."""
    index: dict[str, float] = cache.get(_index_key(name)) or {}
    if now - index.get(instance, 0.0) < ROW_TTL_SEC / 2:
        return
    index = {inst: at for inst, at in index.items() if now - at < ROW_TTL_SEC}
    index[instance] = now
    cache.set(_index_key(name), index, ROW_TTL_SEC)


def error_seen(name: str, error: BaseException | str, *, pid: int | None = None) -> None:
    """Record the last error `name`'s loop caught in this process (or in `pid`: a pool child reports to the
    worker process that beats for it)."""
    message = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    record: SeenError = {"message": message[:_ERROR_MAX_CHARS], "at": time.time()}
    state = _state
    cache.set(_error_key(name, _instance(state.host, state.pid if pid is None else pid)), record, ROW_TTL_SEC)


def heartbeat_remove(name: str) -> None:
    """This process stops running `name` cleanly: its row goes (not stale: gone)."""
    state = _state
    with state.lock:
        state.started.pop(name, None)
        state.last_write.pop(name, None)
    instance = state.instance
    cache.delete_many([_row_key(name, instance), _error_key(name, instance)])
    index: dict[str, float] = cache.get(_index_key(name)) or {}
    if instance in index:
        del index[instance]
        cache.set(_index_key(name), index, ROW_TTL_SEC)


def _remove_own_rows() -> None:
    """At a clean exit: delete the rows this process still has."""
    state = _state
    if state.pid != os.getpid():
        return
    for name in list(state.started):
        # Not logged: at interpreter exit the log streams may be closed already. A row left behind expires.
        with contextlib.suppress(RedisError, OSError):
            heartbeat_remove(name)


class BeatWriter:
    """One component's heartbeat writes for loops that beat themselves (Celery beat's tick) and for the beating
    helpers below: a cache outage is logged once (and its end), never raised into the process it describes."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.failing = False

    def beat(self, detail: str = "", *, min_interval: float = 0.0) -> None:
        self._guard(lambda: heartbeat(self.name, detail=detail, min_interval=min_interval))

    def remove(self) -> None:
        self._guard(lambda: heartbeat_remove(self.name))

    def _guard(self, write: Callable[[], None]) -> None:
        try:
            write()
        except Exception:
            if not self.failing:
                logger.warning("heartbeat not recorded", extra={"component": self.name}, exc_info=True)
            self.failing = True
            return
        if self.failing:
            logger.info("heartbeat recorded again", extra={"component": self.name})
            self.failing = False


def error_seen_safely(name: str, error: BaseException | str, *, pid: int | None = None) -> None:
    """`error_seen` from a loop boundary: the loop goes on whatever the cache does."""
    try:
        error_seen(name, error, pid=pid)
    except Exception:
        logger.warning("loop error not recorded", extra={"component": name}, exc_info=True)


def _no_detail() -> str:
    return ""


class AsyncHeartbeat:
    """Beat for `name` every `every` seconds from a task in the running event loop (so a blocked loop goes stale),
    until `stop()`, which deletes the row. Also an async context manager."""

    def __init__(self, name: str, *, detail: Callable[[], str] = _no_detail, every: float = BEAT_EVERY_SEC) -> None:
        self.name = name
        self.detail = detail
        self.every = every
        self._reporter = BeatWriter(name)
        self._task: asyncio.Task[None] | None = None
        self._stopping: asyncio.Event | None = None
        self._stopped = False

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start beating in the running loop; a no-op while beating or once stopped."""
        if self._stopped or self.running:
            return
        self._stopping = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run(self._stopping), name=f"heartbeat:{self.name}")

    async def _run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            await asyncio.to_thread(self._reporter.beat, self.detail())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), self.every)

    async def stop(self) -> None:
        # The loop is asked to end rather than cancelled: a write in flight finishes before the row is deleted,
        # so it cannot bring the row back after the delete.
        self._stopped = True
        if self._task is not None and self._stopping is not None:
            self._stopping.set()
            await asyncio.gather(self._task, return_exceptions=True)
        await asyncio.to_thread(self._reporter.remove)

    async def __aenter__(self) -> AsyncHeartbeat:
        self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


class ThreadHeartbeat:
    """Beat for `name` from a daemon thread (blocking processes: Celery worker, the blocking worker shell) until
    `stop()`, which deletes the row."""

    def __init__(self, name: str, *, detail: Callable[[], str] = _no_detail, every: float = BEAT_EVERY_SEC) -> None:
        self.name = name
        self.detail = detail
        self.every = every
        self._reporter = BeatWriter(name)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name=f"heartbeat:{self.name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            self._reporter.beat(self.detail())
            if self._stopping.wait(self.every):
                return

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=self.every + 5.0)
        self._reporter.remove()


# --- readers -------------------------------------------------------------------------------------------------------


class ProcessRow(TypedDict):
    component: str
    instance: str  # host:pid
    host: str
    pid: int
    state: str  # RUNNING or STALE
    running: bool
    age_s: float  # since the last beat
    uptime_s: float  # since the process started beating
    detail: str
    error: str  # the last error its loop caught, "" when none on record
    error_age_s: float | None


class ComponentRow(TypedDict):
    name: str
    description: str
    fresh_within_sec: float
    state: str  # RUNNING (a process is fresh), STALE (only stale ones), NOT_RUNNING (no process on record)
    running: bool
    age_s: float | None  # the freshest process's last beat
    detail: str  # the freshest process's detail
    processes: list[ProcessRow]  # freshest first


def _process_row(component: Component, beat: Beat, error: SeenError | None, now: float) -> ProcessRow:
    age = max(0.0, now - beat["last_beat"])
    running = age <= component.fresh_within_sec
    return {
        "component": component.name,
        "instance": _instance(beat["host"], beat["pid"]),
        "host": beat["host"],
        "pid": beat["pid"],
        "state": RUNNING if running else STALE,
        "running": running,
        "age_s": round(age, 1),
        "uptime_s": round(max(0.0, now - beat["started_at"]), 1),
        "detail": beat.get("detail", ""),
        "error": "" if error is None else error["message"],
        "error_age_s": None if error is None else round(max(0.0, now - error["at"]), 1),
    }


def _component_row(component: Component, processes: list[ProcessRow]) -> ComponentRow:
    processes.sort(key=lambda p: p["age_s"])
    freshest = processes[0] if processes else None
    running = any(p["running"] for p in processes)
    return {
        "name": component.name,
        "description": component.description,
        "fresh_within_sec": component.fresh_within_sec,
        "state": RUNNING if running else STALE if processes else NOT_RUNNING,
        "running": running,
        "age_s": None if freshest is None else freshest["age_s"],
        "detail": "" if freshest is None else freshest["detail"],
        "processes": processes,
    }


def component_status(
    *, names: list[str] | None = None, host: str | None = None, now: float | None = None
) -> list[ComponentRow]:
    """Every known component (or `names`) with each process on record (or only those on `host`); three cache
    round trips in all."""
    now = time.time() if now is None else now
    wanted = [COMPONENTS[n] for n in (names if names is not None else list(COMPONENTS))]
    indexes: dict[str, dict[str, float]] = cache.get_many([_index_key(c.name) for c in wanted])
    pairs = [
        (c, inst)
        for c in wanted
        for inst in indexes.get(_index_key(c.name), {})
        if host is None or inst.rpartition(":")[0] == host
    ]
    beats: dict[str, Beat] = cache.get_many([_row_key(c.name, i) for c, i in pairs])
    errors: dict[str, SeenError] = cache.get_many([_error_key(c.name, i) for c, i in pairs])
    rows = []
    for component in wanted:
        processes = [
            _process_row(component, beat, errors.get(_error_key(component.name, inst)), now)
            for c, inst in pairs
            if c is component and (beat := beats.get(_row_key(c.name, inst))) is not None
        ]
        rows.append(_component_row(component, processes))
    return rows


def instance_alive(instance: str, *, now: float | None = None) -> bool | None:
    """Does the process `instance` (host:pid, as heartbeats name it) still run?

    True when it is this process or has a fresh beat under any component; False when its beats are all stale, or
    none is on record (on this host: when no process has that pid, so a command that never beats is not taken for
    dead while it runs); None when the heartbeats cannot be read."""
    state = _state
    if instance == state.instance:
        return True
    now = time.time() if now is None else now
    try:
        beats: dict[str, Beat] = cache.get_many([_row_key(name, instance) for name in COMPONENTS])
    except (RedisError, OSError):
        return None
    if beats:
        return any(now - b["last_beat"] <= COMPONENTS[b["component"]].fresh_within_sec for b in beats.values())
    host, _, pid = instance.rpartition(":")
    return host == state.host and pid.isdigit() and _pid_running(int(pid))


def _pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: existence and permission check only
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, owned by another user
    return True
