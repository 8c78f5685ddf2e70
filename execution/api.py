"""DRF endpoints of the execution app: thin — parse, call one service/selector, shape the answer."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import User
from accounts.selectors import session_is_valid
from execution import risk, selectors
from execution.outcomes import Outcome
from execution.services import breakers, cancels, idempotency, killswitch, modify, protection, relay, risk_inputs, sync
from execution.services.account import account_read
from execution.services.events import jsonable, private_events_since
from execution.services.orders import order_dict
from kernel.contracts.symbols import SYMBOL_HELP, SYMBOL_RE
from kernel.errors import ValidationFailed
from kernel.permissions import signed_in_user
from kernel.ratelimit import Limit, hit

SIDES = ("buy", "sell")


def _user(request: Request) -> User:
    user: User = signed_in_user(request)
    return user


def _session_ok(request: Request) -> bool:
    key = request._request.session.session_key
    return bool(key) and session_is_valid(session_key=key or "")


def _answer(status: int, body: dict[str, Any], *, replayed: bool = False) -> Response:
    resp = Response(body, status=status)
    if replayed:
        resp["Idempotent-Replayed"] = "true"
    retry = body.get("retry_after_s") if isinstance(body, dict) else None
    if status in (429, 503) and isinstance(retry, int | float):
        resp["Retry-After"] = str(max(1, int(retry + 0.999)))
    return resp


def _read_user(request: Request, what: str) -> User:
    """A signed-in user within their read quota for this endpoint (EXECUTION_READS_PER_MIN each): 429 from us, never
    the venue's. Per endpoint, so a terminal refreshing its four panels together gets the full rate on each."""
    user = _user(request)
    limit = Limit(count=settings.EXECUTION_READS_PER_MIN, per_sec=60)
    hit(scope=f"execution.read.{what}", key=str(user.pk), limit=limit)
    return user


POSITIVE = Decimal("0.0000000001")


def _symbol_field() -> serializers.RegexField:
    """The one symbol grammar (markets REST, every stream's envelope): a symbol outside it used to be accepted
    here, and the order's events then could not be published on the owner's private stream."""
    return serializers.RegexField(SYMBOL_RE, error_messages={"invalid": SYMBOL_HELP})


def _price_field() -> serializers.DecimalField:
    return serializers.DecimalField(
        max_digits=30, decimal_places=10, required=False, allow_null=True, min_value=POSITIVE
    )


class OrderInput(serializers.Serializer[Any]):
    symbol = _symbol_field()
    side = serializers.ChoiceField(choices=SIDES)
    type = serializers.ChoiceField(choices=("limit", "market"), default="limit")
    size = _price_field()
    size_usd = _price_field()
    price = _price_field()
    tif = serializers.ChoiceField(choices=("Gtc", "Ioc", "Alo"), default="Gtc")
    reduce_only = serializers.BooleanField(default=False)
    leverage = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=200)
    tp_price = _price_field()
    sl_price = _price_field()

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("size") is None and attrs.get("size_usd") is None:
            raise serializers.ValidationError({"size": "size (coin) or size_usd is required"})
        if attrs.get("type") == "limit" and attrs.get("price") is None:
            raise serializers.ValidationError({"price": "a limit order needs a price"})
        return attrs


def _intent(data: dict[str, Any]) -> risk.OrderIntent:
    def dec(name: str) -> Decimal | None:
        v = data.get(name)
        return None if v is None else Decimal(v).normalize()

    return risk.OrderIntent(
        symbol=data["symbol"],
        is_buy=data["side"] == "buy",
        order_type=data["type"],
        size=dec("size"),
        size_usd=dec("size_usd"),
        price=dec("price") if data["type"] == "limit" else None,
        tif=data["tif"],
        reduce_only=data["reduce_only"],
        leverage=data.get("leverage"),
        tp_price=dec("tp_price"),
        sl_price=dec("sl_price"),
    )


def _run_idempotent(request: Request, *, endpoint: str, payload: Any, run: Callable[[User, str], Outcome]) -> Response:
    """Run a trading action once per Idempotency-Key and answer its outcome (execution.answers) as HTTP."""
    user = _user(request)
    key = request.headers.get("Idempotency-Key")
    replay = {"flag": True}

    def wrapped(k: str) -> Outcome:
        replay["flag"] = False
        return run(user, k)

    def rate_limit() -> None:
        per_min = settings.EXECUTION_CANCELS_PER_MIN if endpoint == "cancel" else settings.EXECUTION_ORDERS_PER_MIN
        hit(scope=f"execution.{endpoint}", key=str(user.pk), limit=Limit(count=per_min, per_sec=60))

    status, body = idempotency.idempotent(
        user=user, key=key, endpoint=endpoint, payload=payload, run=wrapped, before_claim=rate_limit
    )
    return _answer(status, body, replayed=replay["flag"])


class OrderSubmitApi(APIView):
    @extend_schema(request=OrderInput, responses=OpenApiTypes.OBJECT)
    def post(self, request: Request) -> Response:
        user = _user(request)
        ser = OrderInput(data=request.data)
        ser.is_valid(raise_exception=True)
        data = ser.validated_data
        session_ok = _session_ok(request)
        return _run_idempotent(
            request,
            endpoint="order",
            payload=request.data,
            run=lambda u, k: relay.order_submit(
                user=user, key=k, intent=_intent(data), session_authenticated=session_ok
            ),
        )


class OrderPreviewApi(APIView):
    @extend_schema(request=OrderInput, responses=OpenApiTypes.OBJECT)
    def post(self, request: Request) -> Response:
        user = _user(request)
        ser = OrderInput(data=request.data)
        ser.is_valid(raise_exception=True)
        verdict = risk_inputs.order_preview(
            user=user, intent=_intent(ser.validated_data), session_authenticated=_session_ok(request)
        )
        return Response(verdict.as_dict())


class CancelInput(serializers.Serializer[Any]):
    order_id = serializers.IntegerField(required=False, min_value=1)
    cloid = serializers.RegexField(r"^0x[0-9a-fA-F]{32}$", required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "order_id" not in attrs and "cloid" not in attrs:
            raise serializers.ValidationError({"order_id": "order_id or cloid is required"})
        return attrs


class OrderCancelApi(APIView):
    @extend_schema(request=CancelInput, responses=OpenApiTypes.OBJECT)
    def post(self, request: Request) -> Response:
        ser = CancelInput(data=request.data)
        ser.is_valid(raise_exception=True)
        d = ser.validated_data
        return _run_idempotent(
            request,
            endpoint="cancel",
            payload=request.data,
            run=lambda u, k: cancels.order_cancel(user=u, order_id=d.get("order_id"), cloid=d.get("cloid")),
        )


class ModifyInput(serializers.Serializer[Any]):
    order_id = serializers.IntegerField(min_value=1)
    price = _price_field()
    trigger_price = _price_field()
    size = _price_field()


class OrderModifyApi(APIView):
    @extend_schema(request=ModifyInput, responses=OpenApiTypes.OBJECT)
    def post(self, request: Request) -> Response:
        ser = ModifyInput(data=request.data)
        ser.is_valid(raise_exception=True)
        d = ser.validated_data
        session_ok = _session_ok(request)
        return _run_idempotent(
            request,
            endpoint="modify",
            payload=request.data,
            run=lambda u, k: modify.order_modify(
                user=u,
                key=k,
                order_id=d["order_id"],
                price=_dec(d.get("price")),
                trigger_price=_dec(d.get("trigger_price")),
                size=_dec(d.get("size")),
                session_authenticated=session_ok,
            ),
        )


class PositionCloseInput(serializers.Serializer[Any]):
    symbol = _symbol_field()


class PositionCloseApi(APIView):
    @extend_schema(request=PositionCloseInput, responses=OpenApiTypes.OBJECT)
    def post(self, request: Request) -> Response:
        ser = PositionCloseInput(data=request.data)
        ser.is_valid(raise_exception=True)
        symbol = ser.validated_data["symbol"]
        return _run_idempotent(
            request,
            endpoint="close",
            payload=request.data,
            run=lambda u, k: modify.position_close(user=u, key=k, symbol=symbol),
        )


class ProtectionInput(serializers.Serializer[Any]):
    symbol = _symbol_field()
    tp_price = _price_field()
    sl_price = _price_field()
    trailing_pct = serializers.DecimalField(
        max_digits=8, decimal_places=4, required=False, allow_null=True, min_value=Decimal("0.1"), max_value=Decimal(50)
    )


class ProtectionApi(APIView):
    @extend_schema(request=ProtectionInput, responses=OpenApiTypes.OBJECT)
    def post(self, request: Request) -> Response:
        ser = ProtectionInput(data=request.data)
        ser.is_valid(raise_exception=True)
        d = ser.validated_data
        dec = _dec
        return _run_idempotent(
            request,
            endpoint="protection",
            payload=request.data,
            run=lambda u, k: protection.protection_set(
                user=u,
                key=k,
                symbol=d["symbol"],
                tp_price=dec(d.get("tp_price")),
                sl_price=dec(d.get("sl_price")),
                trailing_pct=dec(d.get("trailing_pct")),
            ),
        )


def _dec(v: Any) -> Decimal | None:
    return None if v is None else Decimal(v).normalize()


class OrderListApi(APIView):
    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        user = _read_user(request, "orders")
        open_only = request.query_params.get("open") in ("1", "true")
        rows = selectors.order_list(user=user, open_only=open_only)
        return Response({"orders": [order_dict(o) for o in rows]})


class FillListApi(APIView):
    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        user = _read_user(request, "fills")
        return Response({"fills": [jsonable(sync.fill_dict(f)) for f in selectors.fill_list(user=user)]})


class PositionListApi(APIView):
    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        """Positions from the venue (master address), cached briefly; the last known ones with stale=true when the
        venue cannot be asked (budget, 429, timeout) — never an error for that."""
        user = _read_user(request, "positions")
        summary = sync.account_summary(acct=account_read(user=user))
        return Response({k: summary[k] for k in ("positions", "time_ms", "stale", "as_of_ms", "stale_reason")})


class AccountApi(APIView):
    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        """Equity, margin and PnL from the venue under the MASTER address (never the agent's); stale=true with the
        last known figures when the venue cannot be asked."""
        user = _read_user(request, "account")
        summary = sync.account_summary(acct=account_read(user=user))
        summary["address"] = user.address
        summary["daily_realized_pnl"] = str(selectors.daily_pnl(user=user))
        return Response(summary)


class ResyncApi(APIView):
    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        """The private events after `since` from the durable stream; `gap: true` when some are no longer kept."""
        user = _user(request)
        try:
            since = int(request.query_params.get("since", "0"))
        except ValueError as exc:
            raise ValidationFailed("since must be an integer sequence number") from exc
        result = private_events_since(user_id=user.pk, since=max(0, since))
        return Response({"events": result.events, "gap": result.gap, "last_seq": result.last_seq})


class ControlsApi(APIView):
    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        user = _user(request)
        return Response(selectors.controls_state(user=user))


class KillSwitchInput(serializers.Serializer[Any]):
    action = serializers.ChoiceField(choices=("engage", "disengage"))
    reason = serializers.CharField(max_length=300)
    flatten = serializers.BooleanField(default=False)


class KillSwitchApi(APIView):
    @extend_schema(request=KillSwitchInput, responses=OpenApiTypes.OBJECT)
    def post(self, request: Request) -> Response:
        user = _user(request)
        ser = KillSwitchInput(data=request.data)
        ser.is_valid(raise_exception=True)
        d = ser.validated_data
        if d["action"] == "engage":
            result = killswitch.killswitch_engage(actor=user, reason=d["reason"], flatten=d["flatten"])
        else:
            result = killswitch.killswitch_disengage(actor=user, reason=d["reason"])
        return Response({**result, "controls": selectors.controls_state(user=user)})


class BreakerResetInput(serializers.Serializer[Any]):
    kind = serializers.CharField(max_length=32)
    reason = serializers.CharField(max_length=300)
    user_id = serializers.IntegerField(required=False, allow_null=True)


class BreakerResetApi(APIView):
    @extend_schema(request=BreakerResetInput, responses=OpenApiTypes.OBJECT)
    def post(self, request: Request) -> Response:
        actor = _user(request)
        ser = BreakerResetInput(data=request.data)
        ser.is_valid(raise_exception=True)
        d = ser.validated_data
        breakers.breaker_reset_for(actor=actor, kind=d["kind"], user_id=d.get("user_id"), reason=d["reason"])
        return Response(selectors.controls_state(user=actor))
