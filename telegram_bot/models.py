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
