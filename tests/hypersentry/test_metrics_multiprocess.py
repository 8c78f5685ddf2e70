"""Metrics across processes: the kill switch and breakers are read from the database at scrape time (an exited
`killswitch on` used to keep hs_execution_kill_switch_engaged=1 in multiprocess mode), every gauge leaves the merge
with its process, and counters stay."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import prometheus_client
import pytest
import requests
from celery.signals import worker_process_shutdown
from django.db import OperationalError, connection
from prometheus_client import REGISTRY
from prometheus_client.multiprocess import MultiProcessCollector

from accounts.models import Role
from deploy.servers import free_port
from execution import metrics as execution_metrics
from execution.models import BreakerKind
from execution.services.breakers import breaker_reset, breaker_trip
from execution.services.killswitch import killswitch_disengage, killswitch_engage
from kernel import metrics
from tests.factories import make_user
from tests.processes import start, wait_http

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "scraper-token-for-the-multiprocess-test"
KILL_SWITCH = "hs_execution_kill_switch_engaged"
BREAKER = "hs_execution_breaker_tripped"


def _samples(text: str, name: str) -> list[tuple[str, float]]:
    """(labels, value) of every sample of `name` in Prometheus text format."""
    pattern = re.compile(rf"^{name}(\{{[^}}]*\}})? (\S+)$", re.MULTILINE)
    return [(labels or "", float(value)) for labels, value in pattern.findall(text)]


def _rendered() -> str:
    return metrics.render_latest().decode()


# --- one process: state read at scrape time ------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_kill_switch_metric_follows_the_database_not_the_process_that_changed_it() -> None:
    assert _samples(_rendered(), KILL_SWITCH) == [("", 0.0)]  # no controls row yet: never engaged
    killswitch_engage(actor=None, actor_label="test", reason="drill", flatten=False)
    assert _samples(_rendered(), KILL_SWITCH) == [("", 1.0)]
    killswitch_disengage(actor=None, actor_label="test", reason="drill over")
    assert _samples(_rendered(), KILL_SWITCH) == [("", 0.0)]


@pytest.mark.django_db
def test_the_breaker_metric_is_1_per_kind_while_any_breaker_of_that_kind_is_tripped() -> None:
    admin = make_user(role=Role.ADMIN)
    trader = make_user(role=Role.TRADER)
    breaker_trip(kind=BreakerKind.ERROR_RATE, reason="venue 5xx")
    breaker_trip(kind=BreakerKind.DAILY_LOSS, user=trader, reason="lost the day")
    tripped = dict(_samples(_rendered(), BREAKER))
    assert tripped == {f'{{kind="{k}"}}': 1.0 if k in ("error_rate", "daily_loss") else 0.0 for k in BreakerKind.values}
    breaker_reset(actor=admin, kind=BreakerKind.ERROR_RATE, reason="venue is back")
    assert dict(_samples(_rendered(), BREAKER))['{kind="error_rate"}'] == 0.0


@pytest.mark.django_db
def test_without_the_database_those_samples_are_left_out_and_the_rest_is_scraped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def gone() -> bool:
        raise OperationalError("database is down")

    monkeypatch.setattr(execution_metrics, "kill_switch_engaged", gone)
    text = _rendered()
    assert f"# TYPE {KILL_SWITCH} gauge" in text and _samples(text, KILL_SWITCH) == []
    assert _samples(text, BREAKER) == []
    assert "# TYPE hs_component_errors_total counter" in text


def test_reading_the_default_registry_never_queries_the_database() -> None:
    # No database here: any exporter or test reading REGISTRY would fail if the state collectors were in it.
    assert REGISTRY.get_sample_value(KILL_SWITCH) is None
    list(REGISTRY.collect())


def test_every_gauge_is_declared_in_a_live_multiprocess_mode() -> None:
    metrics._discover_metrics_modules()  # what the renderer does first: import every app's metrics module
    gauges = {
        c._name: c._multiprocess_mode
        for c in REGISTRY._collector_to_names
        if isinstance(c, prometheus_client.Gauge) and c._name.startswith("hs_")
    }
    assert gauges, "no gauges found"
    assert {name: mode for name, mode in gauges.items() if not mode.startswith("live")} == {}
    assert KILL_SWITCH not in gauges and BREAKER not in gauges  # shared state is not a per-process gauge


# --- many processes: PROMETHEUS_MULTIPROC_DIR ----------------------------------------------------------------------

_PROBE = """
import os, sys
import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hypersentry.settings")
django.setup()
from kernel.metrics import COMPONENT_LOOPS
from markets.metrics import SUBSCRIBED

SUBSCRIBED.set(7)
COMPONENT_LOOPS.labels("probe").inc()
print(os.getpid(), flush=True)
if sys.argv[1] == "killed":
    os._exit(0)  # no exit hooks, as after SIGKILL or a pool child's exit
"""


def _probe(mp_dir: Path, how: str) -> int:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(mp_dir), "LOG_LEVEL": "warning"}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, how], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return int(done.stdout.split()[-1])


def _merged(mp_dir: Path) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in MultiProcessCollector(None, path=str(mp_dir)).collect():
        for sample in family.samples:
            out.setdefault(sample.name, []).append((sample.labels, sample.value))
    return out


def _subscribed_pids(mp_dir: Path) -> set[str]:
    return {labels["pid"] for labels, _ in _merged(mp_dir).get("hs_ingest_subscribed_symbols", [])}


@pytest.mark.slow
def test_a_dead_processs_gauges_leave_the_merge_and_its_counters_stay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clean = _probe(tmp_path, "clean")
    assert str(clean) not in _subscribed_pids(tmp_path)  # marked itself dead at exit
    killed, pool_child = _probe(tmp_path, "killed"), _probe(tmp_path, "killed")
    assert {str(killed), str(pool_child)} <= _subscribed_pids(tmp_path)  # nobody marked them

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    metrics.mark_process_dead(killed)
    worker_process_shutdown.send(sender="celery@test", pid=pool_child, exitcode=0)
    assert _subscribed_pids(tmp_path) == set()
    loops = _merged(tmp_path)["hs_component_loops_total"]
    assert [value for labels, value in loops if labels["component"] == "probe"] == [3.0]  # all three runs counted


@pytest.mark.slow
def test_an_empty_multiprocess_dir_means_one_process_mode_and_writes_no_files(tmp_path: Path) -> None:
    # `.env.example` ships PROMETHEUS_MULTIPROC_DIR= (empty): prometheus_client alone would then write every
    # process's files into the working directory.
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": "", "PYTHONPATH": str(ROOT), "LOG_LEVEL": "warning"}
    script = _PROBE.replace("SUBSCRIBED.set(7)", "SUBSCRIBED.set(7)\nfrom kernel.metrics import render_latest")
    script += "\nprint(b'hs_ingest_subscribed_symbols 7.0' in render_latest())\n"
    done = subprocess.run(
        [sys.executable, "-c", script, "clean"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-1] == "True"
    assert list(tmp_path.iterdir()) == []


def _test_database_url() -> str:
    db = connection.settings_dict
    auth = quote(db["USER"] or "", safe="") + (f":{quote(db['PASSWORD'], safe='')}" if db["PASSWORD"] else "")
    return f"postgresql://{auth}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


@dataclass
class Web:
    base: str
    env: dict[str, str]
    proc: subprocess.Popen[str]
    mp_dir: Path


@pytest.fixture
def multiprocess_web(tmp_path: Path) -> Iterator[Web]:
    """A web process in multiprocess mode on the test database, under plain uvicorn as the compose file runs it."""
    mp_dir = tmp_path / "prom"
    mp_dir.mkdir()
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": _test_database_url(),
        "PROMETHEUS_MULTIPROC_DIR": str(mp_dir),
        "METRICS_BEARER_TOKEN": TOKEN,
        "LOG_LEVEL": "warning",
    }
    log = open(tmp_path / "web.log", "wb")  # noqa: SIM115 - closed with the process
    uvicorn = ["-m", "uvicorn", "hypersentry.asgi:application", "--port", str(port), "--log-level", "warning"]
    web = start([sys.executable, *uvicorn], env=env, out=log)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(base + "/healthz", timeout=60, procs=[web], log=tmp_path / "web.log")
        yield Web(base=base, env=env, proc=web, mp_dir=mp_dir)
    finally:
        if web.poll() is None:
            web.send_signal(signal.SIGTERM)
            web.wait(timeout=30)
        log.close()


def _scrape(base: str) -> str:
    response = requests.get(base + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert response.status_code == 200, response.text
    return response.text


def _killswitch(env: dict[str, str], state: str) -> None:
    done = subprocess.run(
        [sys.executable, "manage.py", "killswitch", state, "--reason", "multiprocess drill"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_metrics_show_the_kill_switch_as_the_database_has_it_after_commands_in_other_processes(
    multiprocess_web: Web,
) -> None:
    web = multiprocess_web
    assert _samples(_scrape(web.base), KILL_SWITCH) == [("", 0.0)]
    _killswitch(web.env, "on")
    assert _samples(_scrape(web.base), KILL_SWITCH) == [("", 1.0)]
    _killswitch(web.env, "off")
    # Exactly one sample, from the database: no per-process value left behind by the exited commands.
    assert _samples(_scrape(web.base), KILL_SWITCH) == [("", 0.0)]

    # uvicorn ends by re-raising SIGTERM (no exit hooks): its lifespan shutdown marks its gauges dead.
    live_files = f"gauge_live*_{web.proc.pid}.db"
    assert list(web.mp_dir.glob(live_files))
    web.proc.send_signal(signal.SIGTERM)
    web.proc.wait(timeout=30)
    assert list(web.mp_dir.glob(live_files)) == []
