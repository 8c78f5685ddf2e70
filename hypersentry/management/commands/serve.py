"""`python manage.py serve`: the one-process topology (what `make run` starts)."""

from __future__ import annotations

import asyncio
import logging
import resource
import signal
from collections.abc import Awaitable
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from hypersentry import topology
from kernel.runtime import tune_gc

logger = logging.getLogger(__name__)

# Where the hard limit is "unlimited" we stop here: Linux refuses more than fs.nr_open (1048576 by default).
_NOFILE_CEILING = 1_048_576


def nofile_target(soft: int, hard: int) -> int:
    """The soft RLIMIT_NOFILE to ask for: the hard limit (or the ceiling when unlimited), never below `soft`."""
    ceiling = _NOFILE_CEILING if hard == resource.RLIM_INFINITY else hard
    if soft == resource.RLIM_INFINITY:
        return soft
    return max(soft, ceiling)


def raise_open_file_limit() -> int:
    """Raise this process's soft open-file limit to the hard limit and return it.

    Every socket is a file descriptor: at the common soft default of 1024, a socket flood used them all and
    /healthz, SQLite and every job failed with EMFILE. The WebSocket caps (hypersentry.asgi) bound the sockets;
    this gives them, and everything else, the room the hard limit allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = nofile_target(soft, hard)
    if target != soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            logger.warning("open-file limit stays at %d (could not raise it to %d: %s)", soft, target, exc)
            return soft
    logger.info("open-file limit: %d (hard limit %d)", target, hard)
    return target


async def _until_done(component: Awaitable[None]) -> None:
    # create_task takes a coroutine; a component runner is typed as returning any awaitable.
    await component


class Command(BaseCommand):
    help = "Run the web server and, in the same event loop, the simulator, ingest, alpha and periodic jobs."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument(
            "--components",
            default="auto",
            help="Comma-separated subset of: " + ", ".join(topology.COMPONENT_RUNNERS) + " (default: all available; "
            "the simulator only when HYPERSENTRY_EMBED_SIMULATOR is on).",
        )
        parser.add_argument("--no-web", action="store_true", help="Run the components without the web server.")

    def handle(self, *args: Any, **options: Any) -> None:
        port = options["port"]
        if not 0 < port < 65536:
            raise CommandError(f"--port {port} is out of range 1-65535")
        chosen = self._components(options["components"])
        tune_gc()
        raise_open_file_limit()
        asyncio.run(self._run(chosen, host=options["host"], port=port, web=not options["no_web"]))

    def _components(self, spec: str) -> list[str]:
        available = topology.available_components()
        if spec == "auto":
            return [c for c in available if c != "hlsim" or settings.HYPERSENTRY_EMBED_SIMULATOR]
        chosen = [c.strip() for c in spec.split(",") if c.strip()]
        unknown = [c for c in chosen if c not in topology.COMPONENT_RUNNERS]
        if unknown:
            raise CommandError(
                f"--components: unknown {', '.join(unknown)}; choose from {', '.join(topology.COMPONENT_RUNNERS)}"
            )
        missing = [c for c in chosen if c not in available]
        if missing:
            raise CommandError(f"--components: {', '.join(missing)} not available in this build")
        return chosen

    async def _run(self, chosen: list[str], *, host: str, port: int, web: bool) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        tasks: dict[str, asyncio.Task[None]] = {}
        for name in chosen:
            tasks[name] = asyncio.create_task(_until_done(topology.runner_for(name)(stop)), name=name)
            await asyncio.sleep(0.2)  # let the venue bind before its clients connect
        if web:
            tasks["web"] = asyncio.create_task(topology.run_web(stop, host=host, port=port), name="web")
        self.stdout.write(f"HyperSentry running: {', '.join(tasks)} — http://{host}:{port}")
        stop_task = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait([stop_task, *tasks.values()], return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task is not stop_task and task.exception() is not None:
                logger.error("component %s crashed", task.get_name(), exc_info=task.exception())
        stop.set()
        await asyncio.wait(tasks.values(), timeout=10)
        for task in tasks.values():
            task.cancel()
