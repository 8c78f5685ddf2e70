"""The canonical event envelope (architecture seed §6) and the one serialiser for everything on the wire."""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson

from kernel.contracts.channels import EVENT_TYPES
from kernel.contracts.records import fields_dict
from kernel.contracts.symbols import symbol_valid

# Account-wide events (account_update, risk_update ...) are not about one symbol.
ALL_SYMBOLS = "*"

_SOURCE_RE = re.compile(r"^[a-z0-9][a-z0-9_.:\-]{0,63}$")
# Milliseconds since the epoch between 2001-09-09 and 2286-11-20: catches seconds and microseconds.
_MIN_TS_MS = 1_000_000_000_000
_MAX_TS_MS = 9_999_999_999_999


class EnvelopeError(ValueError):
    """An envelope field is missing or has a bad value; the message names the field."""


@dataclass(frozen=True, slots=True)
class Envelope:
    event_type: str
    symbol: str
    ts_ms: int
    source: str
    seq: int
    data: Mapping[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return fields_dict(self)

    def encode(self) -> bytes:
        return dumps(self.as_dict())


def _check_int(name: str, value: object) -> int:
    # bool is an int subclass: True must not pass as seq 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise EnvelopeError(f"{name} must be an integer, got {type(value).__name__}")
    return value


def make_envelope(
    *, event_type: str, symbol: str, ts_ms: int, source: str, seq: int, data: Mapping[str, Any]
) -> Envelope:
    """Build a validated envelope. Symbols are normalised to upper case; everything else must already be right."""
    if not isinstance(event_type, str) or event_type not in EVENT_TYPES:
        raise EnvelopeError(f"event_type {event_type!r} is not a known event type")
    if not isinstance(symbol, str):
        raise EnvelopeError(f"symbol must be a string, got {type(symbol).__name__}")
    symbol = symbol.strip().upper()
    if symbol != ALL_SYMBOLS and not (symbol_valid(symbol) and symbol == symbol.upper()):
        raise EnvelopeError(f"symbol {symbol!r} is not a valid symbol (1-32 chars of A-Z 0-9 / _ - @ .)")
    ts_ms = _check_int("ts_ms", ts_ms)
    if not _MIN_TS_MS <= ts_ms <= _MAX_TS_MS:
        raise EnvelopeError(f"ts_ms {ts_ms} is not a UTC epoch time in milliseconds")
    if not isinstance(source, str) or not _SOURCE_RE.match(source):
        raise EnvelopeError(f"source {source!r} must be 1-64 lowercase chars of a-z 0-9 _ . : -")
    seq = _check_int("seq", seq)
    if seq < 0:
        raise EnvelopeError(f"seq {seq} must be >= 0")
    if not isinstance(data, Mapping):
        raise EnvelopeError(f"data must be an object, got {type(data).__name__}")
    return Envelope(event_type=event_type, symbol=symbol, ts_ms=ts_ms, source=source, seq=seq, data=data)


def envelope_from_dict(obj: object) -> Envelope:
    """Validate a decoded envelope (e.g. from Redis or a test client)."""
    if not isinstance(obj, Mapping):
        raise EnvelopeError(f"an envelope must be an object, got {type(obj).__name__}")
    missing = [k for k in ("event_type", "symbol", "ts_ms", "source", "seq", "data") if k not in obj]
    if missing:
        raise EnvelopeError("envelope is missing " + ", ".join(missing))
    return make_envelope(
        event_type=obj["event_type"],
        symbol=obj["symbol"],
        ts_ms=obj["ts_ms"],
        source=obj["source"],
        seq=obj["seq"],
        data=obj["data"],
    )


def envelope_from_bytes(raw: bytes | str) -> Envelope:
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise EnvelopeError(f"envelope is not valid JSON: {exc}") from None
    return envelope_from_dict(obj)


class SequenceCounter:
    """Monotonic sequence numbers per source stream (thread-safe: ingest and relay run in threads too)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: dict[str, int] = {}

    def next(self, stream: str) -> int:
        with self._lock:
            value = self._last.get(stream, 0) + 1
            self._last[stream] = value
            return value

    def last(self, stream: str) -> int:
        with self._lock:
            return self._last.get(stream, 0)


def _default(value: object) -> object:
    if isinstance(value, Decimal):
        # Decimals travel as strings so no precision is lost on the wire.
        return str(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def dumps(obj: object) -> bytes:
    """The one serialiser for the wire: orjson, Decimal as string, non-string keys allowed."""
    return orjson.dumps(obj, default=_default, option=orjson.OPT_NON_STR_KEYS)


def dumps_text(obj: object) -> str:
    return dumps(obj).decode()


loads = orjson.loads
