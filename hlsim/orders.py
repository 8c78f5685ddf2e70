"""Order records, action parsing (malformed → HTTP 422) and the order wire shapes."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal

from hlsim.ticks import fmt_decimal, parse_decimal

CLOID_RE = re.compile(r"^0x[0-9a-fA-F]{32}$")
ADDRESS_RE = re.compile(r"^0x[0-9a-fA-F]{40}$")
TIFS = ("Gtc", "Ioc", "Alo")


class BadRequest(Exception):
    """Body does not deserialize into the venue's types: answered with HTTP 422."""


@dataclass
class OrderWire:
    asset: int
    is_buy: bool
    px: Decimal
    sz: Decimal
    reduce_only: bool
    tif: str | None
    trigger_px: Decimal | None
    is_market: bool
    tpsl: str | None
    cloid: str | None


@dataclass
class Order:
    oid: int
    user: str
    coin: str
    asset: int
    is_buy: bool
    limit_px: Decimal
    sz: Decimal
    orig_sz: Decimal
    reduce_only: bool
    tif: str | None
    cloid: str | None
    timestamp: int
    trigger_px: Decimal | None = None
    is_market: bool = False
    tpsl: str | None = None
    is_position_tpsl: bool = False
    parent: int | None = None
    children: list[int] = field(default_factory=list)
    waiting_for_fill: bool = False
    status: str = "open"
    status_ts: int = 0

    @property
    def is_trigger(self) -> bool:
        return self.trigger_px is not None

    @property
    def is_open(self) -> bool:
        return self.status in ("open", "triggered")

    @property
    def order_type(self) -> str:
        if not self.is_trigger:
            return "Limit"
        kind = "Take Profit" if self.tpsl == "tp" else "Stop"
        return f"{kind} {'Market' if self.is_market else 'Limit'}"

    def _head_wire(self) -> dict:
        """The fields every order view starts with, in the venue's order."""
        return {
            "coin": self.coin,
            "side": "B" if self.is_buy else "A",
            "limitPx": fmt_decimal(self.limit_px),
            "sz": fmt_decimal(self.sz),
            "oid": self.oid,
            "timestamp": self.timestamp,
        }

    def basic_wire(self) -> dict:
        wire = {**self._head_wire(), "origSz": fmt_decimal(self.orig_sz)}
        if self.cloid:
            wire["cloid"] = self.cloid
        return wire

    def open_wire(self) -> dict:
        return {
            "coin": self.coin,
            "limitPx": fmt_decimal(self.limit_px),
            "oid": self.oid,
            "side": "B" if self.is_buy else "A",
            "sz": fmt_decimal(self.sz),
            "timestamp": self.timestamp,
        }

    def frontend_wire(self, children: list[dict] | None = None) -> dict:
        if self.is_trigger:
            above = (self.tpsl == "tp") != self.is_buy
            cond = f"Price {'above' if above else 'below'} {fmt_decimal(self.trigger_px or Decimal(0))}"
        else:
            cond = "N/A"
        return {
            **self._head_wire(),
            "triggerCondition": cond,
            "isTrigger": self.is_trigger,
            "triggerPx": fmt_decimal(self.trigger_px or Decimal(0)),
            "children": children or [],
            "isPositionTpsl": self.is_position_tpsl,
            "reduceOnly": self.reduce_only,
            "orderType": self.order_type,
            "origSz": fmt_decimal(self.orig_sz),
            "tif": self.tif,
            "cloid": self.cloid,
        }


def _require(cond: bool) -> None:
    if not cond:
        raise BadRequest("Failed to deserialize the JSON body into the target type")


def parse_cloid(value: object) -> str:
    _require(isinstance(value, str) and bool(CLOID_RE.match(value)))
    return str(value).lower()


def parse_int(value: object) -> int:
    _require(isinstance(value, int) and not isinstance(value, bool))
    return int(value)  # type: ignore[arg-type]


def parse_order_wire(raw: object) -> OrderWire:
    _require(isinstance(raw, dict))
    assert isinstance(raw, dict)
    for key in ("a", "b", "p", "s", "r", "t"):
        _require(key in raw)
    _require(isinstance(raw["b"], bool) and isinstance(raw["r"], bool))
    px, sz = parse_decimal(raw["p"]), parse_decimal(raw["s"])
    _require(px is not None and sz is not None)
    t = raw["t"]
    _require(isinstance(t, dict) and len(t) == 1)
    tif = None
    trigger_px = None
    is_market = False
    tpsl = None
    if "limit" in t:
        _require(isinstance(t["limit"], dict) and t["limit"].get("tif") in TIFS)
        tif = t["limit"]["tif"]
    else:
        trig = t.get("trigger")
        _require(isinstance(trig, dict) and isinstance(trig.get("isMarket"), bool) and trig.get("tpsl") in ("tp", "sl"))
        trigger_px = parse_decimal(trig.get("triggerPx"))
        _require(trigger_px is not None)
        is_market, tpsl = trig["isMarket"], trig["tpsl"]
    cloid = parse_cloid(raw["c"]) if raw.get("c") is not None else None
    return OrderWire(parse_int(raw["a"]), raw["b"], px, sz, raw["r"], tif, trigger_px, is_market, tpsl, cloid)  # type: ignore[arg-type]


def parse_oid_or_cloid(value: object) -> int | str:
    if isinstance(value, str):
        return parse_cloid(value)
    return parse_int(value)


def parse_address(value: object) -> str:
    _require(isinstance(value, str) and bool(ADDRESS_RE.match(value)))
    return str(value).lower()


def require(cond: bool) -> None:
    """Public alias used by the action validators."""
    _require(cond)
