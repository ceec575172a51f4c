"""Accounts, their limits and symbols, and what the exchange did: orders, fills, positions, balances.

Money and quantities are DecimalField everywhere: 20 digits with 8 after the point covers BingX's
finest step (1e-8) and notional values into the trillions. A null limit means "no limit".
"""

from __future__ import annotations

import zoneinfo
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower

from tvbingx.config import MAX_EXCHANGE_LEVERAGE
from tvbingx.fields import EncryptedTextField


def money_field(**kwargs) -> models.DecimalField:
    return models.DecimalField(max_digits=20, decimal_places=8, **kwargs)


LEVERAGE_VALIDATORS = [MinValueValidator(1), MaxValueValidator(MAX_EXCHANGE_LEVERAGE)]
PERCENT_VALIDATORS = [MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("100"))]


class TradingMode(models.TextChoices):
    DRY_RUN = "dry_run", "Dry run (simulated, no exchange)"
    DEMO = "demo", "Demo (BingX virtual USDT)"
    LIVE = "live", "Live"


class MarginMode(models.TextChoices):
    ISOLATED = "isolated", "Isolated"
    CROSS = "cross", "Cross"


class PositionMode(models.TextChoices):
    ONE_WAY = "one_way", "One-way"
    HEDGE = "hedge", "Hedge"


class Side(models.TextChoices):
    BUY = "buy", "Buy"
    SELL = "sell", "Sell"


class PositionSide(models.TextChoices):
    LONG = "long", "Long"
    SHORT = "short", "Short"


def _default_trading_mode() -> str:
    return settings.TRADING_MODE


def _default_margin_mode() -> str:
    return settings.DEFAULT_MARGIN_MODE


def _default_leverage() -> int:
    return settings.DEFAULT_LEVERAGE


class TradingAccount(models.Model):
    """One exchange key pair (a main account or a sub-account) and how it may trade."""

    AUDIT_SECRET_FIELDS = ("api_key", "api_secret", "webhook_secret_hash", "webhook_secret_previous_hash")

    class Exchange(models.TextChoices):
        BINGX = "bingx", "BingX"

    name = models.CharField(
        max_length=64,
        unique=True,
        validators=[RegexValidator(r"^[A-Za-z0-9_.-]+$", "Letters, digits, dot, dash and underscore only.")],
        help_text="Alerts choose the account with this name in their `account` field.",
    )
    exchange = models.CharField(max_length=16, choices=Exchange.choices, default=Exchange.BINGX)
    mode = models.CharField(max_length=16, choices=TradingMode.choices, default=_default_trading_mode)
    api_key = EncryptedTextField(blank=True, default="")
    api_secret = EncryptedTextField(blank=True, default="")
    subaccount_id = models.CharField(
        "sub-account id", max_length=64, blank=True, help_text="BingX sub-account this key belongs to."
    )
    position_mode = models.CharField(max_length=16, choices=PositionMode.choices, default=PositionMode.ONE_WAY)
    auto_trade = models.BooleanField(
        default=False, help_text="On: valid signals are executed at once. Off: each waits for approval in Telegram."
    )
    trading_enabled = models.BooleanField(
        default=True, help_text="The kill switch. Off: no new entries; closing positions is still allowed."
    )
    default_margin_mode = models.CharField(max_length=16, choices=MarginMode.choices, default=_default_margin_mode)
    default_leverage = models.PositiveSmallIntegerField(default=_default_leverage, validators=LEVERAGE_VALIDATORS)
    # Webhook secrets are stored as SHA-256 digests: the platform only ever compares them.
    webhook_secret_hash = models.CharField(max_length=64, blank=True, editable=False)
    webhook_secret_previous_hash = models.CharField(max_length=64, blank=True, editable=False)
    webhook_secret_rotated_at = models.DateTimeField(null=True, blank=True, editable=False)
    is_active = models.BooleanField(default=True)
    exchange_health = models.CharField(
        max_length=16,
        choices=[("ok", "OK"), ("degraded", "Degraded")],
        default="ok",
        editable=False,
        help_text="Degraded: the circuit breaker opened after repeated failures to reach BingX.",
    )
    exchange_health_reason = models.TextField(blank=True, editable=False)
    exchange_health_changed_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(default_leverage__gte=1) & Q(default_leverage__lte=MAX_EXCHANGE_LEVERAGE),
                name="account_default_leverage_range",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def has_api_credentials(self) -> bool:
        return bool(self.api_key and self.api_secret)


class SymbolProfile(models.Model):
    """Per-account settings for one market; `enabled` is the symbol whitelist."""

    class MarketType(models.TextChoices):
        SWAP = "swap", "Perpetual futures"
        SPOT = "spot", "Spot"

    class SizeMode(models.TextChoices):
        QTY = "qty", "Base quantity"
        USDT = "usdt", "USDT notional"
        MARGIN_USDT = "margin_usdt", "Margin in USDT (x leverage)"
        PCT_EQUITY = "pct_equity", "% of equity"

    class StopLossMode(models.TextChoices):
        NONE = "none", "No default stop loss"
        PCT = "pct", "% from entry"
        PRICE = "price", "Fixed price"

    account = models.ForeignKey(TradingAccount, on_delete=models.CASCADE, related_name="symbol_profiles")
    symbol = models.CharField(max_length=64, help_text="ccxt unified symbol, e.g. BTC/USDT:USDT.")
    enabled = models.BooleanField(default=True, help_text="Whitelisted: signals for this symbol may trade.")
    market_type = models.CharField(max_length=8, choices=MarketType.choices, default=MarketType.SWAP)
    margin_mode = models.CharField(max_length=16, choices=MarginMode.choices, default=_default_margin_mode)
    leverage = models.PositiveSmallIntegerField(default=_default_leverage, validators=LEVERAGE_VALIDATORS)
    max_leverage = models.PositiveSmallIntegerField(default=20, validators=LEVERAGE_VALIDATORS)
    max_position_notional = money_field(null=True, blank=True, help_text="USDT; empty means no limit.")
    order_size_mode = models.CharField(max_length=16, choices=SizeMode.choices, default=SizeMode.USDT)
    order_size_value = money_field(
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0"))],
        help_text="Used when an alert gives no size.",
    )
    stop_loss_mode = models.CharField(max_length=8, choices=StopLossMode.choices, default=StopLossMode.NONE)
    stop_loss_value = money_field(null=True, blank=True, validators=[MinValueValidator(Decimal("0"))])
    breakeven_enabled = models.BooleanField(default=False)
    breakeven_after_tp = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(1), MaxValueValidator(6)], help_text="Move SL to entry after this TP."
    )
    breakeven_offset_pct = money_field(default=Decimal("0"), validators=PERCENT_VALIDATORS)
    trailing_enabled = models.BooleanField(default=False)
    trailing_activation_pct = money_field(null=True, blank=True, validators=PERCENT_VALIDATORS)
    trailing_callback_pct = money_field(null=True, blank=True, validators=PERCENT_VALIDATORS)
    last_synced_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_sync_ok = models.BooleanField(null=True, editable=False)
    last_sync_result = models.TextField(blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["account__name", "symbol"]
        constraints = [
            models.UniqueConstraint(fields=["account", "symbol"], name="symbol_profile_unique_per_account"),
            models.CheckConstraint(
                condition=Q(leverage__lte=models.F("max_leverage")), name="symbol_leverage_within_max"
            ),
            models.CheckConstraint(
                condition=Q(leverage__gte=1) & Q(max_leverage__lte=MAX_EXCHANGE_LEVERAGE),
                name="symbol_leverage_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.account.name}:{self.symbol}"

    def clean(self) -> None:
        errors = {}
        if self.leverage and self.max_leverage and self.leverage > self.max_leverage:
            errors["leverage"] = f"Leverage {self.leverage} is above this symbol's maximum {self.max_leverage}."
        if self.stop_loss_mode != self.StopLossMode.NONE and self.stop_loss_value is None:
            errors["stop_loss_value"] = "Give a value for the default stop loss, or choose no default."
        if self.trailing_enabled and (self.trailing_activation_pct is None or self.trailing_callback_pct is None):
            errors["trailing_callback_pct"] = "Trailing needs both an activation % and a callback %."
        if errors:
            raise ValidationError(errors)


class TakeProfitLevel(models.Model):
    """One of up to six default take-profit levels of a symbol profile."""

    class Mode(models.TextChoices):
        PCT = "pct", "% move from entry"
        PRICE = "price", "Fixed price"

    profile = models.ForeignKey(SymbolProfile, on_delete=models.CASCADE, related_name="take_profit_levels")
    level = models.PositiveSmallIntegerField(validators=[MinValueValidator(1), MaxValueValidator(6)])
    mode = models.CharField(max_length=8, choices=Mode.choices, default=Mode.PCT)
    value = money_field(validators=[MinValueValidator(Decimal("0"))])
    size_pct = models.DecimalField(
        max_digits=6,
        decimal_places=2,
        validators=[MinValueValidator(Decimal("0.01")), MaxValueValidator(Decimal("100"))],
        help_text="Share of the position closed at this level.",
    )

    class Meta:
        ordering = ["profile", "level"]
        constraints = [
            models.UniqueConstraint(fields=["profile", "level"], name="take_profit_level_unique"),
            models.CheckConstraint(condition=Q(level__gte=1) & Q(level__lte=6), name="take_profit_level_1_to_6"),
        ]

    def __str__(self) -> str:
        return f"TP{self.level} {self.value}{'%' if self.mode == self.Mode.PCT else ''} ({self.size_pct}%)"


def validate_weekdays(value: str) -> None:
    if not value or any(char not in "0123456" for char in value) or len(set(value)) != len(value):
        raise ValidationError("Weekdays are digits 0 (Monday) to 6 (Sunday), each at most once, e.g. 01234.")


def validate_timezone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"'{value}' is not a time zone name such as UTC or Europe/Berlin.")


class RiskLimits(models.Model):
    """Per-account limits; each empty money/percent limit means "no limit"."""

    account = models.OneToOneField(TradingAccount, on_delete=models.CASCADE, related_name="risk_limits")
    max_open_positions = models.PositiveIntegerField(default=5)
    max_trades_per_day = models.PositiveIntegerField(default=20)
    max_daily_loss_usdt = money_field(null=True, blank=True, validators=[MinValueValidator(Decimal("0"))])
    max_daily_loss_pct = money_field(null=True, blank=True, validators=PERCENT_VALIDATORS)
    max_drawdown_pct = money_field(null=True, blank=True, validators=PERCENT_VALIDATORS, help_text="From equity peak.")
    max_notional_per_trade = money_field(null=True, blank=True, validators=[MinValueValidator(Decimal("0"))])
    max_leverage = models.PositiveSmallIntegerField(default=20, validators=LEVERAGE_VALIDATORS)
    min_confidence = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        default=Decimal("0"),
        validators=PERCENT_VALIDATORS,
        help_text="Signals below this confidence (0-100) are rejected.",
    )
    auto_min_confidence = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        default=Decimal("0"),
        validators=PERCENT_VALIDATORS,
        help_text="With auto-trade on, signals below this confidence still wait for approval.",
    )
    cooldown_seconds = models.PositiveIntegerField(default=0, help_text="Per symbol and side, after an entry.")
    trading_hours_start = models.TimeField(null=True, blank=True, help_text="Empty start and end: all day.")
    trading_hours_end = models.TimeField(null=True, blank=True)
    trading_weekdays = models.CharField(
        max_length=7, default="0123456", validators=[validate_weekdays], help_text="0=Monday ... 6=Sunday."
    )
    trading_timezone = models.CharField(max_length=64, default="UTC", validators=[validate_timezone])
    max_signal_lag_seconds = models.PositiveIntegerField(default=60)
    confirmation_timeout_seconds = models.PositiveIntegerField(
        default=300, help_text="How long a signal waits for manual approval before it expires."
    )
    auto_flatten_on_daily_loss = models.BooleanField(
        default=False, help_text="Close all positions when the daily loss or drawdown limit is breached."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "risk limits"
        verbose_name_plural = "risk limits"

    def __str__(self) -> str:
        return f"Risk limits of {self.account.name}"

    def clean(self) -> None:
        if (self.trading_hours_start is None) != (self.trading_hours_end is None):
            raise ValidationError({"trading_hours_end": "Give both start and end of trading hours, or neither."})


class Order(models.Model):
    class Type(models.TextChoices):
        MARKET = "market", "Market"
        LIMIT = "limit", "Limit"
        STOP_MARKET = "stop_market", "Stop market"
        TAKE_PROFIT_MARKET = "take_profit_market", "Take-profit market"
        TRAILING_STOP_MARKET = "trailing_stop_market", "Trailing stop market"

    class Purpose(models.TextChoices):
        ENTRY = "entry", "Entry"
        CLOSE = "close", "Close"
        STOP_LOSS = "stop_loss", "Stop loss"
        TAKE_PROFIT_1 = "take_profit_1", "Take profit 1"
        TAKE_PROFIT_2 = "take_profit_2", "Take profit 2"
        TAKE_PROFIT_3 = "take_profit_3", "Take profit 3"
        TAKE_PROFIT_4 = "take_profit_4", "Take profit 4"
        TAKE_PROFIT_5 = "take_profit_5", "Take profit 5"
        TAKE_PROFIT_6 = "take_profit_6", "Take profit 6"
        TRAILING = "trailing", "Trailing stop"

    class Status(models.TextChoices):
        NEW = "new", "New"
        SUBMITTED = "submitted", "Submitted"
        OPEN = "open", "Open"
        PARTIALLY_FILLED = "partially_filled", "Partially filled"
        FILLED = "filled", "Filled"
        CANCELED = "canceled", "Canceled"
        REJECTED = "rejected", "Rejected"
        EXPIRED = "expired", "Expired"
        UNKNOWN = "unknown", "Unknown (being looked up)"

    class PositionSideChoice(models.TextChoices):
        BOTH = "both", "Both (one-way mode)"
        LONG = "long", "Long"
        SHORT = "short", "Short"

    signal = models.ForeignKey(
        "signals_app.Signal", on_delete=models.PROTECT, null=True, blank=True, related_name="orders"
    )
    account = models.ForeignKey(TradingAccount, on_delete=models.PROTECT, related_name="orders")
    # BingX accepts 1-40 characters and lowercases them, so only lowercase ids are stored.
    client_order_id = models.CharField(max_length=40, unique=True)
    exchange_order_id = models.CharField(max_length=64, blank=True, db_index=True)
    symbol = models.CharField(max_length=64)
    side = models.CharField(max_length=4, choices=Side.choices)
    position_side = models.CharField(max_length=8, choices=PositionSideChoice.choices, default=PositionSideChoice.BOTH)
    order_type = models.CharField(max_length=24, choices=Type.choices, default=Type.MARKET)
    purpose = models.CharField(max_length=16, choices=Purpose.choices, default=Purpose.ENTRY)
    qty = money_field()
    price = money_field(null=True, blank=True)
    trigger_price = money_field(null=True, blank=True)
    reduce_only = models.BooleanField(default=False)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.NEW, db_index=True)
    filled_qty = money_field(default=Decimal("0"))
    average_price = money_field(null=True, blank=True)
    fees = money_field(default=Decimal("0"))
    error_text = models.TextField(blank=True)
    # For an entry: the reduce-only stop-loss / take-profit orders to place once it fills,
    # [{"purpose", "trigger_price", "qty"}] (a limit entry may fill long after the signal was handled).
    protective_plan = models.JSONField(default=list, blank=True, encoder=DjangoJSONEncoder)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    open_at = models.DateTimeField(null=True, blank=True)
    filled_at = models.DateTimeField(null=True, blank=True)
    canceled_at = models.DateTimeField(null=True, blank=True)
    rejected_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["account", "symbol", "status"], name="order_account_symbol_status")]
        constraints = [
            models.CheckConstraint(
                condition=Q(client_order_id=Lower("client_order_id")), name="order_client_id_lowercase"
            ),
            models.CheckConstraint(condition=Q(qty__gt=0), name="order_qty_positive"),
            models.CheckConstraint(
                condition=Q(filled_qty__gte=0) & Q(filled_qty__lte=models.F("qty")), name="order_filled_within_qty"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.client_order_id} {self.side} {self.qty} {self.symbol}"


class Fill(models.Model):
    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="fills")
    exchange_trade_id = models.CharField(max_length=64, unique=True)
    qty = money_field()
    price = money_field()
    fee = money_field(default=Decimal("0"))
    fee_asset = models.CharField(max_length=16, default="USDT")
    realized_pnl = money_field(default=Decimal("0"))
    executed_at = models.DateTimeField(db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-executed_at"]
        constraints = [models.CheckConstraint(condition=Q(qty__gt=0), name="fill_qty_positive")]

    def __str__(self) -> str:
        return f"{self.exchange_trade_id}: {self.qty} @ {self.price}"


class Position(models.Model):
    class Status(models.TextChoices):
        OPEN = "open", "Open"
        CLOSED = "closed", "Closed"

    class CloseReason(models.TextChoices):
        SIGNAL = "signal", "Closing signal"
        STOP_LOSS = "stop_loss", "Stop loss"
        TAKE_PROFIT = "take_profit", "Take profit"
        TRAILING = "trailing", "Trailing stop"
        LIQUIDATION = "liquidation", "Liquidation"
        MANUAL = "manual", "Closed by hand"
        REVERSE = "reverse", "Reversed"
        RECONCILIATION = "reconciliation", "Closed on the exchange (found by resync)"

    account = models.ForeignKey(TradingAccount, on_delete=models.PROTECT, related_name="positions")
    symbol = models.CharField(max_length=64)
    side = models.CharField(max_length=8, choices=PositionSide.choices)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OPEN, db_index=True)
    qty = money_field()
    entry_price = money_field()
    mark_price = money_field(null=True, blank=True)
    leverage = models.PositiveSmallIntegerField(validators=LEVERAGE_VALIDATORS)
    margin_mode = models.CharField(max_length=16, choices=MarginMode.choices)
    unrealized_pnl = money_field(default=Decimal("0"))
    realized_pnl = money_field(default=Decimal("0"))
    liquidation_price = money_field(null=True, blank=True)
    opened_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)
    close_reason = models.CharField(max_length=16, choices=CloseReason.choices, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-opened_at"]
        constraints = [
            # One open position per account, symbol and side: the exchange keeps one, so do we.
            models.UniqueConstraint(
                fields=["account", "symbol", "side"], condition=Q(status="open"), name="position_one_open_per_side"
            ),
            models.CheckConstraint(condition=Q(qty__gte=0), name="position_qty_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.account.name} {self.side} {self.qty} {self.symbol}"


class BalanceSnapshot(models.Model):
    account = models.ForeignKey(TradingAccount, on_delete=models.CASCADE, related_name="balance_snapshots")
    asset = models.CharField(max_length=16, default="USDT")
    equity = money_field()
    available = money_field()
    wallet_balance = money_field()
    unrealized_pnl = money_field(default=Decimal("0"))
    used_margin = money_field(default=Decimal("0"))
    taken_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-taken_at"]
        get_latest_by = "taken_at"
        indexes = [models.Index(fields=["account", "-taken_at"], name="balance_account_latest")]

    def __str__(self) -> str:
        return f"{self.account.name} {self.asset} equity {self.equity} at {self.taken_at:%Y-%m-%d %H:%M}"


class AuditEventQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise PermissionError("Audit events are append-only; they cannot be updated.")

    def delete(self):
        raise PermissionError("Audit events are append-only; they cannot be deleted.")


class AuditEvent(models.Model):
    """Append-only record of every state change: who, what, on which object, before and after."""

    class ActorType(models.TextChoices):
        ADMIN = "admin", "Admin user"
        TELEGRAM = "telegram", "Telegram user"
        WEBHOOK = "webhook", "Webhook"
        SYSTEM = "system", "System"

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor_type = models.CharField(max_length=16, choices=ActorType.choices)
    actor_id = models.CharField(max_length=64, blank=True)
    actor_label = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=100, db_index=True)
    object_type = models.CharField(max_length=100, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField(max_length=200, blank=True)
    reason = models.TextField(blank=True)
    before = models.JSONField(default=dict, encoder=DjangoJSONEncoder)
    after = models.JSONField(default=dict, encoder=DjangoJSONEncoder)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["object_type", "object_id"], name="audit_object")]

    def __str__(self) -> str:
        actor = f"{self.actor_type}:{self.actor_label or self.actor_id}"
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {actor} {self.action} {self.object_repr}"

    def save(self, *args, **kwargs):
        if self.pk is not None and not kwargs.get("force_insert"):
            raise PermissionError("Audit events are append-only; they cannot be changed.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("Audit events are append-only; they cannot be deleted.")


class StreamState(models.Model):
    """How an account's BingX user-data stream (``manage.py run_stream``) is doing, for dashboards and health."""

    account = models.OneToOneField(TradingAccount, on_delete=models.CASCADE, related_name="stream_state")
    connected = models.BooleanField(default=False, help_text="Connected and reconciled: events are applied live.")
    last_connected_at = models.DateTimeField(null=True, blank=True)
    last_disconnected_at = models.DateTimeField(null=True, blank=True)
    last_event_at = models.DateTimeField(null=True, blank=True, help_text="When the last event was applied.")
    last_error = models.TextField(blank=True, help_text="Why the stream last went down.")
    down_alerted_at = models.DateTimeField(null=True, blank=True, help_text="When the down alert was raised.")
    # ACCOUNT_UPDATEs older than this (BingX's event time, ms) are skipped, and so are the recent ones seen
    # already (their digests): positions never step back to an older report.
    account_event_ms = models.BigIntegerField(default=0)
    account_event_digests = models.JSONField(default=list, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "stream state"

    def __str__(self) -> str:
        return f"{self.account.name} stream {'up' if self.connected else 'down'}"
