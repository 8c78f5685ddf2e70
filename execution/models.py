"""Execution state: orders, fills, positions, the append-only audit chain, risk limits, trading controls,
circuit breakers and idempotency records.

Money and sizes are `Decimal` (30 digits, 10 places). Timestamps are tz-aware UTC.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone


class OrderState(models.TextChoices):
    PENDING = "pending", "Pending (stored, not sent)"
    SUBMITTED = "submitted", "Submitted (sent, no answer yet)"
    RESTING = "resting", "Resting"
    PARTIALLY_FILLED = "partially_filled", "Partially filled"
    FILLED = "filled", "Filled"
    CANCELLED = "cancelled", "Cancelled"
    REJECTED = "rejected", "Rejected"
    UNKNOWN = "unknown", "Unknown (outcome not known; reconciled by cloid)"


OPEN_STATES = (OrderState.PENDING, OrderState.SUBMITTED, OrderState.RESTING, OrderState.PARTIALLY_FILLED)
UNSETTLED_STATES = (*OPEN_STATES, OrderState.UNKNOWN)
FINAL_STATES = (OrderState.FILLED, OrderState.CANCELLED, OrderState.REJECTED)


class OrderType(models.TextChoices):
    LIMIT = "limit", "Limit"
    MARKET = "market", "Market (IOC at a bounded price)"
    TAKE_PROFIT = "tp", "Take-profit trigger"
    STOP_LOSS = "sl", "Stop-loss trigger"


class Side(models.TextChoices):
    BUY = "buy", "Buy"
    SELL = "sell", "Sell"


class Order(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="orders")
    idempotency_key = models.CharField(max_length=128, blank=True, default="")
    cloid = models.CharField(max_length=34, unique=True, help_text="0x + 32 hex, derived from (user, key)")
    correlation_id = models.CharField(max_length=64, db_index=True)
    symbol = models.CharField(max_length=32)
    side = models.CharField(max_length=4, choices=Side.choices)
    order_type = models.CharField(max_length=8, choices=OrderType.choices)
    size = models.DecimalField(max_digits=30, decimal_places=10)
    price = models.DecimalField(max_digits=30, decimal_places=10, null=True, blank=True)
    trigger_price = models.DecimalField(max_digits=30, decimal_places=10, null=True, blank=True)
    tif = models.CharField(max_length=8, default="Gtc")
    reduce_only = models.BooleanField(default=False)
    leverage = models.PositiveIntegerField(null=True, blank=True)
    grouping = models.CharField(max_length=16, default="na")
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children")
    replaces = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    source = models.CharField(max_length=16, default="manual")
    state = models.CharField(max_length=20, choices=OrderState.choices, default=OrderState.PENDING)
    venue_oid = models.BigIntegerField(null=True, blank=True, db_index=True)
    venue_status = models.CharField(max_length=64, blank=True, default="")
    reject_reason = models.CharField(max_length=300, blank=True, default="")
    filled_size = models.DecimalField(max_digits=30, decimal_places=10, default=0)
    avg_fill_price = models.DecimalField(max_digits=30, decimal_places=10, null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    submitted_at = models.DateTimeField(null=True, blank=True)
    acked_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-created_at",)
        indexes = (models.Index(fields=("user", "state")), models.Index(fields=("state", "updated_at")))

    def __str__(self) -> str:
        return f"{self.side} {self.size} {self.symbol} ({self.state})"

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES


class Fill(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="fills")
    order = models.ForeignKey(Order, null=True, blank=True, on_delete=models.SET_NULL, related_name="fills")
    symbol = models.CharField(max_length=32)
    side = models.CharField(max_length=4, choices=Side.choices)
    price = models.DecimalField(max_digits=30, decimal_places=10)
    size = models.DecimalField(max_digits=30, decimal_places=10)
    fee = models.DecimalField(max_digits=30, decimal_places=10, default=0)
    closed_pnl = models.DecimalField(max_digits=30, decimal_places=10, default=0)
    start_position = models.DecimalField(max_digits=30, decimal_places=10, default=0)
    direction = models.CharField(max_length=32, blank=True, default="")
    venue_oid = models.BigIntegerField(null=True, blank=True)
    tid = models.BigIntegerField()
    tx_hash = models.CharField(max_length=80, blank=True, default="")
    crossed = models.BooleanField(default=False)
    time = models.DateTimeField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("-time", "-id")
        constraints = (models.UniqueConstraint(fields=("user", "tid", "venue_oid"), name="fill_unique_per_user"),)
        indexes = (models.Index(fields=("user", "time")),)

    def __str__(self) -> str:
        return f"fill {self.side} {self.size} {self.symbol} @ {self.price}"


class PositionSnapshot(models.Model):
    """The venue's view of a position (clearinghouseState under the master address), as last reconciled."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="positions")
    symbol = models.CharField(max_length=32)
    size = models.DecimalField(max_digits=30, decimal_places=10, help_text="signed: > 0 long, < 0 short")
    entry_price = models.DecimalField(max_digits=30, decimal_places=10, null=True, blank=True)
    position_value = models.DecimalField(max_digits=30, decimal_places=10, default=0)
    unrealized_pnl = models.DecimalField(max_digits=30, decimal_places=10, default=0)
    liquidation_price = models.DecimalField(max_digits=30, decimal_places=10, null=True, blank=True)
    margin_used = models.DecimalField(max_digits=30, decimal_places=10, default=0)
    leverage = models.PositiveIntegerField(null=True, blank=True)
    leverage_type = models.CharField(max_length=16, blank=True, default="")
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("symbol",)
        constraints = (models.UniqueConstraint(fields=("user", "symbol"), name="position_unique_per_user"),)

    def __str__(self) -> str:
        return f"{self.symbol} {self.size}"


class AuditRecord(models.Model):
    """Append-only, hash-chained. PostgreSQL triggers refuse UPDATE/DELETE/TRUNCATE (migration 0002); the ORM
    refuses them everywhere (see `save`/`delete`). row_hash = sha256(prev_hash || canonical JSON)."""

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    correlation_id = models.CharField(max_length=64, db_index=True, blank=True, default="")
    user_id_ref = models.BigIntegerField(
        null=True, blank=True, db_index=True, help_text="user id (no FK: kept forever)"
    )
    actor = models.CharField(max_length=64, blank=True, default="")
    event = models.CharField(max_length=64, db_index=True)
    data = models.JSONField(default=dict)
    prev_hash = models.CharField(max_length=64)
    row_hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ("id",)

    def __str__(self) -> str:
        return f"#{self.pk} {self.event} {self.correlation_id}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None and not kwargs.get("force_insert"):
            raise RuntimeError("audit records are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise RuntimeError("audit records are append-only")


class VenueEnvironment(models.TextChoices):
    SIM = "sim", "Simulator"
    TESTNET = "testnet", "Testnet"
    MAINNET = "mainnet", "Mainnet"


class RiskLimits(models.Model):
    """Global defaults per venue environment (user is null) and per-user overrides."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="risk_limits"
    )
    environment = models.CharField(max_length=16, choices=VenueEnvironment.choices)
    max_position_usd = models.DecimalField(max_digits=30, decimal_places=10)
    max_total_exposure_usd = models.DecimalField(max_digits=30, decimal_places=10)
    max_daily_loss_usd = models.DecimalField(max_digits=30, decimal_places=10)
    stop_loss_pct = models.DecimalField(max_digits=30, decimal_places=10)
    max_drawdown_pct = models.DecimalField(max_digits=30, decimal_places=10)
    max_leverage = models.PositiveIntegerField()
    max_slippage_bps = models.PositiveIntegerField()
    consecutive_losses = models.PositiveIntegerField(default=3)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "risk limits"
        constraints = (
            models.UniqueConstraint(fields=("user", "environment"), name="risk_limits_unique"),
            models.UniqueConstraint(
                fields=("environment",), condition=models.Q(user__isnull=True), name="risk_limits_one_default"
            ),
        )

    def __str__(self) -> str:
        return f"limits {self.environment} {'default' if self.user_id is None else self.user_id}"


class TradingControls(models.Model):
    """One row (pk=1): the runtime switches. Read from the DB on every submit (no in-process copy)."""

    server_trading_enabled = models.BooleanField()
    admin_only = models.BooleanField()
    auto_trading_halted = models.BooleanField(default=False)
    kill_switch_engaged = models.BooleanField(default=False)
    kill_reason = models.CharField(max_length=300, blank=True, default="")
    kill_by = models.CharField(max_length=64, blank=True, default="")
    kill_at = models.DateTimeField(null=True, blank=True)
    updated_by = models.CharField(max_length=64, blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "trading controls"
        permissions = [("trigger_emergency_stop", "Can engage the kill switch (emergency stop)")]

    def __str__(self) -> str:
        return "trading controls"


class BreakerKind(models.TextChoices):
    CONSECUTIVE_LOSSES = "consecutive_losses", "Consecutive losses"
    ERROR_RATE = "error_rate", "Venue error rate"
    DAILY_LOSS = "daily_loss", "Daily loss limit"
    DRAWDOWN = "drawdown", "Max drawdown"
    STALE_DATA = "stale_data", "Stale market data"
    RATE_BUDGET = "rate_budget", "Venue rate budget exhausted"


# Per-user where the cause is the user's own trading; global where it is the venue's or the feed's.
USER_BREAKERS = frozenset({BreakerKind.CONSECUTIVE_LOSSES, BreakerKind.DAILY_LOSS, BreakerKind.DRAWDOWN})
GLOBAL_BREAKERS = frozenset({BreakerKind.ERROR_RATE, BreakerKind.RATE_BUDGET, BreakerKind.STALE_DATA})


class CircuitBreaker(models.Model):
    """A breaker per kind; `user` null = global (error rate, stale data, rate budget), else the user's own
    (consecutive losses, daily loss, drawdown).

    closed: tripped=False. open: tripped and now < cooldown_until (new orders that add risk are refused).
    half-open: tripped and the cooldown passed — orders pass again and the next outcome closes it or trips it again.
    """

    kind = models.CharField(max_length=32, choices=BreakerKind.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="breakers"
    )
    tripped = models.BooleanField(default=False)
    reason = models.CharField(max_length=300, blank=True, default="")
    details = models.JSONField(default=dict, blank=True)
    tripped_at = models.DateTimeField(null=True, blank=True)
    reset_by = models.CharField(max_length=64, blank=True, default="")
    reset_reason = models.CharField(max_length=300, blank=True, default="")
    reset_at = models.DateTimeField(null=True, blank=True)
    cooldown_until = models.DateTimeField(null=True, blank=True, help_text="half-opens on its own after this")
    trips = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = (
            models.UniqueConstraint(fields=("kind", "user"), name="breaker_unique"),
            models.UniqueConstraint(fields=("kind",), condition=models.Q(user__isnull=True), name="breaker_global"),
        )

    def __str__(self) -> str:
        return f"{self.kind} {'global' if self.user_id is None else self.user_id} {self.state_at(timezone.now())}"

    def state_at(self, now: Any) -> str:
        if not self.tripped:
            return "closed"
        if self.cooldown_until is not None and now >= self.cooldown_until:
            return "half_open"
        return "open"


class EquityPeak(models.Model):
    """The user's equity high-water mark since the drawdown breaker was last reset (max drawdown is measured from
    it). A withdrawal looks like a drawdown: an admin resets the breaker (and with it the peak) after one."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="equity_peak")
    peak_equity = models.DecimalField(max_digits=30, decimal_places=10)
    peak_at = models.DateTimeField(default=timezone.now)
    last_equity = models.DecimalField(max_digits=30, decimal_places=10, null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"peak {self.peak_equity} ({self.user_id})"


class IdempotencyStatus(models.TextChoices):
    IN_FLIGHT = "in_flight", "In flight"
    DONE = "done", "Done"


class IdempotencyRecord(models.Model):
    """A claimed Idempotency-Key (scoped per user), its request hash and the stored first response."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=128)
    endpoint = models.CharField(max_length=32)
    request_hash = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=IdempotencyStatus.choices, default=IdempotencyStatus.IN_FLIGHT)
    response_status = models.PositiveIntegerField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    owner = models.CharField(max_length=128, blank=True, default="", help_text="host:pid of the process running it")

    class Meta:
        constraints = (models.UniqueConstraint(fields=("user", "key"), name="idempotency_unique_per_user"),)

    def __str__(self) -> str:
        return f"{self.user_id}:{self.key} {self.status}"


class ProtectionKind(models.TextChoices):
    TRAILING_STOP = "trailing_stop", "Trailing stop"


class PositionProtection(models.Model):
    """A trailing stop kept by the protection worker: it moves a venue stop-loss trigger behind the best price."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="protections")
    symbol = models.CharField(max_length=32)
    kind = models.CharField(max_length=16, choices=ProtectionKind.choices, default=ProtectionKind.TRAILING_STOP)
    trail_pct = models.DecimalField(max_digits=30, decimal_places=10)
    best_price = models.DecimalField(max_digits=30, decimal_places=10, null=True, blank=True)
    stop_price = models.DecimalField(max_digits=30, decimal_places=10, null=True, blank=True)
    stop_order = models.ForeignKey(Order, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = (
            models.UniqueConstraint(
                fields=("user", "symbol", "kind"), condition=models.Q(active=True), name="protection_one_active"
            ),
        )

    def __str__(self) -> str:
        return f"trailing {self.trail_pct}% {self.symbol}"


class StreamCursor(models.Model):
    """The last sequence number of a user's private stream. Durable: numbers never go backwards or repeat, whatever
    restarts (Redis only delivers; the sequence and the replay live here)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, primary_key=True, on_delete=models.CASCADE, related_name="stream_cursor"
    )
    last_seq = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"stream {self.user_id} @ {self.last_seq}"


class PrivateEvent(models.Model):
    """One event of a user's private stream (order, fill, account, risk updates), kept for the REST resync and
    delivered through the broadcaster; `delivered_at` null = not handed to the broadcaster yet (the outbox sweep
    delivers it when Redis is back)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    seq = models.BigIntegerField()
    event_type = models.CharField(max_length=32)
    symbol = models.CharField(max_length=40, default="*")
    source = models.CharField(max_length=32, default="execution")
    data = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("user_id", "seq")
        constraints = (models.UniqueConstraint(fields=("user", "seq"), name="private_event_seq_unique"),)
        indexes = (models.Index(fields=("delivered_at", "created_at")),)

    def __str__(self) -> str:
        return f"{self.user_id}#{self.seq} {self.event_type}"
