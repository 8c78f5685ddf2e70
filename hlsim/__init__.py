"""hlsim: a Hyperliquid-compatible paper-trading venue simulator (no Django dependency)."""

from hlsim.faults import Faults
from hlsim.market import MarketEngine
from hlsim.server import SimConfig, Simulator, SimulatorThread

__all__ = ["Faults", "MarketEngine", "SimConfig", "Simulator", "SimulatorThread"]
