"""`manage.py healthcheck <component> [--json]`: the interface the compose health checks use. Exit 0 with a fresh
process, 1 with a line naming the component and the age otherwise; unknown names are refused listing the valid
ones. The command run as its own process against real processes: test_heartbeats_topologies.py."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from kernel import components
from tests.factories import unreachable_redis_caches

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_NAMES = ("ingest", "alpha", "execution", "celery", "beat", "hlsim", "web")


@pytest.fixture(autouse=True)
def _fresh_process_state(monkeypatch: pytest.MonkeyPatch) -> None:
    """This test process's heartbeat memory (start times, throttles) starts empty, as a new process's does."""
    monkeypatch.setattr(components, "_state", components._ProcessState())


def _healthcheck(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    try:
        call_command("healthcheck", *args, stdout=out)
    except SystemExit as exit_:
        return int(exit_.code or 0), out.getvalue()
    return 0, out.getvalue()


_REAL_TIME = time.time


def _later(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """The clock `seconds` ahead of the real one from now on (beats already written stay where they were)."""
    monkeypatch.setattr(components.time, "time", lambda: _REAL_TIME() + seconds)


@pytest.mark.parametrize("name", COMPOSE_NAMES)
def test_every_name_the_compose_file_uses_is_a_component(name: str) -> None:
    components.heartbeat(name, min_interval=0)
    code, out = _healthcheck(name)
    assert code == 0, out
    assert out.startswith(f"{name}: running — 1 of 1 processes fresh, newest beat ")


def test_it_exits_1_naming_the_component_when_no_process_beat() -> None:
    code, out = _healthcheck("ingest")
    assert code == 1
    assert out.strip() == "ingest: not running — no heartbeat on record (bound 20 s)"


def test_it_exits_1_with_the_age_when_the_newest_beat_is_past_the_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    components.heartbeat("beat", min_interval=0)
    bound = components.COMPONENTS["beat"].fresh_within_sec
    _later(monkeypatch, bound + 5)
    code, out = _healthcheck("beat")
    assert code == 1
    assert out.startswith("beat: stale — newest beat 35.") and out.rstrip().endswith(
        "(bound 30 s), 1 processes on record"
    )


def test_one_fresh_process_is_enough(monkeypatch: pytest.MonkeyPatch) -> None:
    stale_pid = os.fork()
    if stale_pid == 0:  # a replica that beat once and died
        try:
            components.heartbeat("web", min_interval=0)
        finally:
            os._exit(0)
    os.waitpid(stale_pid, 0)
    bound = components.COMPONENTS["web"].fresh_within_sec
    _later(monkeypatch, bound / 2)
    components.heartbeat("web", min_interval=0)  # this replica beats now (on the moved clock)
    _later(monkeypatch, bound + 1)
    code, out = _healthcheck("web")
    assert code == 0 and "1 of 2 processes fresh" in out, out


def test_local_counts_only_the_processes_on_this_host(monkeypatch: pytest.MonkeyPatch) -> None:
    components.heartbeat("celery", min_interval=0)
    assert _healthcheck("celery", "--local")[0] == 0
    # The same beat seen from another container: a replica elsewhere is fresh, none here.
    monkeypatch.setattr(socket, "gethostname", lambda: "another-container")
    code, out = _healthcheck("celery", "--local")
    assert code == 1 and out.startswith("celery: not running"), out
    assert _healthcheck("celery")[0] == 0


def test_json_carries_the_verdict_and_every_process() -> None:
    components.heartbeat("execution", detail="3 users streamed", min_interval=0)
    components.error_seen("execution", "venue timed out")
    code, out = _healthcheck("execution", "--json")
    body = json.loads(out)
    assert code == 0 and body["component"] == "execution" and body["healthy"] is True
    assert body["message"].startswith("execution: running")
    [proc] = body["status"]["processes"]
    assert proc["pid"] == os.getpid() and proc["detail"] == "3 users streamed" and proc["error"] == "venue timed out"
    code, out = _healthcheck("alpha", "--json")
    assert code == 1 and json.loads(out)["healthy"] is False


def test_an_unknown_name_is_refused_listing_the_valid_ones() -> None:
    with pytest.raises(CommandError) as refused:
        call_command("healthcheck", "userfeed")
    message = str(refused.value)
    assert message.startswith("unknown component 'userfeed'; choose from ")
    assert all(name in message for name in components.COMPONENTS)


def test_an_unreachable_cache_is_unhealthy_with_the_reason(settings: Any) -> None:
    settings.CACHES = unreachable_redis_caches()
    code, out = _healthcheck("celery")
    assert code == 1 and out.startswith("celery: unknown — heartbeats unreadable: ConnectionError"), out


def test_without_a_shared_cache_it_says_it_cannot_see_other_processes(settings: Any) -> None:
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    code, out = _healthcheck("web")
    assert code == 1 and "no shared cache (REDIS_URL unset)" in out


@pytest.mark.slow
def test_the_command_exit_code_as_a_container_sees_it() -> None:
    env = {**os.environ, "LOG_LEVEL": "warning"}
    components.heartbeat("celery", min_interval=0)
    ok = subprocess.run([sys.executable, "manage.py", "healthcheck", "celery"], cwd=ROOT, env=env, capture_output=True)
    down = subprocess.run([sys.executable, "manage.py", "healthcheck", "beat"], cwd=ROOT, env=env, capture_output=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert down.returncode == 1 and down.stdout.decode().startswith("beat: not running"), down.stdout + down.stderr
