"""Command-line options: validation (pure, raises CliError with a clear message) and the blocking runner."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import re
import signal
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from hlsim.server import SimConfig, Simulator
from hlsim.universe import COINS_BY_NAME

logger = logging.getLogger(__name__)
ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")


class CliError(ValueError):
    pass


@dataclass
class ChaosOptions:
    latency_ms: int = 0
    blackhole_orders: int = 0
    rate_limit_for: float = 0.0
    stall_for: float = 0.0
    drop_ws_every: float = 0.0
    malformed_every: float = 0.0


def add_arguments(
    parser: argparse.ArgumentParser, *, seed: int = 1, speed: float = 1.0, balance: str = "100000"
) -> None:
    """The simulator's flags. A host application passes its own defaults for the flags it configures (HyperSentry's
    `manage.py hlsim` passes HLSIM_SEED, HLSIM_SPEED and HLSIM_PAPER_BALANCE); a flag given always wins."""
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3001)
    parser.add_argument("--seed", type=int, default=seed, help=f"market random seed (default: {seed})")
    parser.add_argument("--symbols", default="", help="comma-separated perps (default: the whole universe)")
    parser.add_argument(
        "--speed", type=float, default=speed, help=f"event-rate multiplier, 10 = ten times faster (default: {speed})"
    )
    parser.add_argument("--fund", action="append", default=[], metavar="0xADDR=USDC", help="repeatable")
    parser.add_argument("--balance", default=balance, help=f"paper USDC for new accounts (default: {balance})")
    parser.add_argument("--control", action="store_true", help="expose POST /control and GET /control/stats")
    parser.add_argument("--no-rate-limits", action="store_true")
    parser.add_argument("--ws-idle-timeout", type=float, default=60.0)
    parser.add_argument("--latency-ms", type=int, default=0, help="fault: delay every REST answer and WS frame")
    parser.add_argument("--blackhole-orders", type=int, default=0, help="fault: never answer the next N orders")
    parser.add_argument("--rate-limit-for", type=float, default=0.0, help="fault: answer 429 for the first N s")
    parser.add_argument("--stall-for", type=float, default=0.0, help="fault: no WS pushes for the first N s")
    parser.add_argument("--drop-ws-every", type=float, default=0.0, help="chaos: drop all WS connections every N s")
    parser.add_argument("--malformed-every", type=float, default=0.0, help="chaos: malformed WS frame every N s")


def parse_fund(entries: list[str]) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for entry in entries:
        address, sep, amount = entry.partition("=")
        if not sep or not ADDRESS.match(address):
            raise CliError(f"--fund expects 0x<40 hex>=<USDC>, got {entry!r}")
        try:
            value = Decimal(amount)
        except InvalidOperation:
            raise CliError(f"--fund amount must be a number, got {amount!r}") from None
        if not value.is_finite() or value < 0:
            raise CliError(f"--fund amount must be a non-negative number, got {amount!r}")
        out[address.lower()] = value
    return out


def config_from_options(options: dict[str, Any]) -> tuple[SimConfig, ChaosOptions]:
    """Validate parsed options (argparse namespace or Django options dict) into a SimConfig."""
    port, speed = options.get("port", 3001), options.get("speed", 1.0)
    if not isinstance(port, int) or not 0 <= port <= 65535:
        raise CliError(f"--port must be between 0 and 65535, got {port}")
    if not isinstance(speed, (int, float)) or not 0 < speed <= 1000:
        raise CliError(f"--speed must be > 0 and <= 1000, got {speed}")
    symbols = [s.strip() for s in (options.get("symbols") or "").split(",") if s.strip()]
    unknown = [s for s in symbols if s not in COINS_BY_NAME]
    if unknown:
        raise CliError(f"--symbols: unknown {', '.join(unknown)}; known: {', '.join(COINS_BY_NAME)}")
    try:
        balance = Decimal(str(options.get("balance", "100000")))
    except InvalidOperation:
        raise CliError(f"--balance must be a number, got {options.get('balance')!r}") from None
    if not balance.is_finite() or balance < 0:
        raise CliError("--balance must be a non-negative number")
    idle = options.get("ws_idle_timeout", 60.0)
    if idle <= 0:
        raise CliError("--ws-idle-timeout must be > 0")
    chaos = ChaosOptions(
        latency_ms=options.get("latency_ms", 0),
        blackhole_orders=options.get("blackhole_orders", 0),
        rate_limit_for=options.get("rate_limit_for", 0.0),
        stall_for=options.get("stall_for", 0.0),
        drop_ws_every=options.get("drop_ws_every", 0.0),
        malformed_every=options.get("malformed_every", 0.0),
    )
    for name, value in vars(chaos).items():
        if value < 0:
            raise CliError(f"--{name.replace('_', '-')} must be >= 0, got {value}")
    config = SimConfig(
        host=options.get("host", "127.0.0.1"),
        port=port,
        seed=options.get("seed", 1),
        symbols=symbols or None,
        speed=float(speed),
        fund=parse_fund(options.get("fund") or []),
        control=bool(options.get("control")),
        default_balance=balance,
        rate_limits=not options.get("no_rate_limits"),
        ws_idle_timeout=float(idle),
    )
    return config, chaos


async def _every(seconds: float, action: Any) -> None:
    while True:
        await asyncio.sleep(seconds)
        action()


async def serve(config: SimConfig, chaos: ChaosOptions | None = None) -> None:
    """Run until SIGINT/SIGTERM."""
    chaos = chaos or ChaosOptions()
    sim = Simulator(config)
    await sim.start()
    sim.faults.latency(chaos.latency_ms)
    sim.faults.blackhole(chaos.blackhole_orders)
    if chaos.rate_limit_for:
        sim.faults.rate_limit(chaos.rate_limit_for)
    if chaos.stall_for:
        sim.faults.stall(chaos.stall_for)
    tasks = []
    if chaos.drop_ws_every:
        tasks.append(asyncio.create_task(_every(chaos.drop_ws_every, sim.faults.drop_ws)))
    if chaos.malformed_every:
        tasks.append(asyncio.create_task(_every(chaos.malformed_every, sim.faults.malformed_frame)))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    logger.info("hlsim serving on %s (seed %s, speed %s)", sim.base_url, config.seed, config.speed)
    print(f"hlsim serving on {sim.base_url} (ws {sim.ws_url}), seed={config.seed} speed={config.speed}", flush=True)
    try:
        await stop.wait()
    finally:
        for task in tasks:
            task.cancel()
        await sim.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="hlsim")
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        config, chaos = config_from_options(vars(args))
    except CliError as exc:
        parser.error(str(exc))
    asyncio.run(serve(config, chaos))


if __name__ == "__main__":
    main()
