"""deploy.split's mapping of compose services onto one machine (pure: no compose binary, no processes)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from deploy.split import (
    LocalPlan,
    Service,
    SplitError,
    Topology,
    local_argv,
    local_env,
    parse_procfile,
    procfile_entries,
    render_procfile,
)


def _service(name: str, **kw: object) -> Service:
    base = Service(
        name=name,
        ours=True,
        image="hypersentry:local",
        command=[],
        environment={},
        healthcheck=None,
        replicas=1,
        ports=[],
        published=[],
        one_shot=False,
        restart="unless-stopped",
        depends_on={},
        volume_targets=[],
        tmpfs=[],
    )
    return replace(base, **kw)  # type: ignore[arg-type]


WEB = _service(
    "web",
    command=["sh", "-c", 'exec uvicorn app --host 0.0.0.0 --port 8000 --ws-max-size "${X:-1}"'],
    healthcheck=["python", "deploy/probe.py", "http://127.0.0.1:8000/readyz"],
    replicas=2,
    ports=[8000],
)
HLSIM = _service("hlsim", command=["python", "manage.py", "hlsim", "--host", "0.0.0.0", "--port", "3001"], ports=[3001])
INGEST = _service(
    "ingest",
    command=["python", "manage.py", "ingest_markets"],
    environment={
        "DATABASE_URL": "postgres://hs:secret@postgres:5432/hypersentry",
        "REDIS_URL": "redis://redis:6379/0",
        "CELERY_BROKER_URL": "redis://redis:6379/3",
        "HYPERSENTRY_VENUE_URL": "http://hlsim:3001",
        "FRONTEND_URL": "http://127.0.0.1:8080",
        "ALLOWED_ORIGINS": "https://trade.example.com",
        "BEHIND_TLS_PROXY": "true",
        "SIWE_CHAIN_IDS": "1,42161",
        "PROMETHEUS_MULTIPROC_DIR": "/tmp/prometheus",
    },
    tmpfs=["/tmp/prometheus"],
)
MIGRATE = _service("migrate", command=["python", "manage.py", "migrate"], one_shot=True, restart="no")
TOPOLOGY = Topology(
    services={
        "postgres": _service("postgres", ours=False, image="postgres:16"),
        "redis": _service("redis", ours=False, image="redis:7"),
        "proxy": _service("proxy", ours=False, image="nginx:1.28-alpine", published=[8080]),
        "migrate": MIGRATE,
        "hlsim": HLSIM,
        "web": WEB,
        "ingest": INGEST,
    },
    proxy_ports=[8080],
)
PLAN = LocalPlan(
    database_url="postgresql://postgres@127.0.0.1:5999/fresh",
    redis_url="redis://127.0.0.1:6999/14",
    ports={"web": [9001, 9002], "hlsim": [9100]},
    scratch=Path("/scratch/run1"),
)


def test_commands_bind_locally_on_each_replicas_port() -> None:
    assert local_argv(HLSIM.command, HLSIM, PLAN)[3:] == ["--host", "127.0.0.1", "--port", "9100"]
    second = local_argv(WEB.command, WEB, PLAN, replica=1)
    assert second[-1] == 'exec uvicorn app --host 127.0.0.1 --port 9002 --ws-max-size "${X:-1}"'
    assert local_argv(["serve", "--port=8000"], WEB, PLAN) == ["serve", "--port=9001"]


def test_health_checks_ask_the_replica_they_belong_to() -> None:
    assert WEB.healthcheck
    assert local_argv(WEB.healthcheck, WEB, PLAN, replica=1)[-1] == "http://127.0.0.1:9002/readyz"


def test_ports_of_other_services_and_other_numbers_stay() -> None:
    argv = ["tool", "--port", "5432", "--retries", "8000", "http://127.0.0.1:3001/x"]
    assert local_argv(argv, WEB, PLAN) == argv


def test_service_hostnames_become_the_local_servers() -> None:
    env = local_env(INGEST, TOPOLOGY, PLAN, {"PATH": "/bin"})
    assert env["PATH"] == "/bin"
    assert env["DATABASE_URL"] == PLAN.database_url
    assert env["REDIS_URL"] == env["CELERY_BROKER_URL"] == PLAN.redis_url
    assert env["HYPERSENTRY_VENUE_URL"] == "http://127.0.0.1:9100"
    assert env["SIWE_CHAIN_IDS"] == "1,42161"


def test_a_tmpfs_path_becomes_a_directory_of_this_run() -> None:
    env = local_env(INGEST, TOPOLOGY, PLAN, {})
    assert env["PROMETHEUS_MULTIPROC_DIR"] == "/scratch/run1/tmp-prometheus"


def test_without_a_proxy_the_first_replica_is_the_public_origin_and_forwarded_headers_are_not_trusted() -> None:
    env = local_env(INGEST, TOPOLOGY, PLAN, {})
    assert env["FRONTEND_URL"] == "http://127.0.0.1:9001"
    assert env["ALLOWED_ORIGINS"].split(",") == [
        "https://trade.example.com",
        "http://127.0.0.1:9001",
        "http://localhost:9001",
        "http://127.0.0.1:9002",
        "http://localhost:9002",
    ]
    assert env["BEHIND_TLS_PROXY"] == "false"


def test_a_url_to_a_service_with_no_local_equivalent_is_refused() -> None:
    odd = replace(INGEST, environment={"X": "http://proxy:80/"})
    with pytest.raises(SplitError, match="proxy"):
        local_env(odd, TOPOLOGY, PLAN, {})


def test_the_procfile_has_one_line_per_replica_and_no_one_shot() -> None:
    entries = procfile_entries(TOPOLOGY, PLAN)
    assert list(entries) == ["hlsim", "web1", "web2", "ingest"]
    assert parse_procfile("# comment\n\n" + render_procfile(entries)) == entries


def test_a_malformed_procfile_line_is_refused() -> None:
    with pytest.raises(SplitError, match="not a Procfile line"):
        parse_procfile("web 1: python x\n")
