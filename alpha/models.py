"""Alpha's persistent state: the gate settings (one row, edited in the admin), per-user auto mode, and the
record of every autonomous trade (what the cooldown and concurrency gates count)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, ClassVar

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from alpha.engine import AlphaConfig, AlphaConfigError


def validate_engine_config(value: Any) -> None:
    """The JSON must be accepted by AlphaConfig.from_dict (unknown keys, wrong types, bad orderings fail)."""
    if not isinstance(value, dict):
        raise ValidationError("engine_config must be a JSON object of AlphaConfig fields", code="alpha_config_invalid")
    try:
        AlphaConfig.from_dict(value)
    except (AlphaConfigError, TypeError, ValueError) as exc:
        raise ValidationError(f"invalid engine config: {exc}", code="alpha_config_invalid") from None


class AlphaSettings(models.Model):
    """One row (pk=1). Every autonomous-execution gate threshold and the engine's AlphaConfig overrides."""

    min_score_long = models.FloatField(
        default=65.0,
        validators=[MinValueValidator(50.0), MaxValueValidator(100.0)],
        help_text="auto LONG needs score >= this (seed §22: 65)",
    )
    max_score_short = models.FloatField(
        default=35.0,
        validators=[MinValueValidator(0.0), MaxValueValidator(50.0)],
        help_text="auto SHORT needs score <= this (mirror of the long threshold: 35)",
    )
    min_streak = models.PositiveIntegerField(
        default=5, validators=[MinValueValidator(1)], help_text="consecutive same-side readings (server-side)"
    )
    min_size_usd = models.DecimalField(max_digits=14, decimal_places=2, default=Decimal("5"))
    venue_min_notional_usd = models.DecimalField(
        max_digits=14, decimal_places=2, default=Decimal("10"), help_text="Hyperliquid rejects orders under $10"
    )
    cooldown_sec = models.PositiveIntegerField(default=60, help_text="per user and symbol, between auto trades")
    max_concurrent = models.PositiveIntegerField(default=3, help_text="open auto trades per user")
    stale_after_ms = models.PositiveIntegerField(
        default=5000, validators=[MinValueValidator(200)], help_text="a reading older than this is not tradable"
    )
    reference_equity_usd = models.DecimalField(
        max_digits=14,
        decimal_places=2,
        default=Decimal("10000"),
        help_text="equity used for the public 'suggested size' of visitors who are not signed in",
    )
    engine_config = models.JSONField(
        default=dict,
        blank=True,
        validators=[validate_engine_config],
        help_text='AlphaConfig overrides as JSON, e.g. {"long_threshold": 56}; validated with AlphaConfig.from_dict',
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "alpha settings"
        verbose_name_plural = "alpha settings"

    def __str__(self) -> str:
        return "alpha settings"

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.pk = 1
        super().save(*args, **kwargs)

    def clean(self) -> None:
        if self.max_score_short >= self.min_score_long:
            raise ValidationError("max_score_short must be below min_score_long")


class AutoTradeSettings(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="auto_trade_settings")
    auto_mode = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "auto-trade settings"
        verbose_name_plural = "auto-trade settings"

    def __str__(self) -> str:
        return f"auto mode {'on' if self.auto_mode else 'off'} for {self.user_id}"


class AutoTradeStatus(models.TextChoices):
    PENDING = "pending"  # claimed, order being submitted
    OPEN = "open"  # order accepted by the venue; counts towards concurrency until the position is gone
    UNKNOWN = "unknown"  # outcome unknown (reconciliation resolves the order); counts as open
    REJECTED = "rejected"  # risk or venue said no
    FAILED = "failed"  # the attempt raised
    CLOSED = "closed"  # the position it opened is gone


ACTIVE_STATUSES: tuple[str, ...] = (AutoTradeStatus.PENDING, AutoTradeStatus.OPEN, AutoTradeStatus.UNKNOWN)


class AutoTrade(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="auto_trades")
    symbol = models.CharField(max_length=32)
    side = models.CharField(max_length=5)  # LONG | SHORT
    signal_ts_ms = models.BigIntegerField(help_text="when the signal's same-side streak started (epoch ms)")
    reading_ts_ms = models.BigIntegerField()
    score = models.FloatField()
    streak = models.PositiveIntegerField()
    size_usd = models.DecimalField(max_digits=14, decimal_places=2)
    idempotency_key = models.CharField(max_length=128)
    correlation_id = models.CharField(max_length=64)
    order_id = models.BigIntegerField(null=True, blank=True, help_text="execution Order id")
    trigger = models.CharField(max_length=16, default="worker")  # worker | api
    status = models.CharField(max_length=10, choices=AutoTradeStatus.choices, default=AutoTradeStatus.PENDING)
    reason = models.CharField(max_length=300, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at",)
        indexes: ClassVar[list[models.Index]] = [
            models.Index(fields=("user", "symbol", "created_at")),
            models.Index(fields=("user", "status")),
        ]
        constraints = (models.UniqueConstraint(fields=("user", "idempotency_key"), name="autotrade_unique_signal"),)

    def __str__(self) -> str:
        return f"{self.side} {self.symbol} for {self.user_id} ({self.status})"
