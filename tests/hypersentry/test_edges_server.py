"""The WebSocket edge of a real server (`manage.py serve`: uvicorn as run_web configures it) under a socket flood
from one address and an oversized frame."""

from __future__ import annotations

import asyncio
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from deploy.servers import free_port, stop_process

ROOT = Path(__file__).resolve().parents[2]
PER_IP = 50  # the default WS_MAX_CONNECTIONS_PER_IP, set explicitly so the test does not depend on the default
FLOOD = 2000
FRAME_BYTES = 4096

pytestmark = pytest.mark.slow


class Server:
    def __init__(self, proc: subprocess.Popen[bytes], base: str, origin: str) -> None:
        self.proc = proc
        self.base = base
        self.ws_url = base.replace("http://", "ws://") + "/ws"
        self.origin = origin

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS in /proc status")


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    """Web only (no simulator, ingest or jobs): the edge is what is under test, and the machine is small."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    tmp = Path(tempfile.mkdtemp(prefix="hs-edges-"))
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")}
    env.update(
        ENVIRONMENT="development",
        DEBUG="false",
        SQLITE_PATH=str(tmp / "db.sqlite3"),
        FRONTEND_URL=base,
        ALLOWED_ORIGINS=base,
        HYPERSENTRY_VENUE_URL=f"http://127.0.0.1:{free_port()}",
        WS_MAX_CONNECTIONS_PER_IP=str(PER_IP),
        WS_MAX_FRAME_BYTES=str(FRAME_BYTES),
        LOG_LEVEL="warning",
    )
    log_path = tmp / "serve.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--port", str(port), "--components="],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, "server not up within 60 s"
            try:
                if requests.get(base + "/healthz", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.2)
        yield Server(proc, base, origin=base)
    finally:
        stop_process(proc, timeout=20)


@pytest.fixture
def open_files_for_the_flood() -> Iterator[None]:
    """This process holds up to FLOOD client sockets at once."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, max(soft, FLOOD + 1024))
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def _open(server: Server) -> ClientConnection | int:
    """An open socket, or the HTTP status the handshake was refused with."""
    try:
        return await connect(server.ws_url, origin=server.origin, open_timeout=30, ping_interval=None)  # type: ignore[arg-type]
    except InvalidStatus as exc:
        return exc.response.status_code


# /healthz is probed from its own process: in this one, 2,000 client handshakes hold the GIL and would be measured
# instead of the server.
PROBE = """
import sys, time, requests
url, until = sys.argv[1], time.monotonic() + float(sys.argv[2])
while time.monotonic() < until:
    started = time.monotonic()
    try:
        ok = requests.get(url, timeout=5).status_code == 200
    except requests.RequestException:
        ok = False
    print(time.monotonic() - started if ok else "inf", flush=True)
    time.sleep(0.05)
"""


async def _flood(server: Server) -> tuple[list[Any], list[float], ClientConnection | int]:
    """Open FLOOD sockets at once while /healthz is probed; then close them and try one more."""
    prober = await asyncio.create_subprocess_exec(
        sys.executable, "-c", PROBE, server.base + "/healthz", "45", stdout=asyncio.subprocess.PIPE
    )
    await asyncio.sleep(0.5)  # the prober is up
    outcomes = await asyncio.gather(*(_open(server) for _ in range(FLOOD)))
    await asyncio.sleep(1.0)  # keep them open while /healthz is still being asked
    prober.terminate()
    out, _ = await prober.communicate()
    latencies = [float(line) for line in out.decode().split()]
    await asyncio.gather(*(o.close() for o in outcomes if isinstance(o, ClientConnection)))
    await asyncio.sleep(0.5)  # the server notices the closes
    again = await _open(server)
    if isinstance(again, ClientConnection):
        await again.close()
    return outcomes, latencies, again


def test_a_socket_flood_from_one_address_is_capped_and_healthz_keeps_answering(
    server: Server, open_files_for_the_flood: None
) -> None:
    outcomes, latencies, again = asyncio.run(_flood(server))
    accepted = [o for o in outcomes if isinstance(o, ClientConnection)]
    refused = [o for o in outcomes if not isinstance(o, ClientConnection)]
    assert len(accepted) == PER_IP
    assert set(refused) == {403}  # refused at the handshake, not reset or timed out
    assert len(latencies) >= 5 and max(latencies) < 1.0, latencies
    assert isinstance(again, ClientConnection), again  # every slot was given back


def test_an_oversized_frame_is_refused_with_1009_without_being_buffered(server: Server) -> None:
    async def send_big() -> tuple[int | None, int, int]:
        ws = await connect(server.ws_url, origin=server.origin, max_size=None, ping_interval=None)  # type: ignore[arg-type]
        await asyncio.sleep(0.3)
        before = server.rss_bytes()
        with pytest.raises(ConnectionClosed) as closed:
            await ws.send("x" * (16 * 1024 * 1024))
            await ws.recv()
        await asyncio.sleep(0.5)
        after = server.rss_bytes()
        received = closed.value.rcvd
        return (received.code if received is not None else None), before, after

    code, before, after = asyncio.run(send_big())
    assert code == 1009  # message too big, from the protocol layer
    assert after - before < 4 * 1024 * 1024, (before, after)
