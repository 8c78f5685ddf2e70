"""Real deployments for end-to-end tests: processes started as the README and compose file start them, and a
trader who signs in with a wallet over HTTP exactly as the browser does (SIWE, CSRF, agent approval)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import requests
from eth_account import Account
from eth_account.messages import encode_defunct, encode_typed_data
from eth_account.signers.local import LocalAccount

from deploy.servers import free_port

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Deployment:
    name: str
    web: list[str]  # base URLs of the web processes
    venue: str
    env: dict[str, str]
    procs: list[tuple[str, subprocess.Popen[bytes], Path]] = field(default_factory=list)

    def manage(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """A management command against this deployment (same environment), as an operator runs it."""
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def venue_info(self, body: dict[str, Any]) -> Any:
        return requests.post(self.venue + "/info", json=body, timeout=10).json()

    def logs(self) -> str:
        return "\n".join(f"--- {name}\n{path.read_text(errors='replace')[-4000:]}" for name, _, path in self.procs)

    def stop(self) -> None:
        for _, proc, _ in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for _, proc, _ in reversed(self.procs):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def base_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")}
    env.update(ENVIRONMENT="development", DEBUG="false", LOG_LEVEL="warning", SQLITE_PATH=str(tmp / "db.sqlite3"))
    return env


def start(dep: Deployment, name: str, args: list[str], tmp: Path, env: dict[str, str] | None = None) -> None:
    log = tmp / f"{name}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(args, cwd=ROOT, env=env or dep.env, stdout=out, stderr=subprocess.STDOUT)
    dep.procs.append((name, proc, log))


def wait_http(dep: Deployment, url: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while True:
        for name, proc, _ in dep.procs:
            assert proc.poll() is None, f"{name} exited early:\n{dep.logs()}"
        with contextlib.suppress(requests.RequestException):
            if requests.get(url, timeout=2).status_code < 500:
                return
        assert time.monotonic() < deadline, f"{url} not up within {timeout:.0f}s:\n{dep.logs()}"
        time.sleep(0.3)


def wait_fresh_book(dep: Deployment, symbol: str = "BTC", timeout: float = 60) -> None:
    """The ingest has the venue's book in the hot state (orders need it fresh)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(requests.RequestException, ValueError, KeyError):
            snap = requests.get(f"{dep.web[0]}/markets/{symbol}/snapshot", timeout=3).json()
            if not snap["staleness"]["book"]["stale"]:
                return
        time.sleep(0.5)
    raise AssertionError(f"no fresh {symbol} book within {timeout:.0f}s:\n{dep.logs()}")


@contextlib.contextmanager
def one_process(*, admin: str, extra: dict[str, str] | None = None) -> Iterator[Deployment]:
    """`make run`: manage.py serve with every component on SQLite and in-memory layers."""
    tmp = Path(tempfile.mkdtemp(prefix="hs-e2e-one-"))
    port, venue_port = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    env = base_env(tmp)
    env.update(
        FRONTEND_URL=base,
        ALLOWED_ORIGINS=base,
        HYPERSENTRY_VENUE_URL=f"http://127.0.0.1:{venue_port}",
        ADMIN_ADDRESSES=admin,
        **(extra or {}),
    )
    dep = Deployment(name="one-process", web=[base], venue=f"http://127.0.0.1:{venue_port}", env=env)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True, timeout=180)
    start(dep, "serve", [sys.executable, "manage.py", "serve", "--port", str(port)], tmp)
    try:
        wait_http(dep, base + "/healthz")
        wait_fresh_book(dep)
        yield dep
    finally:
        dep.stop()


@contextlib.contextmanager
def split(*, admin: str, webs: int = 2, celery: bool = False) -> Iterator[Deployment]:
    """The split topology on the suite's PostgreSQL + Redis: hlsim, ingest, user feeds and `webs` web processes
    (and Celery worker + beat) as separate processes, as the compose file runs them."""
    tmp = Path(tempfile.mkdtemp(prefix="hs-e2e-split-"))
    db = f"e2e_{uuid.uuid4().hex[:10]}"
    server = os.environ["DATABASE_URL"].rsplit("/", 1)[0]
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db}"')
    redis_db = 8 + int(uuid.uuid4().int % 6)
    redis = os.environ["REDIS_URL"].rsplit("/", 1)[0] + f"/{redis_db}"
    ports = [free_port() for _ in range(webs)]
    venue_port = free_port()
    env = base_env(tmp)
    env.update(
        DATABASE_URL=f"{server}/{db}",
        REDIS_URL=redis,
        HYPERSENTRY_VENUE_URL=f"http://127.0.0.1:{venue_port}",
        HYPERSENTRY_EMBED_SIMULATOR="false",
        AGGREGATOR_EMBEDDED="false",
        ALPHA_EMBEDDED="false",
        EXECUTION_EMBEDDED="false",
        FRONTEND_URL=f"http://127.0.0.1:{ports[0]}",
        ALLOWED_ORIGINS=",".join(f"http://127.0.0.1:{p}" for p in ports),
        ADMIN_ADDRESSES=admin,
        CELERY_BROKER_URL=redis,
    )
    requests_web = [f"http://127.0.0.1:{p}" for p in ports]
    dep = Deployment(name="split", web=requests_web, venue=f"http://127.0.0.1:{venue_port}", env=env)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True, timeout=180)
    py = sys.executable
    start(dep, "hlsim", [py, "manage.py", "hlsim", "--port", str(venue_port)], tmp)
    try:
        wait_http(dep, dep.venue + "/", timeout=60)
        start(dep, "ingest", [py, "manage.py", "ingest_markets"], tmp)
        start(dep, "userfeed", [py, "manage.py", "run_userfeed"], tmp)
        for i, port in enumerate(ports):
            start(dep, f"web{i}", [py, "manage.py", "serve", "--port", str(port), "--components="], tmp)
        if celery:
            celery_bin = str(Path(py).with_name("celery"))
            start(
                dep,
                "worker",
                [celery_bin, "-A", "hypersentry", "worker", "--pool=threads", "-c", "4", "-l", "warning"],
                tmp,
            )
            start(dep, "beat", [celery_bin, "-A", "hypersentry", "beat", "-l", "warning", "-s", str(tmp / "beat")], tmp)
        for base in requests_web:
            wait_http(dep, base + "/healthz")
        wait_fresh_book(dep)
        yield dep
    finally:
        dep.stop()
        with contextlib.suppress(psycopg.Error), psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


class Trader:
    """A wallet-holding user driving one web process over HTTP, like the browser does."""

    def __init__(self, base: str, account: LocalAccount | None = None) -> None:
        self.base = base
        self.account = account or Account.create()
        self.http = requests.Session()

    @property
    def address(self) -> str:
        return str(self.account.address)

    def _headers(self) -> dict[str, str]:
        return {"X-CSRFToken": self.http.cookies.get("csrftoken", ""), "Origin": self.base}

    def post(self, path: str, body: dict[str, Any], *, key: str | None = None, idempotent: bool = True) -> Any:
        headers = self._headers()
        if idempotent:
            headers["Idempotency-Key"] = key or str(uuid.uuid4())
        return self.http.post(self.base + path, json=body, headers=headers, timeout=60)

    def get(self, path: str) -> Any:
        return self.http.get(self.base + path, timeout=60)

    def sign_in(self) -> Trader:
        challenge = self.http.get(f"{self.base}/auth/nonce", params={"address": self.address}, timeout=30).json()
        sig = self.account.sign_message(encode_defunct(text=challenge["message"])).signature.hex()
        r = self.post(
            "/auth/verify",
            {"message": challenge["message"], "signature": "0x" + sig.removeprefix("0x")},
            idempotent=False,
        )
        assert r.status_code == 200, r.text
        return self

    def enable_trading(self) -> Trader:
        prepared = self.post("/auth/agent/prepare", {}, idempotent=False)
        assert prepared.status_code == 200, prepared.text
        signed = self.account.sign_message(encode_typed_data(full_message=prepared.json()["typed_data"]))
        r = self.post(
            "/auth/agent/approve", {"signature": "0x" + signed.signature.hex().removeprefix("0x")}, idempotent=False
        )
        assert r.status_code == 200, r.text
        return self

    def on(self, base: str) -> Trader:
        """The same session against another web process (a load balancer's next pick)."""
        other = Trader(base, self.account)
        other.http.cookies.update(self.http.cookies)
        return other
