"""Market data REST API (DRF): parse and validate the query, call one selector/service, shape the output.

Symbols in and out are the venue's names, case included (`kPEPE`): what /trading/tokens lists is what every
endpoint here and POST /trading/order accept. A symbol written in another case is mapped to the venue's name.
"""

from __future__ import annotations

import re
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from kernel import clock
from kernel.contracts.symbols import SYMBOL_HELP, SYMBOL_PATTERN, SYMBOL_RE
from kernel.errors import NotFound, ValidationFailed
from kernel.schema import ERRORS, JsonObject
from markets import selectors, services

SYMBOL_LIST_RE = re.compile(rf"^{SYMBOL_PATTERN}(,{SYMBOL_PATTERN}){{0,199}}$")
# Resolution runs against the whole universe /trading/tokens lists from (not one page of it).
UNIVERSE_MAX = 100_000


def _validated(serializer_class: type[serializers.Serializer], request: Request) -> dict[str, Any]:
    unknown = sorted(set(request.query_params) - set(serializer_class().fields))
    if unknown:
        raise ValidationFailed(f"{unknown[0]}: unknown query parameter", extra={"field": unknown[0]})
    serializer = serializer_class(data=request.query_params)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def _universe() -> list[dict[str, Any]]:
    """The perp universe exactly as /trading/tokens lists it (ingest's copy, else the venue's, cached)."""
    return list(services.tokens_read(limit=UNIVERSE_MAX)["tokens"])


def _venue_symbols(symbols: list[str], field: str, tokens: list[dict[str, Any]]) -> list[str]:
    """Symbols in any case → the venue's names; 400 naming `field` for the first one the venue does not list."""
    names = []
    for symbol in symbols:
        name = selectors.symbol_resolve(symbol=symbol, tokens=tokens)
        if name is None:
            raise ValidationFailed(f"{field}: unknown symbol {symbol!r}", extra={"field": field})
        names.append(name)
    return names


def _venue_symbol(symbol: str, field: str = "coin") -> str:
    return _venue_symbols([symbol], field, _universe())[0]


# --- Response shapes (OpenAPI) -------------------------------------------------------------------------------
class BookSideLevels(serializers.ListField):
    child = serializers.ListField(child=serializers.CharField(), help_text="[px, sz] as decimal strings")


class BookBody(serializers.Serializer):
    bids = BookSideLevels()
    asks = BookSideLevels()


class OrderbookResponse(serializers.Serializer):
    coin = serializers.CharField()
    source = serializers.CharField(help_text="aggregator | venue_rest | stale cache")
    book_ts = serializers.IntegerField(allow_null=True)
    age_ms = serializers.IntegerField(allow_null=True)
    stale = serializers.BooleanField()
    stale_reason = serializers.CharField(allow_null=True)
    book = BookBody()


class SymbolsResponse(serializers.Serializer):
    mode = serializers.CharField()
    count = serializers.IntegerField()
    symbols = serializers.ListField(child=JsonObject())


class PricesResponse(serializers.Serializer):
    source = serializers.CharField()
    ts = serializers.IntegerField(allow_null=True)
    stale = serializers.BooleanField()
    prices = JsonObject(help_text="symbol -> mid price (decimal string)")


class TokensResponse(serializers.Serializer):
    source = serializers.CharField()
    stale = serializers.BooleanField()
    count = serializers.IntegerField()
    tokens = serializers.ListField(child=JsonObject())


class CandlesResponse(serializers.Serializer):
    coin = serializers.CharField()
    source = serializers.CharField()
    stale = serializers.BooleanField()
    interval = serializers.CharField()
    candles = serializers.ListField(child=JsonObject(), help_text="venue candle objects t,T,s,i,o,c,h,l,v,n")


class SnapshotResponse(serializers.Serializer):
    symbol = serializers.CharField()
    price = serializers.CharField(allow_null=True)
    price_ts = serializers.IntegerField(allow_null=True)
    book = BookBody()
    book_ts = serializers.IntegerField(allow_null=True)
    staleness = JsonObject(help_text="per field group: age_ms, threshold_ms, stale")


class CoinField(serializers.RegexField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(SYMBOL_RE, error_messages={"invalid": SYMBOL_HELP}, **kwargs)


# --- /aggregator ------------------------------------------------------------------------------------------------
class EmptyQuery(serializers.Serializer):
    pass


class AggregatorStatusApi(APIView):
    @extend_schema(
        summary="Ingest status. Public: running, source state, live symbols, per-symbol freshness. Staff (admin, "
        "operator): the full status with venue URL, process, reconnects, 429s, rejected payloads, upstream budgets",
        responses={200: OpenApiResponse(response=OpenApiTypes.OBJECT, description="status object"), **ERRORS},
    )
    def get(self, request: Request) -> Response:
        _validated(EmptyQuery, request)
        status = selectors.aggregator_status_get()
        # Staff = admin or operator (User.is_staff); DRF's anonymous user is None here.
        if getattr(request.user, "is_staff", False):
            return Response({**status, "detail": "full"})
        return Response(selectors.aggregator_status_public(status=status))


class SymbolsQuery(serializers.Serializer):
    mode = serializers.ChoiceField(choices=["default", "volume", "live", "name"], default="default")
    limit = serializers.IntegerField(min_value=1, max_value=500, default=25)


class AggregatorSymbolsApi(APIView):
    @extend_schema(
        summary="Symbols for pickers (live first, by volume)",
        parameters=[SymbolsQuery],
        responses={200: SymbolsResponse, **ERRORS},
    )
    def get(self, request: Request) -> Response:
        q = _validated(SymbolsQuery, request)
        rows = selectors.symbol_list(mode=q["mode"], limit=q["limit"])
        return Response({"mode": q["mode"], "count": len(rows), "symbols": rows})


# --- /trading ------------------------------------------------------------------------------------------------------
class OrderbookQuery(serializers.Serializer):
    coin = CoinField()
    depth = serializers.IntegerField(min_value=1, max_value=100, default=20)


class OrderbookApi(APIView):
    @extend_schema(
        summary="Order book: hot state, repaired from venue REST when stale",
        parameters=[OrderbookQuery],
        responses={200: OrderbookResponse, **ERRORS},
    )
    def get(self, request: Request) -> Response:
        q = _validated(OrderbookQuery, request)
        coin = _venue_symbol(q["coin"])
        body = services.orderbook_read(symbol=coin, coin=coin, depth=q["depth"])
        return Response({"coin": coin, **body})


class PricesQuery(serializers.Serializer):
    coins = serializers.RegexField(
        SYMBOL_LIST_RE,
        required=False,
        error_messages={"invalid": f"comma-separated symbols; each {SYMBOL_HELP}"},
    )


class PricesApi(APIView):
    @extend_schema(
        summary="Mid prices of every (or the listed) symbol",
        parameters=[PricesQuery],
        responses={200: PricesResponse, **ERRORS},
    )
    def get(self, request: Request) -> Response:
        q = _validated(PricesQuery, request)
        tokens = _universe()
        symbols = _venue_symbols(q["coins"].split(","), "coins", tokens) if q.get("coins") else None
        body = services.prices_read(symbols=symbols)
        # prices_read answers under stream keys (KPEPE): name them as the venue does.
        names = selectors.venue_names(keys=list(body["prices"]), tokens=tokens)
        return Response({**body, "prices": {names[key]: px for key, px in body["prices"].items()}})


class TokensQuery(serializers.Serializer):
    limit = serializers.IntegerField(min_value=1, max_value=1000, default=1000)


class TokensApi(APIView):
    @extend_schema(
        summary="Perp universe with day volume and contexts",
        parameters=[TokensQuery],
        responses={200: TokensResponse, **ERRORS},
    )
    def get(self, request: Request) -> Response:
        q = _validated(TokensQuery, request)
        body = services.tokens_read(limit=q["limit"])
        return Response({**body, "tokens": [selectors.token_row(token=t) for t in body["tokens"]]})


# 9999-12-31T23:59:59.999Z, the last millisecond a datetime holds: larger integers used to reach the upstream
# cache key, which orjson cannot encode past 64 bits (500).
MAX_TS_MS = 253_402_300_799_999


class CandlesQuery(serializers.Serializer):
    coin = CoinField()
    interval = serializers.ChoiceField(choices=list(services.VENUE_CANDLE_INTERVALS_MS), default="1m")
    start = serializers.IntegerField(min_value=0, max_value=MAX_TS_MS, required=False)
    end = serializers.IntegerField(min_value=0, max_value=MAX_TS_MS, required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        step = services.VENUE_CANDLE_INTERVALS_MS[attrs["interval"]]
        end = attrs.get("end") or clock.now_ms()
        start = attrs.get("start") if attrs.get("start") is not None else end - 200 * step
        if start >= end:
            raise serializers.ValidationError({"start": "must be before end"})
        if (end - start) // step > 5000:
            raise serializers.ValidationError({"start": "range is more than 5000 candles"})
        attrs["start"], attrs["end"] = start, end
        return attrs


class CandlesApi(APIView):
    @extend_schema(
        summary="Candles (ingest's 1m/5m/15m/1h, else venue candleSnapshot)",
        parameters=[CandlesQuery],
        responses={200: CandlesResponse, **ERRORS},
    )
    def get(self, request: Request) -> Response:
        q = _validated(CandlesQuery, request)
        coin = _venue_symbol(q["coin"])
        body = services.candles_read(symbol=coin, coin=coin, interval=q["interval"], start=q["start"], end=q["end"])
        return Response({"coin": coin, **body})


# --- /markets/<SYM>/snapshot -----------------------------------------------------------------------------------------
class SymbolSnapshotApi(APIView):
    @extend_schema(
        summary="The hot snapshot of one symbol with per-field freshness",
        responses={200: SnapshotResponse, **ERRORS},
    )
    def get(self, request: Request, symbol: str) -> Response:
        _validated(EmptyQuery, request)
        if not SYMBOL_RE.match(symbol):
            raise ValidationFailed(f"symbol: {SYMBOL_HELP}", extra={"field": "symbol"})
        name = selectors.symbol_resolve(symbol=symbol, tokens=_universe())
        snap = None if name is None else selectors.snapshot_get(symbol=name)
        if name is None or snap is None:
            raise NotFound(f"no snapshot for {name or symbol}", extra={"field": "symbol"})
        return Response(selectors.snapshot_payload(snapshot=snap, symbol=name))
