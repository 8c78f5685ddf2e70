"""Alpha REST (DRF): conviction readings, the autonomous trigger and the user's auto mode.

Interfaces only: validate, call one selector/service, shape the output."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import User
from alpha import selectors, services
from kernel import clock
from kernel.contracts.symbols import SYMBOL_HELP, symbol_valid
from kernel.errors import ApplicationError, NotFound, ValidationFailed
from kernel.permissions import signed_in_user


class ConvictionUnavailable(ApplicationError):
    code = "conviction_unavailable"
    status = 503


def _symbol(raw: str, field: str = "symbol") -> str:
    if not symbol_valid(raw):
        raise ValidationFailed(f"{field}: {SYMBOL_HELP}", extra={"field": field})
    return raw.upper()


def _user(request: Request) -> User:
    user: User = signed_in_user(request)
    return user


_ERROR = OpenApiResponse(description='{"type":"error","code":...,"message":...}')


class ConvictionGetApi(APIView):
    @extend_schema(
        summary="Latest conviction of a symbol with the server-side 10-reading rolling average",
        description="score/bias of the newest reading, `rolling_avg` over `readings` (the last 10), component "
        "breakdown with raw inputs, streak, timestamps, `age_ms` and `stale`. 404 unknown_symbol, 400 invalid_input, "
        "503 conviction_unavailable when the pipeline has not produced a reading.",
        responses={200: OpenApiResponse(description="conviction object"), 400: _ERROR, 404: _ERROR, 503: _ERROR},
    )
    def get(self, request: Request, symbol: str) -> Response:
        sym = _symbol(symbol)
        settings_row = selectors.alpha_settings_get()
        view = selectors.conviction_get(symbol=sym, stale_after_ms=settings_row.stale_after_ms)
        if view is None:
            if not selectors.known_symbol(symbol=sym):
                raise NotFound(f"unknown symbol {sym!r}", code="unknown_symbol")
            raise ConvictionUnavailable(f"no conviction reading for {sym} yet", extra={"stale": True})
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            services.presence_touch(user_id=user.pk)
        return Response(view)


class ConvictionListApi(APIView):
    @extend_schema(
        summary="Every symbol's latest score, bias, rolling average and streak",
        responses={200: OpenApiResponse(description='{"ts":ms,"symbols":{"BTC":{score,bias,rolling_avg,...}}}')},
    )
    def get(self, request: Request) -> Response:
        return Response(selectors.conviction_list(now_ms=clock.now_ms()))


class TriggerInput(serializers.Serializer):
    symbol = serializers.CharField(max_length=20)


class AutonomousTriggerApi(APIView):
    @extend_schema(
        summary="Ask the server to evaluate every autonomous-execution gate on its latest reading and trade",
        description="Nothing from the browser is trusted but the symbol: the latest server-side reading, streak, "
        "auto mode, size from the account's equity and limits, cooldown, concurrency, kill switch and breakers are "
        "checked here. 201/202 placed (order through the execution relay, idempotency key derived from the signal); "
        "422 with `code`/`blocked_by` = the first gate that blocks and `gates` = every gate.",
        request=TriggerInput,
        responses={201: OpenApiResponse(description="placed"), 422: _ERROR, 400: _ERROR, 401: _ERROR},
    )
    def post(self, request: Request) -> Response:
        user = _user(request)
        ser = TriggerInput(data=request.data)
        ser.is_valid(raise_exception=True)
        outcome = services.autotrade_trigger(user=user, symbol=_symbol(ser.validated_data["symbol"]))
        return Response(outcome.body, status=outcome.status)


class AutoModeInput(serializers.Serializer):
    enabled = serializers.BooleanField()


class AutoModeApi(APIView):
    @extend_schema(
        summary="The signed-in user's auto mode, open auto trades and recent ones (also marks the page as watched)",
        responses={200: inline_serializer("AutoMode", {"auto_mode": serializers.BooleanField()}), 401: _ERROR},
    )
    def get(self, request: Request) -> Response:
        user = _user(request)
        services.presence_touch(user_id=user.pk)
        return Response(_auto_mode_body(user))

    @extend_schema(
        summary="Switch auto mode on/off for the signed-in user",
        request=AutoModeInput,
        responses={200: OpenApiResponse(description="auto mode"), 401: _ERROR},
    )
    def post(self, request: Request) -> Response:
        user = _user(request)
        ser = AutoModeInput(data=request.data)
        ser.is_valid(raise_exception=True)
        services.auto_mode_set(user=user, enabled=ser.validated_data["enabled"])
        return Response(_auto_mode_body(user))


def _auto_mode_body(user: User) -> dict[str, Any]:
    from django.conf import settings

    return {
        "auto_mode": selectors.auto_mode_get(user=user),
        "auto_mode_global": bool(settings.RISK_AUTO_MODE_ENABLED),
        "open_auto_trades": selectors.auto_trades_open_count(user=user),
        "recent": selectors.auto_trades_recent(user=user),
    }
