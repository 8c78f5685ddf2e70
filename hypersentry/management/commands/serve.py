"""`python manage.py serve`: the one-process topology (what `make run` starts)."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from hypersentry import topology
from hypersentry.runtime import tune_gc

logger = logging.getLogger(__name__)


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
        asyncio.run(self._run(chosen, host=options["host"], port=port, web=not options["no_web"]))

    def _components(self, spec: str) -> list[str]:
        from django.conf import settings

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
            tasks[name] = asyncio.create_task(topology.runner_for(name)(stop), name=name)
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
