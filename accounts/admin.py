"""Django admin on the wallet session: no password form (its login page sends people to wallet sign-in), access
by role (User.is_staff / has_perm), agent keys never shown."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from accounts import views
from accounts.models import AgentWallet, User, UserSession

admin.site.login = views.admin_login  # type: ignore[method-assign]
admin.site.site_header = "HyperSentry administration"


@admin.register(User)
class UserAdmin(admin.ModelAdmin):
    list_display = ("address", "role", "is_active", "date_joined", "last_login")
    list_filter = ("role", "is_active")
    search_fields = ("address",)
    fields = ("address", "role", "is_active", "date_joined", "last_login")
    readonly_fields = ("address", "date_joined", "last_login")


@admin.register(UserSession)
class UserSessionAdmin(admin.ModelAdmin):
    list_display = ("public_id", "user", "created_at", "last_seen", "expires_at", "ip", "revoked_at", "end_reason")
    list_filter = ("end_reason", "is_demo")
    search_fields = ("user__address", "public_id", "ip")
    exclude = ("session_key",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(AgentWallet)
class AgentWalletAdmin(admin.ModelAdmin):
    list_display = ("agent_address", "user", "status", "valid_until", "approved_at", "ended_at")
    list_filter = ("status", "hyperliquid_chain")
    search_fields = ("agent_address", "user__address")
    exclude = ("ciphertext", "key_id")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
