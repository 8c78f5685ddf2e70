"""Shared pieces of the browser tests: Debian's chromium through Playwright, and the one-process topology
(`manage.py serve` on a temp SQLite, in-memory layers, no DATABASE_URL/REDIS_URL) as a subprocess."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from deploy.servers import free_port, stop_process
from tests.processes import ROOT, start_manage, wait_http

ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def launch_chromium(playwright: Any) -> Any:
    return playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)


def watch_errors(page: Any, *, console: bool = True) -> list[str]:
    """The page's uncaught errors, and its console errors unless `console` is off, collected as they happen."""
    errors: list[str] = []
    if console:
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return errors


def manage(env: dict[str, str], *args: str) -> None:
    """A management command run as an operator would, in another process (the served deployment's environment)."""
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, timeout=60, capture_output=True)


def serve_env(tmp: Path, *, web_port: int, venue_url: str, embed_simulator: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")}
    env.update(
        ENVIRONMENT="development",
        DEBUG="true",
        SQLITE_PATH=str(tmp / "db.sqlite3"),
        FRONTEND_URL=f"http://127.0.0.1:{web_port}",
        ALLOWED_ORIGINS=f"http://127.0.0.1:{web_port}",
        HYPERSENTRY_VENUE="sim",
        HYPERSENTRY_VENUE_URL=venue_url.rstrip("/"),
        HYPERSENTRY_EMBED_SIMULATOR="true" if embed_simulator else "false",
        LOG_LEVEL="warning",
        PYTHONPATH=str(ROOT),
    )
    return env


@contextlib.contextmanager
def run_serve(
    tmp: Path,
    *,
    venue_url: str | None = None,
    ready_path: str = "/healthz",
    timeout: float = 90,
    extra_procs: list[subprocess.Popen[bytes]] | None = None,
) -> Iterator[tuple[str, dict[str, str]]]:
    """Migrate and start `manage.py serve`; yields (base URL, its environment). Without `venue_url` the
    simulator is embedded on a free port."""
    web_port = free_port()
    embed = venue_url is None
    env = serve_env(
        tmp, web_port=web_port, venue_url=venue_url or f"http://127.0.0.1:{free_port()}", embed_simulator=embed
    )
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
    log_path = tmp / "serve.log"
    with open(log_path, "wb") as log:
        proc = start_manage("serve", "--port", str(web_port), env=env, out=log)
        base = f"http://127.0.0.1:{web_port}"
        try:
            wait_http(base + ready_path, timeout=timeout, procs=[proc, *(extra_procs or [])], log=log_path)
            yield base, env
        finally:
            stop_process(proc, timeout=15)
