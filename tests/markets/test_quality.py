"""Data-quality guards: NaN/zero/negative sizes, malformed prices, crossed books, sigma jumps."""

from __future__ import annotations

import orjson
import pytest

from kernel.contracts.envelope import SequenceCounter
from markets import normalize, quality
from markets.symbol_state import SymbolState, apply_book, apply_trades
from tests.markets.ingest import offline_ingestor


@pytest.mark.parametrize("raw", ["NaN", "nan", "0", "0.0", "-1", "-0.5", "inf", "abc", "", None, True, [1]])
def test_bad_sizes_and_prices_are_refused(raw):
    assert quality.parse_size(raw) is None
    assert quality.parse_price(raw) is None


def test_good_values_parse():
    assert quality.parse_price("67000.5") == 67000.5 and quality.parse_size("0.001") == 0.001


def test_crossed_and_unsorted_books_are_refused():
    assert quality.check_book_prices(bids=[101.0], asks=[100.0]) == quality.CROSSED_BOOK
    assert quality.check_book_prices(bids=[100.0], asks=[100.0]) == quality.CROSSED_BOOK
    assert quality.check_book_prices(bids=[99.0, 99.5], asks=[100.0]) == quality.UNSORTED_BOOK
    assert quality.check_book_prices(bids=[99.0], asks=[100.0, 101.0]) is None


def _frame(channel: str, data: object) -> dict:
    return {"channel": channel, "data": data}


def _normalize(frame: dict) -> normalize.Normalized:
    return normalize.normalize_frame(
        frame, recv_ms=1_700_000_000_000, symbols=normalize.SymbolMap(["BTC", "kPEPE"]), seq=SequenceCounter()
    )


def _book(bid_px: str, bid_sz: str, ask_px: str, ask_sz: str = "1") -> dict:
    return {
        "coin": "BTC",
        "time": 1_700_000_000_000,
        "levels": [[{"px": bid_px, "sz": bid_sz, "n": 1}], [{"px": ask_px, "sz": ask_sz, "n": 1}]],
    }


# Every refused book with the reason it is refused for: normalising refuses each, and ingest keeps the last valid
# book over each.
BAD_BOOKS = [
    (_book("101", "1", "100"), quality.CROSSED_BOOK),
    (_book("99", "NaN", "100"), quality.BAD_SIZE),
    (_book("99", "0", "100"), quality.BAD_SIZE),
    (_book("99", "-2", "100"), quality.BAD_SIZE),
    (_book("99", "1", "100", "nan"), quality.BAD_SIZE),
    (_book("99", "1", "inf"), quality.BAD_PRICE),
    (_book("9x9", "1", "100"), quality.BAD_PRICE),
    ({"coin": "BTC", "levels": [[{"px": "99"}], []]}, quality.MALFORMED),
    ({"coin": "BTC", "levels": [[{"px": 99, "sz": "1"}], []]}, quality.BAD_PRICE),
    ({"coin": "BTC", "levels": [[{"px": "99", "sz": "1"}, {"px": "99.5", "sz": "1"}], []]}, quality.UNSORTED_BOOK),
]


@pytest.mark.parametrize(("book", "reason"), BAD_BOOKS)
def test_normalise_rejects_bad_books_with_a_reason(book, reason):
    out = _normalize(_frame("l2Book", book))
    assert not out.envelopes
    assert [r.reason for r in out.rejections] == [reason]


def test_normalise_keeps_good_trades_and_rejects_bad_ones():
    trades = [
        {"coin": "BTC", "side": "B", "px": "100", "sz": "1", "time": 1_700_000_000_000, "tid": 1},
        {"coin": "BTC", "side": "A", "px": "100", "sz": "-1", "time": 1_700_000_000_000, "tid": 2},
        {"coin": "BTC", "side": "X", "px": "100", "sz": "1", "time": 1_700_000_000_000, "tid": 3},
        {"coin": "kPEPE", "side": "A", "px": "bad", "sz": "1", "time": 1_700_000_000_000, "tid": 4},
    ]
    out = _normalize(_frame("trades", trades))
    assert [r.reason for r in out.rejections] == [quality.BAD_SIZE, quality.BAD_SIDE, quality.BAD_PRICE]
    assert len(out.envelopes) == 1 and out.envelopes[0].symbol == "BTC"
    assert out.envelopes[0].source == "hyperliquid" and out.envelopes[0].seq == 1


def test_mixed_case_coins_map_to_upper_case_symbols():
    out = _normalize(_frame("allMids", {"mids": {"kPEPE": "0.0098", "@107": "38.9", "BTC": "NaN"}}))
    assert out.envelopes[0].data["mids"] == {"KPEPE": ("0.0098", 0.0098)}
    assert [r.reason for r in out.rejections] == [quality.BAD_PRICE]


def test_sigma_guard_rejects_outliers_then_reanchors():
    guard = quality.JumpGuard(sigma=8.0, warmup=5)
    px = 100.0
    for i in range(30):
        px *= 1.0001 if i % 2 else 0.9999
        assert guard.check(px) is None
    assert guard.check(px * 1.05) == quality.PRICE_JUMP  # 5% jump, far beyond 8 sigma of ~1bp moves
    assert guard.peek(px * 1.05) == quality.PRICE_JUMP
    assert guard.check(px * 1.0002) is None
    # A real repricing: after max_consecutive refusals the new level is accepted.
    results = [guard.check(px * 1.05) for _ in range(guard.max_consecutive + 1)]
    assert results[:-1] == [quality.PRICE_JUMP] * guard.max_consecutive and results[-1] is None


def test_symbol_state_refuses_jumped_trades_and_books():
    st = SymbolState(symbol="BTC", coin="BTC", sigma=8.0)
    st.price_guard = quality.JumpGuard(sigma=8.0, warmup=0, last=100.0, var=1e-8, samples=10)
    out = _normalize(_frame("l2Book", _book("149", "1", "151")))
    assert apply_book(st, out.envelopes[0].data) == quality.PRICE_JUMP
    assert st.book_ts is None
    trades = _normalize(
        _frame(
            "trades",
            [
                {"coin": "BTC", "side": "B", "px": "100", "sz": "1", "time": 1_700_000_000_000},
                {"coin": "BTC", "side": "B", "px": "100.01", "sz": "1", "time": 1_700_000_000_001},
            ],
        )
    )
    assert apply_trades(st, trades.envelopes[0].data["trades"]) == []
    assert len(st.trades) == 2 and st.cvd.running == pytest.approx(100 + 100.01)


async def test_malformed_frames_are_counted_not_raised():
    ing = offline_ingestor()
    ing.handle_raw('{"channel":"l2Book","data":{"coin":')
    ing.handle_raw(orjson.dumps(_frame("l2Book", _book("101", "1", "100"))))
    await ing.flush()  # books are parsed and guarded when a flush uses them
    assert ing.rejections == {quality.MALFORMED: 1, quality.CROSSED_BOOK: 1}


@pytest.mark.parametrize(("book", "reason"), BAD_BOOKS)
async def test_it_keeps_the_last_valid_book_when_a_newer_one_is_refused(book, reason):
    ing = offline_ingestor()
    ing.handle_raw(orjson.dumps(_frame("l2Book", _book("99", "2", "100", "3"))))
    await ing.flush()
    ing.handle_raw(orjson.dumps(_frame("l2Book", book)))
    await ing.flush()
    assert ing.rejections == {reason: 1}
    snap = await ing.hot.get("BTC")
    assert orjson.loads(orjson.dumps(snap.book)) == {"bids": [["99", "2"]], "asks": [["100", "3"]]}
    assert snap.book_stats["mid"] == pytest.approx(99.5)


async def test_only_the_newest_book_of_an_interval_is_parsed():
    ing = offline_ingestor()
    ing.handle_raw(orjson.dumps(_frame("l2Book", _book("101", "1", "100"))))  # crossed, but superseded
    ing.handle_raw(orjson.dumps(_frame("l2Book", _book("99", "1", "100"))))
    await ing.flush()
    assert ing.rejections == {}
    assert [list(level) for level in (await ing.hot.get("BTC")).book["bids"]] == [["99", "1"]]
