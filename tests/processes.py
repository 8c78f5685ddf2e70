"""Our programs started as other processes, the way an operator starts them: from the repository root, with the
environment given, stderr merged into stdout; and waiting for one to answer over HTTP."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[1]


def start(args: list[str], *, env: dict[str, str], out: int | IO[Any]) -> subprocess.Popen[str]:
    """`out`: a log file, subprocess.PIPE (read as text) or subprocess.DEVNULL."""
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)


def start_manage(*args: str, env: dict[str, str], out: int | IO[Any]) -> subprocess.Popen[str]:
    return start([sys.executable, "manage.py", *args], env=env, out=out)


def wait_http(url: str, *, timeout: float, procs: list[subprocess.Popen[Any]], log: Path | None = None) -> None:
    """Until `url` answers 200; an error with the log's tail as soon as one of `procs` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in procs:
            if proc.poll() is not None:
                tail = log.read_text()[-3000:] if log is not None and log.exists() else ""
                raise RuntimeError(f"process exited with {proc.returncode}\n{tail}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as response:
            if response.status == 200:
                return
        time.sleep(0.3)
    raise TimeoutError(f"{url} not ready within {timeout}s")
