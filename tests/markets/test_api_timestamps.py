"""/trading/candles: start and end are millisecond timestamps a datetime can hold; larger ones are a 400.

Found by tests/hypersentry/test_fuzz_api.py: end=10**30 passed validation and reached the upstream cache key,
where orjson raised "Integer exceeds 64-bit range" and the request answered 500."""

from __future__ import annotations

import pytest

from tests.markets.seed import UNIVERSE, seed

# 9999-12-31T23:59:59.999Z: the last millisecond Python's datetime can represent.
MAX_TS_MS = 253_402_300_799_999


@pytest.mark.parametrize(
    ("query", "field"),
    [
        (f"end={10**30}", "end"),
        (f"start={10**30}&end={10**30 + 1}", "start"),
        (f"end={2**64}", "end"),
        (f"end={MAX_TS_MS + 1}", "end"),
        (f"start={MAX_TS_MS + 1}", "start"),
    ],
)
def test_it_rejects_timestamps_past_year_9999_naming_the_field(api, query: str, field: str) -> None:
    seed(universe=UNIVERSE)
    response = api.get(f"/trading/candles?coin=BTC&{query}")
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["type"] == "error" and body["code"] == "invalid_input"
    assert body["message"].startswith(f"{field}:"), body
