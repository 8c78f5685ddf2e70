"""docker-compose.yml as a deployment that starts, without Docker.

Compose itself reads the file (deploy.split: validation, interpolation, env_file, profiles as `docker compose up`
does, with `.env.example` as the `.env` the README tells to copy). Every service built from this repository then
runs its compose `command` with its compose environment as a local process — service hostnames and container ports
mapped to this machine, a fresh database on the suite's PostgreSQL and a fresh Redis db — in compose's dependency
order, and must turn healthy by its own compose health check (web: /readyz through deploy/probe.py; the workers:
`manage.py healthcheck <component>`). Then a trader signs in over HTTP and gets orders filled, and every service
stops within its grace period. Only the images that are not our code (postgres, redis, the proxy) are left out.
"""

from __future__ import annotations

import json
import os
import random
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
import redis
import requests

from deploy import split
from deploy.servers import free_port
from deploy.split import LocalPlan, Service, Topology
from tests.e2e.live import Trader

pytestmark = pytest.mark.slow

ROOT = split.ROOT
ENV_FILE = ROOT / ".env.example"
START_TIMEOUT_SEC = 75.0
# What every split deployment must run, by the command that runs it.
REQUIRED_COMMANDS = {
    "migrate": ["python", "manage.py", "migrate"],
    "hlsim": ["python", "manage.py", "hlsim"],
    "ingest": ["python", "manage.py", "ingest_markets"],
    "alpha": ["python", "manage.py", "run_alpha"],
    "userfeed": ["python", "manage.py", "run_userfeed"],
    "celery worker": ["celery", "-A", "hypersentry", "worker"],
    "celery beat": ["celery", "-A", "hypersentry", "beat"],
}
HEALTHCHECKED_COMPONENTS = {"hlsim", "ingest", "alpha", "execution", "celery", "beat"}
HEALTHCHECK_CMD = ["python", "manage.py", "healthcheck"]


@pytest.fixture(scope="module")
def topology() -> Topology:
    return split.load(ENV_FILE, shell_env={})


def _runs(service: Service, prefix: list[str]) -> bool:
    return service.command[: len(prefix)] == prefix


def _service_running(topology: Topology, prefix: list[str]) -> Service:
    found = [s for s in topology.app.values() if _runs(s, prefix)]
    assert len(found) == 1, f"one service must run {shlex.join(prefix)}: {[s.name for s in found]}"
    return found[0]


def _web(topology: Topology) -> Service:
    found = [s for s in topology.app.values() if s.command[:1] == ["sh"] and "uvicorn" in s.command[-1]]
    assert len(found) == 1, "one service must run the web server (uvicorn)"
    return found[0]


# --- the file ----------------------------------------------------------------------------------------------------


def test_every_component_is_a_service_with_a_health_check_and_a_restart_policy(topology: Topology) -> None:
    migrate = _service_running(topology, REQUIRED_COMMANDS["migrate"])
    assert migrate.one_shot, "migrate runs once (restart: no)"
    long_running = [_service_running(topology, cmd) for name, cmd in REQUIRED_COMMANDS.items() if name != "migrate"]
    web = _web(topology)
    assert web.replicas >= 2, "two web replicas by default"
    for service in [*long_running, web]:
        assert service.restart in ("always", "unless-stopped"), f"{service.name} restarts when it dies"
        assert service.healthcheck, f"{service.name} has a health check"
    assert web.healthcheck == ["python", "deploy/probe.py", f"http://127.0.0.1:{web.ports[0]}/readyz"]
    checked = {s.healthcheck[3] for s in long_running if s.healthcheck and s.healthcheck[:3] == HEALTHCHECK_CMD}
    assert checked == HEALTHCHECKED_COMPONENTS, "the workers' health checks are `manage.py healthcheck <component>`"
    # A container is healthy when ITS process beats, not when any replica on another host does.
    assert all(
        s.healthcheck[4:] == ["--local"] for s in long_running if s.healthcheck and s.healthcheck[:3] == HEALTHCHECK_CMD
    )
    assert set(topology.app) == {migrate.name, web.name, *(s.name for s in long_running)}, "no unexplained service"


def test_services_find_each_other_by_hostname_and_run_every_component_on_its_own(topology: Topology) -> None:
    others = {s.image.split(":")[0]: s for s in topology.services.values() if not s.ours}
    assert {"postgres", "redis", "nginx"} <= set(others), sorted(others)
    for service in topology.app.values():
        env = service.environment
        assert "@postgres:5432/" in env["DATABASE_URL"], service.name
        assert env["REDIS_URL"].startswith("redis://redis:6379/"), service.name
        assert env["HYPERSENTRY_VENUE_URL"] == "http://hlsim:3001", service.name
        switches = ("HYPERSENTRY_EMBED_SIMULATOR", "AGGREGATOR_EMBEDDED", "ALPHA_EMBEDDED", "EXECUTION_EMBEDDED")
        assert {env[k] for k in switches} == {"false"}, service.name
        assert env["BEHIND_TLS_PROXY"] == "true", f"{service.name}: web is reached through the proxy only"
        # Set at all (even empty), it switches prometheus-client to files in that directory: a tmpfs of its own.
        assert env["PROMETHEUS_MULTIPROC_DIR"] in service.tmpfs, service.name
        for dep in ("postgres", "redis"):
            if dep in service.depends_on:
                assert service.depends_on[dep] == "service_healthy"
    for name in ("postgres", "redis"):
        assert topology.services[name].healthcheck, f"{name} has a health check"
    assert topology.services["postgres"].volume_targets == ["/var/lib/postgresql/data"], "the data outlives it"


def test_the_proxy_balances_the_web_replicas_with_websockets_and_forwarded_headers(topology: Topology) -> None:
    proxy = next(s for s in topology.services.values() if s.image.startswith("nginx"))
    assert "/etc/nginx/nginx.conf" in proxy.volume_targets
    assert proxy.published == [8000] and proxy.depends_on == {_web(topology).name: "service_healthy"}
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    assert re.search(r"server web:8000 resolve max_fails=\d+ fail_timeout=\d+s;", conf)
    ws = re.search(r"location /ws \{(.*?)\}", conf, re.S)
    assert ws and "proxy_pass http://web;" in ws[1]
    assert int(re.search(r"proxy_read_timeout (\d+)s;", ws[1])[1]) > 60  # type: ignore[index]
    assert int(re.search(r"^\s+proxy_read_timeout (\d+)s;", conf, re.M)[1]) > 60  # type: ignore[index]
    for header in (
        "proxy_set_header Upgrade $http_upgrade;",
        "proxy_set_header Connection $connection_upgrade;",
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
        "proxy_set_header Host $http_host;",
    ):
        assert header in conf


def test_beat_keeps_its_schedule_on_a_volume(topology: Topology) -> None:
    beat = _service_running(topology, REQUIRED_COMMANDS["celery beat"])
    schedule = beat.command[beat.command.index("--schedule") + 1]
    path = schedule if schedule.startswith("/") else f"{split.APP_DIR}/{schedule}"
    assert any(path.startswith(target + "/") for target in beat.volume_targets), (schedule, beat.volume_targets)
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert f"WORKDIR {split.APP_DIR}" in dockerfile
    assert "mkdir -p /app/var/beat" in dockerfile, "the volume takes the image directory's owner (not root)"


def test_the_image_runs_the_web_server_as_compose_does(topology: Topology) -> None:
    cmd = re.search(r"^CMD (\[.*\])$", (ROOT / "Dockerfile").read_text(), re.M)
    assert cmd and json.loads(cmd[1]) == _web(topology).command


def test_the_procfile_runs_what_the_compose_file_runs(topology: Topology) -> None:
    plan = LocalPlan(database_url="", redis_url="", ports=split.local_ports(topology, split.RUN_SPLIT_PORTS))
    expected = split.procfile_entries(topology, plan)
    actual = split.parse_procfile(split.PROCFILE.read_text())
    assert actual == expected, "Procfile should read:\n" + split.render_procfile(expected)
    assert set(actual) == {"hlsim", "web1", "web2", "ingest", "alpha", "userfeed", "celery-worker", "celery-beat"}


# --- the deployment ----------------------------------------------------------------------------------------------


@dataclass
class Unit:
    """One process of a service (one replica)."""

    service: Service
    replica: int
    argv: list[str]
    health: list[str] | None
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    healthy: bool = False
    last_health: str = ""

    @property
    def name(self) -> str:
        return split.process_names(self.service)[self.replica]


@dataclass
class Deployment:
    topology: Topology
    plan: LocalPlan
    units: list[Unit] = field(default_factory=list)
    web: list[str] = field(default_factory=list)

    def logs(self) -> str:
        parts = []
        for unit in self.units:
            text = unit.log.read_text(errors="replace")[-3000:] if unit.log.exists() else "(not started)"
            parts.append(f"--- {unit.name} (health: {unit.last_health.strip()[-300:]})\n{text}")
        return "\n".join(parts)

    def of(self, service: str) -> list[Unit]:
        return [u for u in self.units if u.service.name == service]


def _app_dir(tmp: Path) -> Path:
    """The image's /app: the repository's files, with a var/ of its own (the volumes) — so nothing the
    deployment writes lands in the checkout."""
    app = tmp / "app"
    app.mkdir()
    for entry in ROOT.iterdir():
        if entry.name not in ("var", ".git", ".venv", ".env", "test-artifacts"):
            (app / entry.name).symlink_to(entry)
    return app


def _base_env() -> dict[str, str]:
    """What a container starts with before compose's environment: the image's ENV, nothing from this test run."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    home = os.environ.get("HOME", "/tmp")
    return {"PATH": path, "HOME": home, "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"}


def _start(dep: Deployment, unit: Unit) -> None:
    with open(unit.log, "wb") as out:
        unit.proc = subprocess.Popen(
            unit.argv,
            cwd=dep.plan.workdir,
            env=unit.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: celery's pool children stop with it
        )


def _check_health(dep: Deployment, unit: Unit) -> bool:
    assert unit.health is not None
    result = subprocess.run(unit.health, cwd=dep.plan.workdir, env=unit.env, capture_output=True, text=True, timeout=30)
    unit.last_health = result.stdout + result.stderr
    return result.returncode == 0


def _condition_met(dep: Deployment, name: str, condition: str) -> bool:
    units = dep.of(name)
    if not units:  # not ours (postgres, redis: the suite's servers) or a profile that is off (required: false)
        return True
    if condition == "service_completed_successfully":
        return all(u.proc is not None and u.proc.poll() == 0 for u in units)
    if condition == "service_healthy":
        return all(u.healthy for u in units)
    return all(u.proc is not None for u in units)


def _up(dep: Deployment) -> None:
    """Start every unit once its dependencies meet their conditions, as compose does; wait until each long-running
    unit passes its health check. A process that exits (a one-shot with an error) fails at once with the logs."""
    deadline = time.monotonic() + START_TIMEOUT_SEC
    while True:
        for unit in dep.units:
            if unit.proc is None and all(_condition_met(dep, d, c) for d, c in unit.service.depends_on.items()):
                _start(dep, unit)
        for unit in dep.units:
            if unit.proc is None:
                continue
            code = unit.proc.poll()
            if unit.service.one_shot:
                assert code in (None, 0), f"{unit.name} failed with exit code {code}:\n{dep.logs()}"
                continue
            assert code is None, f"{unit.name} exited with code {code}:\n{dep.logs()}"
            if not unit.healthy and unit.health is not None:
                unit.healthy = _check_health(dep, unit)
        waiting = [u.name for u in dep.units if not u.service.one_shot and not u.healthy]
        if not waiting:
            return
        assert time.monotonic() < deadline, f"not healthy within {START_TIMEOUT_SEC:.0f}s: {waiting}\n{dep.logs()}"
        time.sleep(0.5)


def _stop(dep: Deployment) -> dict[str, int | None]:
    """SIGTERM to every process group, as `docker compose stop` sends it; the exit code of each, or None when it
    outlived its grace period (it is then killed)."""
    running = [u for u in dep.units if u.proc is not None and u.proc.poll() is None]
    for unit in running:
        os.killpg(unit.proc.pid, signal.SIGTERM)  # type: ignore[union-attr]
    codes: dict[str, int | None] = {}
    deadline = time.monotonic() + 10  # compose's default stop_grace_period
    for unit in running:
        assert unit.proc is not None
        try:
            codes[unit.name] = unit.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            codes[unit.name] = None
            os.killpg(unit.proc.pid, signal.SIGKILL)
            unit.proc.wait()
    return codes


@pytest.fixture(scope="module")
def deployment(topology: Topology) -> Iterator[Deployment]:
    tmp = Path(tempfile.mkdtemp(prefix="hs-compose-"))
    server = os.environ["DATABASE_URL"].rsplit("/", 1)[0]
    db = f"compose_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db}"')
    # Redis dbs 8-13 are the e2e deployments'; 14-15 are this test's.
    redis_url = os.environ["REDIS_URL"].rsplit("/", 1)[0] + f"/{random.choice([14, 15])}"
    redis.Redis.from_url(redis_url).flushdb()
    ports = {name: [free_port() for _ in range(s.replicas)] for name, s in topology.long_running.items() if s.ports}
    plan = LocalPlan(
        database_url=f"{server}/{db}", redis_url=redis_url, ports=ports, workdir=_app_dir(tmp), scratch=tmp / "tmpfs"
    )
    dep = Deployment(topology=topology, plan=plan, web=[f"http://127.0.0.1:{p}" for p in ports["web"]])
    for service in topology.app.values():
        env = split.local_env(service, topology, plan, _base_env())
        split.prepare_volumes(service, plan)
        for replica, name in enumerate(split.process_names(service)):
            argv = split.local_argv(service.command, service, plan, replica)
            health = split.local_argv(service.healthcheck, service, plan, replica) if service.healthcheck else None
            dep.units.append(Unit(service, replica, argv, health, env, tmp / f"{name}.log"))
    try:
        yield dep
    finally:
        _stop(dep)
        redis.Redis.from_url(redis_url).flushdb()
        with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def test_every_service_turns_healthy_a_trader_gets_filled_and_all_stop_cleanly(deployment: Deployment) -> None:
    started = time.monotonic()
    _up(deployment)
    print(f"all {len(deployment.units)} processes healthy after {time.monotonic() - started:.1f}s")

    web1, web2 = deployment.web[0], deployment.web[-1]
    trader = Trader(web1).sign_in().enable_trading()
    r = trader.post("/trading/order", {"symbol": "BTC", "side": "buy", "type": "market", "size_usd": "200"})
    assert r.status_code == 201 and r.json()["order"]["state"] == "filled", r.text

    # Orders resting at the venue that the market fills later reach `filled` only through the user feed
    # (run_userfeed) or the periodic reconcile (beat + worker). A buy at the bid and a sell at the ask on two
    # symbols: the first tick either way fills one. Another replica serves the same session.
    other = trader.on(web2)
    resting: dict[object, str] = {}
    for symbol in ("ETH", "BTC"):
        book = other.get(f"/trading/orderbook?coin={symbol}&depth=1").json()["book"]
        for side, level in (("buy", book["bids"][0][0]), ("sell", book["asks"][0][0])):
            body = {"symbol": symbol, "side": side, "type": "limit", "price": level, "size_usd": "60", "tif": "Alo"}
            r = other.post("/trading/order", body)
            assert r.status_code in (201, 422), r.text
            if r.status_code == 201 and r.json()["order"]["state"] == "resting":
                resting[r.json()["order"]["id"]] = f"{side} {symbol} at {level}"
    assert resting, "no order rested (each crossed a moving book): run again"
    placed, filled = time.monotonic(), []
    while not filled and time.monotonic() < placed + 45:
        time.sleep(1)
        states = {o["id"]: o["state"] for o in other.get("/trading/orders").json()["orders"]}
        filled = [what for order_id, what in resting.items() if states.get(order_id) == "filled"]
    assert filled, f"none of {sorted(resting.values())} filled within 45 s:\n{deployment.logs()}"
    print(f"resting order ({filled[0]}) filled within {time.monotonic() - placed:.1f}s")

    beat_dir = deployment.plan.workdir / "var" / "beat"
    assert any(beat_dir.glob("celerybeat-schedule*")), "beat keeps its schedule on its volume"
    # Prometheus files go to the tmpfs, never into the working directory (/app: not writable in the image).
    assert any(deployment.plan.tmpfs_dir("/tmp/prometheus").glob("counter_*.db"))
    assert not list(deployment.plan.workdir.glob("*.db")), "metrics files written into the working directory"

    for unit in deployment.units:
        if not unit.service.one_shot:
            assert unit.proc is not None and unit.proc.poll() is None, f"{unit.name} died:\n{deployment.logs()}"
    assert requests.get(web2 + "/readyz", timeout=5).status_code == 200

    codes = _stop(deployment)
    assert None not in codes.values(), f"outlived the grace period: {codes}\n{deployment.logs()}"
    print(f"whole run {time.monotonic() - started:.1f}s; exit codes on SIGTERM: {codes}")
