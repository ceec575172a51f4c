"""A TradingView alert as received (raw) and as understood (normalised), with its pipeline stage."""

from __future__ import annotations

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import Q
from django.utils import timezone

from trading.models import MarginMode, money_field


class Signal(models.Model):
    class Status(models.TextChoices):
        RECEIVED = "received", "Received"
        VALIDATED = "validated", "Validated"
        AWAITING_CONFIRMATION = "awaiting_confirmation", "Awaiting confirmation"
        APPROVED = "approved", "Approved"
        EXECUTING = "executing", "Executing"
        EXECUTED = "executed", "Executed"
        REJECTED = "rejected", "Rejected"
        FAILED = "failed", "Failed"
        EXPIRED = "expired", "Expired"

    class Action(models.TextChoices):
        BUY = "buy", "Buy / open long"
        SELL = "sell", "Sell / open short"
        CLOSE = "close", "Close all"
        CLOSE_LONG = "close_long", "Close long"
        CLOSE_SHORT = "close_short", "Close short"
        REVERSE = "reverse", "Reverse"
        CANCEL = "cancel", "Cancel open orders"
        UPDATE = "update", "Update SL/TP"

    class OrderType(models.TextChoices):
        MARKET = "market", "Market"
        LIMIT = "limit", "Limit"

    account = models.ForeignKey("trading.TradingAccount", on_delete=models.PROTECT, related_name="signals")
    # Exactly what arrived, before any parsing: the evidence if anything below is disputed.
    raw_body = models.TextField()
    headers = models.JSONField(default=dict, blank=True)
    source_ip = models.GenericIPAddressField(null=True, blank=True)
    idempotency_key = models.CharField(max_length=255, help_text="The alert_id, or a hash of the payload.")
    payload_hash = models.CharField(max_length=64, blank=True, help_text="SHA-256 of the normalised payload.")

    symbol = models.CharField(max_length=64, blank=True, db_index=True)
    action = models.CharField(max_length=16, choices=Action.choices, blank=True)
    size_mode = models.CharField(max_length=16, blank=True)
    size_value = money_field(null=True, blank=True)
    order_type = models.CharField(max_length=8, choices=OrderType.choices, default=OrderType.MARKET)
    price = money_field(null=True, blank=True)
    sl_price = money_field(null=True, blank=True)
    sl_pct = money_field(null=True, blank=True)
    tp_levels = models.JSONField(default=list, blank=True, encoder=DjangoJSONEncoder)
    leverage = models.PositiveSmallIntegerField(null=True, blank=True)
    margin_mode = models.CharField(max_length=16, choices=MarginMode.choices, blank=True)
    confidence = models.DecimalField(max_digits=5, decimal_places=2, null=True, blank=True, help_text="0-100.")
    strategy = models.CharField(max_length=100, blank=True)
    timeframe = models.CharField(max_length=16, blank=True)
    comment = models.TextField(blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    max_lag_seconds = models.PositiveIntegerField(null=True, blank=True, help_text="The alert's own max_lag_s.")
    # Breakeven and trailing options, and legacy per-symbol settings to store on the symbol's profile.
    extras = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)

    status = models.CharField(max_length=24, choices=Status.choices, default=Status.RECEIVED, db_index=True)
    rejection_reason = models.TextField(blank=True)
    received_at = models.DateTimeField(default=timezone.now, db_index=True)
    validated_at = models.DateTimeField(null=True, blank=True)
    risk_checked_at = models.DateTimeField(null=True, blank=True)
    awaiting_confirmation_at = models.DateTimeField(null=True, blank=True)
    confirmation_expires_at = models.DateTimeField(null=True, blank=True)
    approved_at = models.DateTimeField(null=True, blank=True)
    executing_at = models.DateTimeField(null=True, blank=True)
    executed_at = models.DateTimeField(null=True, blank=True)
    rejected_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    expired_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [
            models.Index(fields=["account", "symbol", "received_at"], name="signal_account_symbol_time"),
            models.Index(fields=["status", "received_at"], name="signal_status_time"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["account", "idempotency_key"], name="signal_idempotency_key_per_account"),
            models.CheckConstraint(condition=~Q(idempotency_key=""), name="signal_idempotency_key_not_empty"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.action or '?'} {self.symbol or '?'} ({self.status})"


class SignalLane(models.Model):
    """One account's signals for one symbol run one at a time, in arrival order (a close before the next open).

    A worker holds the lane while it works through the queue; the lease lets another take over if it dies.
    """

    account = models.ForeignKey("trading.TradingAccount", on_delete=models.CASCADE, related_name="signal_lanes")
    symbol = models.CharField(max_length=64)
    holder = models.CharField(max_length=64, blank=True)
    busy_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "symbol"], name="signal_lane_unique")]

    def __str__(self) -> str:
        return f"{self.account_id}:{self.symbol}"
