"""The split topology as real processes, on PostgreSQL and Redis servers of its own that a test may stop and start,
with a steady order flow from several traders and public and private sockets watching — the chaos suite's world.

Nothing here reaches into the application: processes are started as the compose file starts them, traders go
through HTTP with wallets, the venue's truth is read from the simulator, the database's with SQL.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import psycopg
import requests
from eth_account import Account

from deploy.servers import PostgresServer, RedisServer, free_port
from tests.e2e.live import ROOT, Trader

PY = sys.executable


# --- the application's processes ---------------------------------------------------------------------------------
@dataclass
class Proc:
    name: str
    args: list[str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None


@dataclass
class Deployment:
    pg: PostgresServer  # stop() is a fast shutdown, start() brings it back on the same port
    redis: RedisServer  # no persistence: kill() then start() is a restart that lost everything
    env: dict[str, str]
    web: list[str]
    venue: str
    tmp: Path
    procs: dict[str, Proc] = field(default_factory=dict)

    # processes
    def start(self, name: str) -> None:
        proc = self.procs[name]
        with open(proc.log, "ab") as out:
            proc.popen = subprocess.Popen(proc.args, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT)

    def kill(self, name: str) -> None:
        """kill -9, as a crash or an OOM kill."""
        popen = self.procs[name].popen
        if popen is not None and popen.poll() is None:
            popen.kill()
            popen.wait(10)

    def stop_all(self) -> None:
        for proc in reversed(list(self.procs.values())):
            if proc.popen is not None and proc.popen.poll() is None:
                proc.popen.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            if proc.popen is not None:
                try:
                    proc.popen.wait(15)
                except subprocess.TimeoutExpired:
                    proc.popen.kill()

    def alive(self) -> list[str]:
        return [n for n, p in self.procs.items() if p.popen is not None and p.popen.poll() is None]

    def server_errors(self) -> list[str]:
        """Every 500 a web process answered so far (Django logs each as `Internal Server Error: <path>`): a fault in a
        dependency must answer 503 with Retry-After, never a 500."""
        return [
            line[:300]
            for name, p in self.procs.items()
            if name.startswith("web") and p.log.exists()
            for line in p.log.read_text(errors="replace").splitlines()
            if "Internal Server Error" in line
        ]

    def logs(self, tail: int = 3000) -> str:
        budget = self.manage("shell", "-c", "from kernel.venue.client import budget_used; print(budget_used())")
        stats = self.venue_stats().get("rest_calls", {}) if _up(self.venue + "/control/stats") else {}
        head = f"--- venue budget: {budget.stdout.strip()[-400:]}\n--- venue calls: {stats}\n"
        return head + "\n".join(
            f"--- {p.name}\n{p.log.read_text(errors='replace')[-tail:]}" for p in self.procs.values()
        )

    # the venue and the database, read directly
    def venue_control(self, body: dict[str, Any]) -> dict[str, Any]:
        return dict(requests.post(self.venue + "/control", json=body, timeout=10).json())

    def venue_stats(self) -> dict[str, Any]:
        return dict(requests.get(self.venue + "/control/stats", timeout=10).json())

    def venue_accounts(self) -> dict[str, Any]:
        """Every account's open orders and positions from the simulator's control endpoint (no REST budget)."""
        return dict(self.venue_control({"action": "accounts"})["accounts"])

    def sql(self, query: str, *args: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.pg.url, connect_timeout=3) as conn:
            return list(conn.execute(query, args).fetchall())

    def manage(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [PY, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout
        )

    def ready(self, base: str) -> bool:
        with contextlib.suppress(requests.RequestException):
            return requests.get(base + "/readyz", timeout=2).status_code == 200
        return False


def _env(
    tmp: Path, pg: PostgresServer, redis: RedisServer, ports: list[int], venue_port: int, admin: str
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")}
    origins = [f"http://127.0.0.1:{p}" for p in ports]
    env.update(
        ENVIRONMENT="development",
        DEBUG="false",
        LOG_LEVEL=os.environ.get("CHAOS_LOG_LEVEL", "warning"),
        DATABASE_URL=pg.url,
        REDIS_URL=redis.url,
        CELERY_BROKER_URL=redis.url,
        HYPERSENTRY_VENUE_URL=f"http://127.0.0.1:{venue_port}",
        HYPERSENTRY_EMBED_SIMULATOR="false",
        AGGREGATOR_EMBEDDED="false",
        ALPHA_EMBEDDED="false",
        EXECUTION_EMBEDDED="false",
        FRONTEND_URL=origins[0],
        ALLOWED_ORIGINS=",".join(origins),
        ADMIN_ADDRESSES=admin,
        PROMETHEUS_MULTIPROC_DIR="",
        # Bounds the suite states and measures (docs/runbooks.md): reconciliation every 5 s, a request whose process
        # died finalised after 15 s, venue calls time out after 3 s.
        EXECUTION_RECONCILE_SEC="5",
        EXECUTION_INFLIGHT_STALE_SEC="15",
        EXECUTION_VENUE_TIMEOUT_SEC="3",
        EXECUTION_CANCEL_RETRY_SEC="6",
        EXECUTION_UNKNOWN_RESOLVE_DELAY_SEC="2",
        EXECUTION_ORDERS_PER_MIN="600",
        EXECUTION_CANCELS_PER_MIN="600",
    )
    return env


@contextlib.contextmanager
def chaos_split(*, admin: str) -> Iterator[Deployment]:
    tmp = Path(tempfile.mkdtemp(prefix="hs-chaos-"))
    pg, redis = PostgresServer(scratch=True, max_connections=200), RedisServer()
    ports = [free_port(), free_port()]
    venue_port = free_port()
    dep = Deployment(
        pg=pg,
        redis=redis,
        env=_env(tmp, pg, redis, ports, venue_port, admin),
        web=[f"http://127.0.0.1:{p}" for p in ports],
        venue=f"http://127.0.0.1:{venue_port}",
        tmp=tmp,
    )
    celery = str(Path(PY).with_name("celery"))
    commands: dict[str, list[str]] = {
        "hlsim": [PY, "manage.py", "hlsim", "--port", str(venue_port), "--control"],
        "ingest": [PY, "manage.py", "ingest_markets"],
        "userfeed": [PY, "manage.py", "run_userfeed"],
        "web0": [PY, "manage.py", "serve", "--port", str(ports[0]), "--components="],
        "web1": [PY, "manage.py", "serve", "--port", str(ports[1]), "--components="],
        "worker": [celery, "-A", "hypersentry", "worker", "--pool=threads", "-c", "4", "-l", "warning"],
        "beat": [celery, "-A", "hypersentry", "beat", "-l", "warning", "-s", str(tmp / "beat-schedule")],
    }
    for name, args in commands.items():
        dep.procs[name] = Proc(name=name, args=args, log=tmp / f"{name}.log")
    try:
        migrated = dep.manage("migrate", "-v0", timeout=180)
        assert migrated.returncode == 0, migrated.stderr
        dep.start("hlsim")
        wait_until(lambda: _up(dep.venue + "/control/stats"), 60, dep, "the venue simulator")
        for name in ("ingest", "userfeed", "web0", "web1", "worker", "beat"):
            dep.start(name)
        for base in dep.web:
            wait_until(functools.partial(dep.ready, base), 90, dep, f"{base}/readyz")
        yield dep
    finally:
        dep.stop_all()
        pg.close()
        redis.close()


def _up(url: str) -> bool:
    with contextlib.suppress(requests.RequestException):
        return requests.get(url, timeout=2).status_code == 200
    return False


def wait_until(check: Callable[[], bool], timeout: float, dep: Deployment, what: str, every: float = 0.25) -> float:
    """Seconds until `check()` held; fails naming `what` (with the processes' logs) after `timeout`."""
    started = time.monotonic()
    error: BaseException | None = None
    while True:
        try:
            if check():
                return time.monotonic() - started
        except Exception as exc:  # kept for the failure message; the check is retried
            error = exc
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what}: not within {timeout:.0f}s (last error: {error!r})\n{dep.logs()}")
        time.sleep(every)


# --- load: traders placing and cancelling orders, sockets watching ----------------------------------------------
@dataclass
class Answer:
    key: str
    body: dict[str, Any]
    status: int | None  # None: no answer (connection refused or broke)
    at: float


class OrderFlow:
    """Traders in threads: a resting order 10 % below mid then its cancel, and every sixth round a small market
    buy (a steady flow well inside the venue's per-IP budget); each on a web process round robin. A request
    without an answer is retried with the SAME key (as the terminal does) until it gets a final answer — the keys
    that got none are what recovery must settle."""

    def __init__(self, dep: Deployment, traders: list[Trader]) -> None:
        self.dep = dep
        self.traders = traders
        self.answers: list[Answer] = []
        self.unanswered: dict[str, tuple[Trader, dict[str, Any]]] = {}
        self.stop = threading.Event()
        self.paused = threading.Event()
        self.lock = threading.Lock()
        self.busy = 0  # the flow's own requests on the wire
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(len(traders))]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def close(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(30)

    @contextlib.contextmanager
    def quiet(self, bound: float = 20.0) -> Iterator[None]:
        """The flow paused and its last requests answered: a scenario owns the venue's next order actions."""
        self.paused.set()
        deadline = time.monotonic() + bound
        try:
            while self.busy and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not self.busy, f"the flow still has {self.busy} requests on the wire after {bound} s"
            yield
        finally:
            self.paused.clear()

    def send(self, trader: Trader, path: str, body: dict[str, Any], key: str) -> Answer:
        """One request of the flow (public: a scenario may add its own, retried like the flow's)."""
        return self._post(trader, path, body, key)

    def answered(self, keys: list[str]) -> bool:
        """Each key got a final answer (not no answer, not 409 in flight)."""
        with self.lock:
            final = {a.key for a in self.answers if a.status is not None and a.key not in self.unanswered}
        return set(keys) <= final

    def answer_of(self, key: str) -> dict[str, Any]:
        with self.lock:
            return next(a.body for a in reversed(self.answers) if a.key == key and a.status is not None)

    def status_of(self, key: str) -> int:
        with self.lock:
            return next(int(a.status) for a in reversed(self.answers) if a.key == key and a.status is not None)

    def _post(self, trader: Trader, path: str, body: dict[str, Any], key: str) -> Answer:
        try:
            r = trader.post(path, body, key=key)
            answer = Answer(key=key, body=r.json(), status=r.status_code, at=time.monotonic())
        except (requests.RequestException, ValueError) as exc:
            answer = Answer(key=key, body={"error": str(exc)}, status=None, at=time.monotonic())
        with self.lock:
            self.answers.append(answer)
            if answer.status is None or answer.status == 409 and answer.body.get("code") == "idempotency_in_flight":
                self.unanswered[key] = (trader, {"path": path, "body": body})
            else:
                self.unanswered.pop(key, None)
        return answer

    def _run(self, i: int) -> None:
        trader = self.traders[i]
        n = 0
        while not self.stop.is_set():
            with self.lock:
                if self.paused.is_set():
                    idle = True
                else:
                    idle = False
                    self.busy += 1
            if idle:
                time.sleep(0.2)
                continue
            try:
                self._step(trader, n := n + 1)
            finally:
                with self.lock:
                    self.busy -= 1
            time.sleep(1.5)

    def _step(self, trader: Trader, n: int) -> None:
        """Every sixth step a market order, otherwise a limit order near the touch that is cancelled if it rests."""
        t = trader.on(self.dep.web[n % len(self.dep.web)])
        self._retry_unanswered(t)
        if n % 6 == 0:
            body = {"symbol": "BTC", "side": "buy", "type": "market", "size_usd": "11"}
            self._post(t, "/trading/order", body, str(uuid.uuid4()))
        else:
            px = self._price(t)
            if px is not None:
                body = {"symbol": "BTC", "side": "buy", "type": "limit", "price": px, "size_usd": "12"}
                placed = self._post(t, "/trading/order", body, str(uuid.uuid4()))
                order = placed.body.get("order") if placed.status in (201, 202) else None
                if order and order.get("state") == "resting":
                    self._post(t, "/trading/cancel", {"order_id": order["id"]}, str(uuid.uuid4()))

    def _retry_unanswered(self, t: Trader) -> None:
        with self.lock:
            mine = [(k, v) for k, v in self.unanswered.items() if v[0].address == t.address]
        for key, (_, req) in mine[:3]:
            self._post(t, req["path"], req["body"], key)

    @staticmethod
    def _price(t: Trader) -> str | None:
        with contextlib.suppress(requests.RequestException, KeyError, IndexError, ValueError):
            book = t.get("/trading/orderbook?coin=BTC&depth=1").json()["book"]
            mid = (Decimal(book["bids"][0][0]) + Decimal(book["asks"][0][0])) / 2
            return str(int(mid * Decimal("0.9")))
        return None

    def ok_since(self, since: float) -> int:
        with self.lock:
            return sum(1 for a in self.answers if a.at >= since and a.status in (200, 201))

    def first_ok_after(self, since: float) -> float | None:
        with self.lock:
            times = [a.at for a in self.answers if a.at >= since and a.status in (200, 201)]
        return min(times) - since if times else None


class Sockets:
    """One public socket per web process (BTC market stream) and one private socket per trader, reconnecting like the
    terminal does; records the time of the last frame each received."""

    def __init__(self, dep: Deployment, traders: list[Trader]) -> None:
        self.dep = dep
        self.traders = traders
        self.last: dict[str, float] = {}
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.tasks: list[concurrent.futures.Future[None]] = []

    def start(self) -> None:
        self.thread.start()
        for i, base in enumerate(self.dep.web):
            self.tasks.append(asyncio.run_coroutine_threadsafe(self._public(f"public{i}", base), self.loop))
        for i, t in enumerate(self.traders):
            self.tasks.append(asyncio.run_coroutine_threadsafe(self._private(f"private{i}", t), self.loop))

    def close(self) -> None:
        async def cancel_all() -> None:
            current = asyncio.current_task()
            pending = [t for t in asyncio.all_tasks() if t is not current]
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(cancel_all(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    async def _public(self, name: str, base: str) -> None:
        await self._watch(name, base, None, '{"type":"subscribe","coin":"BTC","channels":["public.market"]}')

    async def _private(self, name: str, trader: Trader) -> None:
        cookie = "; ".join(f"{k}={v}" for k, v in trader.http.cookies.items())
        await self._watch(name, trader.base, cookie, '{"type":"subscribe_private"}')

    async def _watch(self, name: str, base: str, cookie: str | None, subscribe: str) -> None:
        from websockets.asyncio.client import connect
        from websockets.typing import Origin

        url = base.replace("http://", "ws://") + "/ws"
        headers = {"Cookie": cookie} if cookie else {}
        while True:
            try:
                async with connect(url, origin=Origin(base), additional_headers=headers, open_timeout=5) as ws:
                    await ws.send(subscribe)
                    async for raw in ws:
                        frame = orjson.loads(raw)
                        if frame.get("event_type") or frame.get("type") in ("subscribed", "subscribed_private"):
                            self.last[name] = time.monotonic()
            except asyncio.CancelledError:
                raise
            except Exception:
                await asyncio.sleep(1.0)

    def all_fresh_since(self, since: float, names: list[str] | None = None) -> bool:
        wanted = names or [f"public{i}" for i in range(len(self.dep.web))]
        return all(self.last.get(n, 0.0) > since for n in wanted)


def make_traders(dep: Deployment, n: int) -> list[Trader]:
    return [Trader(dep.web[i % len(dep.web)], Account.create()).sign_in().enable_trading() for i in range(n)]
