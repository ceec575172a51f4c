"""The Telegram whitelist and the bot's per-chat dialog state."""

from __future__ import annotations

from django.db import models
from django.db.models import Q


class TelegramUser(models.Model):
    """A whitelisted Telegram user. Nobody else gets any answer from the bot."""

    class Role(models.TextChoices):
        ADMIN = "admin", "Admin (changes settings)"
        TRADER = "trader", "Trader (approves and trades)"
        VIEWER = "viewer", "Viewer (sees only)"

    telegram_id = models.BigIntegerField(unique=True, help_text="Numeric Telegram user id (not the @username).")
    username = models.CharField(max_length=64, blank=True)
    display_name = models.CharField(max_length=128, blank=True)
    role = models.CharField(max_length=8, choices=Role.choices, default=Role.VIEWER)
    is_active = models.BooleanField(default=True, help_text="Off: the bot ignores this user.")
    notify_signals = models.BooleanField(default=True, help_text="New and rejected signals.")
    notify_orders = models.BooleanField(default=True, help_text="Orders placed, filled or failed.")
    notify_risk = models.BooleanField(default=True, help_text="Risk breaches, kill switch, exchange trouble.")
    notify_reports = models.BooleanField(default=True, help_text="Scheduled daily and weekly reports.")
    last_seen_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["telegram_id"]
        verbose_name = "Telegram user"

    def __str__(self) -> str:
        name = f"@{self.username}" if self.username else self.display_name or "?"
        return f"{name} ({self.telegram_id}, {self.role})"


class BotSession(models.Model):
    """A bot conversation: which dialog step a chat is in and the data typed so far."""

    name = models.CharField(max_length=64, unique=True, help_text="TRADING_DEFAULT_SESSION names the default one.")
    account = models.ForeignKey(
        "trading.TradingAccount", on_delete=models.SET_NULL, null=True, blank=True, related_name="bot_sessions"
    )
    telegram_user = models.ForeignKey(
        TelegramUser, on_delete=models.SET_NULL, null=True, blank=True, related_name="sessions"
    )
    chat_id = models.BigIntegerField(null=True, blank=True)
    state = models.CharField(max_length=64, default="idle")
    pending_data = models.JSONField(default=dict, blank=True)
    is_active = models.BooleanField(default=True)
    last_activity_at = models.DateTimeField(auto_now=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-last_activity_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["chat_id"], condition=Q(chat_id__isnull=False), name="bot_session_one_per_chat"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.state})"


class Notification(models.Model):
    """The outbox: one message for one recipient about one event, sent by the bot process's sender.

    Rows are written in the same transaction as the change they report (or derived from the
    AuditEvent that change committed, see notifications/fanout.py). UniqueConstraint(telegram_user,
    dedupe_key) makes every writer idempotent: the same event is never queued twice for one user.
    """

    class Kind(models.TextChoices):
        SIGNAL_CARD = "signal_card", "Approval card"
        SIGNAL_RECEIVED = "signal_received", "Signal and risk decision"
        SIGNAL_REJECTED = "signal_rejected", "Signal rejected"
        SIGNAL_FAILED = "signal_failed", "Signal failed"
        ORDER_PLACED = "order_placed", "Order placed"
        ORDER_FILLED = "order_filled", "Order filled"
        ORDER_FAILED = "order_failed", "Order failed or rejected"
        POSITION_CLOSED = "position_closed", "Position closed"
        ALERT = "alert", "Warning or error"
        REPORT = "report", "Report"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending (handed to Telegram, answer not recorded yet)"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed (will not be retried)"

    telegram_user = models.ForeignKey(TelegramUser, on_delete=models.CASCADE, related_name="notifications")
    chat_id = models.BigIntegerField()
    kind = models.CharField(max_length=32, choices=Kind.choices)
    dedupe_key = models.CharField(max_length=200, help_text="Names the event; one row per user and event.")
    text = models.TextField()
    reply_markup = models.JSONField(null=True, blank=True, help_text="Inline keyboard rows, as Bot API JSON.")
    signal = models.ForeignKey(
        "signals_app.Signal", on_delete=models.SET_NULL, null=True, blank=True, related_name="telegram_notifications"
    )
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True, help_text="Not sent before this time.")
    sending_at = models.DateTimeField(null=True, blank=True, help_text="When the last send was started.")
    last_error = models.TextField(blank=True)
    message_id = models.BigIntegerField(null=True, blank=True, help_text="Telegram's id of the (first) message.")
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["telegram_user", "dedupe_key"], name="notification_once_per_user"),
        ]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="notification_due")]

    def __str__(self) -> str:
        return f"{self.kind} to {self.chat_id} ({self.status})"


class NotificationCursor(models.Model):
    """How far the fan-out has read the audit trail: the last AuditEvent id seen, and the ids below it
    not seen yet (a concurrent transaction that took a lower id may still commit)."""

    name = models.CharField(max_length=32, unique=True)
    last_audit_id = models.BigIntegerField(default=0)
    pending_gaps = models.JSONField(default=dict, blank=True, help_text="Unseen audit id -> first seen missing.")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.name} at audit #{self.last_audit_id}"


class SignalCard(models.Model):
    """Where a signal's approval card was sent, so it can be edited after approve, reject, edit or expiry."""

    class State(models.TextChoices):
        OPEN = "open", "Open (buttons shown)"
        CLOSED = "closed", "Closed (final, no buttons)"

    signal = models.ForeignKey("signals_app.Signal", on_delete=models.CASCADE, related_name="telegram_cards")
    telegram_user = models.ForeignKey(TelegramUser, on_delete=models.CASCADE, related_name="signal_cards")
    chat_id = models.BigIntegerField()
    message_id = models.BigIntegerField()
    state = models.CharField(max_length=8, choices=State.choices, default=State.OPEN)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["signal", "chat_id"], name="signal_card_one_per_chat")]

    def __str__(self) -> str:
        return f"card of signal {self.signal_id} in chat {self.chat_id} ({self.state})"
