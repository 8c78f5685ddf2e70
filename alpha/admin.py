from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from alpha.models import AlphaSettings, AutoTrade, AutoTradeSettings


@admin.register(AlphaSettings)
class AlphaSettingsAdmin(admin.ModelAdmin):
    """The one settings row: every gate threshold and the engine's AlphaConfig overrides (validated JSON)."""

    list_display = (
        "__str__",
        "min_score_long",
        "max_score_short",
        "min_streak",
        "cooldown_sec",
        "max_concurrent",
        "updated_at",
    )
    fieldsets = (
        (
            "Autonomous execution gates",
            {
                "fields": (
                    "min_score_long",
                    "max_score_short",
                    "min_streak",
                    "min_size_usd",
                    "venue_min_notional_usd",
                    "cooldown_sec",
                    "max_concurrent",
                    "stale_after_ms",
                )
            },
        ),
        ("Display", {"fields": ("reference_equity_usd",)}),
        ("Engine (AlphaConfig overrides, JSON)", {"fields": ("engine_config",)}),
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return not AlphaSettings.objects.exists()

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(AutoTradeSettings)
class AutoTradeSettingsAdmin(admin.ModelAdmin):
    list_display = ("user", "auto_mode", "updated_at")
    list_filter = ("auto_mode",)
    raw_id_fields = ("user",)


@admin.register(AutoTrade)
class AutoTradeAdmin(admin.ModelAdmin):
    list_display = (
        "created_at",
        "user",
        "symbol",
        "side",
        "score",
        "streak",
        "size_usd",
        "status",
        "order_id",
        "trigger",
    )
    list_filter = ("status", "side", "trigger")
    search_fields = ("symbol", "idempotency_key", "correlation_id")
    readonly_fields = tuple(f.name for f in AutoTrade._meta.fields)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
