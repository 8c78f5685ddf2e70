"""`python manage.py healthcheck <component> [--json]`: is a process of that component alive?

Exit 0 when at least one process of the component has beaten within the component's bound (kernel.components);
exit 1 otherwise, with one line naming the component and the age of its newest beat. The compose file's health
checks run it in each container (`healthcheck ingest|alpha|execution|celery|beat|hlsim|web`); `--local` counts only
the processes on this host (a container's hostname), so a hung replica is not reported healthy because another
replica beats. It reads the shared cache only: no database, no system checks, so it stays cheap when run every few
seconds.
"""

from __future__ import annotations

import json
import socket
import sys
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from redis.exceptions import RedisError

from kernel import components


def health_line(row: components.ComponentRow) -> str:
    """One line for an operator (and `docker inspect`): the verdict, the newest beat's age and the bound."""
    name, bound = row["name"], f"bound {row['fresh_within_sec']:g} s"
    processes = row["processes"]
    if row["state"] == components.RUNNING:
        fresh = sum(1 for p in processes if p["running"])
        return (
            f"{name}: running — {fresh} of {len(processes)} processes fresh, newest beat {row['age_s']} s ago ({bound})"
        )
    if row["state"] == components.STALE:
        return f"{name}: stale — newest beat {row['age_s']} s ago ({bound}), {len(processes)} processes on record"
    return f"{name}: not running — no heartbeat on record ({bound})"


_NO_SHARED_CACHE = (
    "no shared cache (REDIS_URL unset): heartbeats stay in each process's memory; "
    "use GET /healthz in the one-process topology"
)


def _shared_cache() -> bool:
    """Heartbeats of other processes are visible only in a shared cache (Redis), never in local memory."""
    return not settings.CACHES["default"]["BACKEND"].endswith("LocMemCache")


class Command(BaseCommand):
    help = "Exit 0 when a process of the component has a fresh heartbeat, 1 otherwise (for container health checks)."
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("component", help="one of: " + ", ".join(components.COMPONENTS))
        parser.add_argument("--json", action="store_true", help="print the component and its processes as JSON")
        parser.add_argument(
            "--local",
            action="store_true",
            help="only processes on this host: a container checks itself, not a healthy replica elsewhere",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["component"]
        if name not in components.COMPONENTS:
            raise CommandError(f"unknown component {name!r}; choose from {', '.join(components.COMPONENTS)}")
        healthy, line, row = self._check(name, host=socket.gethostname() if options["local"] else None)
        if options["json"]:
            body = {"component": name, "healthy": healthy, "message": line, "status": row}
            self.stdout.write(json.dumps(body, indent=2))
        else:
            self.stdout.write(line)
        if not healthy:
            sys.exit(1)

    def _check(self, name: str, *, host: str | None) -> tuple[bool, str, components.ComponentRow | None]:
        if not _shared_cache():
            return False, f"{name}: unknown — {_NO_SHARED_CACHE}", None
        try:
            [row] = components.component_status(names=[name], host=host)
        except (RedisError, OSError) as exc:
            # An unreachable cache is an unhealthy answer with its reason, not a traceback.
            return False, f"{name}: unknown — heartbeats unreadable: {type(exc).__name__}: {exc}", None
        return row["running"], health_line(row), row
