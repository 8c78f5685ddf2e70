"""Django admin: controls, limits and breakers editable by admins; orders, fills and the audit log read-only."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils import timezone

from accounts.models import User
from execution.models import (
    AuditRecord,
    CircuitBreaker,
    Fill,
    IdempotencyRecord,
    Order,
    PositionProtection,
    PositionSnapshot,
    RiskLimits,
    TradingControls,
)
from execution.services.breakers import breaker_reset
from execution.services.controls import trading_configure
from execution.services.killswitch import killswitch_disengage, killswitch_engage
from kernel.errors import ApplicationError


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(AuditRecord)
class AuditRecordAdmin(ReadOnlyAdmin):
    list_display = ("id", "created_at", "event", "actor", "user_id_ref", "correlation_id", "row_hash")
    list_filter = ("event", "actor", "created_at")
    search_fields = ("correlation_id", "event", "actor", "row_hash")
    readonly_fields = ("created_at", "correlation_id", "user_id_ref", "actor", "event", "data", "prev_hash", "row_hash")


@admin.register(Order)
class OrderAdmin(ReadOnlyAdmin):
    list_display = ("id", "created_at", "user", "symbol", "side", "order_type", "size", "price", "state", "venue_oid")
    list_filter = ("state", "order_type", "side", "source", "symbol")
    search_fields = ("cloid", "correlation_id", "user__address", "idempotency_key")


@admin.register(Fill)
class FillAdmin(ReadOnlyAdmin):
    list_display = ("id", "time", "user", "symbol", "side", "size", "price", "fee", "closed_pnl")
    list_filter = ("symbol", "side")
    search_fields = ("user__address", "tid")


@admin.register(PositionSnapshot)
class PositionSnapshotAdmin(ReadOnlyAdmin):
    list_display = ("user", "symbol", "size", "entry_price", "unrealized_pnl", "liquidation_price", "updated_at")


@admin.register(IdempotencyRecord)
class IdempotencyRecordAdmin(ReadOnlyAdmin):
    list_display = ("user", "key", "endpoint", "status", "response_status", "created_at")
    list_filter = ("status", "endpoint")


@admin.register(PositionProtection)
class PositionProtectionAdmin(ReadOnlyAdmin):
    list_display = ("user", "symbol", "kind", "trail_pct", "best_price", "stop_price", "active")


def _kill_switch(modeladmin: admin.ModelAdmin, request: HttpRequest, *, engage: bool, flatten: bool = False) -> None:
    """The kill-switch buttons, run as the admin user; a refusal (ApplicationError) is shown as an error message."""
    actor: User = request.user  # type: ignore[assignment]
    try:
        if not engage:
            killswitch_disengage(actor=actor, reason="admin action")
            modeladmin.message_user(request, "Kill switch lifted.", messages.SUCCESS)
            return
        reason = "admin action (flatten)" if flatten else "admin action"
        result = killswitch_engage(actor=actor, reason=reason, flatten=flatten)
    except ApplicationError as exc:
        modeladmin.message_user(request, exc.message, messages.ERROR)
        return
    closed = ", positions closed" if flatten else ""
    modeladmin.message_user(request, f"Kill switch engaged{closed}: {result}", messages.WARNING)


@admin.action(description="Engage the kill switch (cancel all open orders)", permissions=["emergency"])
def engage_kill_switch(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Any]) -> None:
    _kill_switch(modeladmin, request, engage=True)


@admin.action(description="Engage the kill switch AND close all positions", permissions=["emergency"])
def engage_kill_switch_flatten(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Any]) -> None:
    _kill_switch(modeladmin, request, engage=True, flatten=True)


@admin.action(description="Lift the kill switch (admins only)", permissions=["change"])
def disengage_kill_switch(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Any]) -> None:
    _kill_switch(modeladmin, request, engage=False)


@admin.register(TradingControls)
class TradingControlsAdmin(admin.ModelAdmin):
    list_display = (
        "server_trading_enabled",
        "admin_only",
        "kill_switch_engaged",
        "kill_reason",
        "kill_by",
        "kill_at",
        "updated_by",
        "updated_at",
    )
    readonly_fields = (
        "kill_switch_engaged",
        "kill_reason",
        "kill_by",
        "kill_at",
        "auto_trading_halted",
        "updated_by",
        "updated_at",
    )
    actions = (engage_kill_switch, engage_kill_switch_flatten, disengage_kill_switch)

    def has_emergency_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("execution.trigger_emergency_stop"))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """The switches are the admins' (as the service says); the kill-switch actions have their own permission."""
        return bool(getattr(request.user, "is_admin", False)) and super().has_change_permission(request, obj)

    def save_model(self, request: HttpRequest, obj: TradingControls, form: Any, change: bool) -> None:
        """One path for the switches: the service (row lock, before and after in the audit), never a plain save."""
        row = trading_configure(
            actor=request.user,  # type: ignore[arg-type]
            server_trading_enabled=obj.server_trading_enabled,
            admin_only=obj.admin_only,
            reason=f"Django admin ({', '.join(form.changed_data) or 'no change'})",
        )
        obj.refresh_from_db()
        assert obj.pk == row.pk


@admin.register(RiskLimits)
class RiskLimitsAdmin(admin.ModelAdmin):
    list_display = (
        "environment",
        "user",
        "max_position_usd",
        "max_total_exposure_usd",
        "max_daily_loss_usd",
        "max_leverage",
        "max_slippage_bps",
        "consecutive_losses",
    )
    list_filter = ("environment",)


@admin.action(description="Reset selected breakers (asks for a reason)", permissions=["change"])
def reset_breakers(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[CircuitBreaker]
) -> TemplateResponse | None:
    """The admin override: an intermediate page asks for the reason (audited), then resets each breaker."""

    reason = (request.POST.get("reset_reason") or "").strip()
    if not request.POST.get("apply") or not reason:
        context = {
            **modeladmin.admin_site.each_context(request),
            "breakers": list(queryset.select_related("user")),
            "error": "A reason is required." if request.POST.get("apply") else "",
            "title": "Reset circuit breakers",
        }
        return TemplateResponse(request, "admin/execution/breaker_reset.html", context)
    done = 0
    for row in queryset.select_related("user"):
        try:
            breaker_reset(actor=request.user, kind=row.kind, user=row.user, reason=reason)  # type: ignore[arg-type]
            done += 1
        except ApplicationError as exc:
            modeladmin.message_user(request, f"{row}: {exc.message}", messages.ERROR)
    modeladmin.message_user(request, f"{done} breaker(s) reset: {reason}", messages.SUCCESS)
    return None


@admin.register(CircuitBreaker)
class CircuitBreakerAdmin(admin.ModelAdmin):
    list_display = (
        "kind",
        "user",
        "tripped",
        "state",
        "reason",
        "tripped_at",
        "cooldown_until",
        "trips",
        "reset_by",
        "reset_reason",
    )
    list_filter = ("kind", "tripped")
    readonly_fields = (
        "kind",
        "user",
        "tripped",
        "reason",
        "details",
        "tripped_at",
        "cooldown_until",
        "trips",
        "reset_by",
        "reset_reason",
        "reset_at",
    )
    actions = (reset_breakers,)

    @admin.display(description="state")
    def state(self, obj: CircuitBreaker) -> str:
        return obj.state_at(timezone.now())

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
