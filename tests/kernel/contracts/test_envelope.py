"""The canonical event envelope: constructors reject bad values with messages naming the field."""

from __future__ import annotations

from decimal import Decimal

import orjson
import pytest

from kernel.contracts.envelope import (
    ALL_SYMBOLS,
    EnvelopeError,
    SequenceCounter,
    dumps,
    envelope_from_bytes,
    envelope_from_dict,
    make_envelope,
)

GOOD = {
    "event_type": "agg_update",
    "symbol": "BTC",
    "ts_ms": 1739550000123,
    "source": "hyperliquid",
    "seq": 1289312,
    "data": {"price": "67012.5"},
}


def test_a_good_envelope_round_trips_through_the_wire_format() -> None:
    envelope = envelope_from_dict(GOOD)
    assert envelope_from_bytes(envelope.encode()) == envelope
    assert orjson.loads(envelope.encode()) == GOOD


def test_symbols_are_normalised_to_upper_case() -> None:
    assert make_envelope(**{**GOOD, "symbol": "kpepe"}).symbol == "KPEPE"


def test_account_wide_events_use_the_all_symbol() -> None:
    assert make_envelope(**{**GOOD, "event_type": "account_update", "symbol": ALL_SYMBOLS}).symbol == "*"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("event_type", "agg_updates", "event_type 'agg_updates' is not a known event type"),
        ("event_type", None, "event_type None"),
        ("symbol", "", "symbol '' is not a valid symbol"),
        ("symbol", "BTC USD", "is not a valid symbol"),
        ("symbol", 42, "symbol must be a string"),
        ("ts_ms", 1739550000, "is not a UTC epoch time in milliseconds"),
        ("ts_ms", 1739550000123000, "is not a UTC epoch time in milliseconds"),
        ("ts_ms", 1739550000123.5, "ts_ms must be an integer"),
        ("ts_ms", True, "ts_ms must be an integer"),
        ("source", "", "source '' must be"),
        ("source", "Hyperliquid", "source 'Hyperliquid' must be"),
        ("seq", -1, "seq -1 must be >= 0"),
        ("seq", "7", "seq must be an integer"),
        ("data", [1, 2], "data must be an object"),
    ],
)
def test_bad_fields_are_rejected_naming_the_field(field: str, value: object, message: str) -> None:
    with pytest.raises(EnvelopeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        envelope_from_dict({**GOOD, field: value})


def test_a_missing_field_is_named() -> None:
    with pytest.raises(EnvelopeError, match="envelope is missing seq, data"):
        envelope_from_dict({k: v for k, v in GOOD.items() if k not in ("seq", "data")})


def test_non_json_is_rejected() -> None:
    with pytest.raises(EnvelopeError, match="not valid JSON"):
        envelope_from_bytes(b"{nope")


def test_the_serialiser_keeps_decimals_exact() -> None:
    assert dumps({"px": Decimal("0.000012345")}) == b'{"px":"0.000012345"}'


def test_sequences_are_monotonic_per_stream() -> None:
    counter = SequenceCounter()
    assert [counter.next("hl:ws"), counter.next("hl:ws"), counter.next("hl:rest"), counter.next("hl:ws")] == [
        1,
        2,
        1,
        3,
    ]
