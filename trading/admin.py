from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.template.response import TemplateResponse
from django.utils.cache import add_never_cache_headers
from import_export.admin import ExportMixin

from trading.audit import Actor
from trading.exchange.errors import ExchangeError
from trading.models import (
    AuditEvent,
    BalanceSnapshot,
    Fill,
    Order,
    Position,
    RiskLimits,
    SymbolProfile,
    TakeProfitLevel,
    TradingAccount,
    TradingMode,
)
from trading.resync import ResyncBusy, resync_account
from trading.services import (
    account_rotate_webhook_secret,
    account_set_api_credentials,
    account_set_trading_enabled,
)
from trading.symbol_settings import SymbolSettingsFailed, symbol_profile_sync
from tvbingx.admin_mixins import AuditedModelAdmin, ReadOnlyInline, ReadOnlyModelAdmin


def _flag(value: bool) -> str:
    return "set" if value else "not set"


class TradingAccountForm(forms.ModelForm):
    """API credentials and the webhook secret are write-only: typed in, never rendered back."""

    new_api_key = forms.CharField(
        label="New API key",
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Leave empty to keep the stored key. Stored encrypted; never shown again.",
    )
    new_api_secret = forms.CharField(
        label="New API secret",
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Leave empty to keep the stored secret. Stored encrypted; never shown again.",
    )
    clear_api_credentials = forms.BooleanField(
        label="Clear API credentials", required=False, help_text="Remove the stored key pair."
    )
    new_webhook_secret = forms.CharField(
        required=False,
        strip=True,
        min_length=16,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Install a new webhook secret; the current one keeps working until the next rotation. "
        "Or use the action 'Rotate webhook secret' to generate one.",
    )

    class Meta:
        model = TradingAccount
        fields = [
            "name",
            "exchange",
            "mode",
            "subaccount_id",
            "position_mode",
            "auto_trade",
            "trading_enabled",
            "default_margin_mode",
            "default_leverage",
            "is_active",
        ]

    def clean(self):
        cleaned = super().clean()
        key, secret = cleaned.get("new_api_key"), cleaned.get("new_api_secret")
        if bool(key) != bool(secret):
            raise forms.ValidationError("Enter the API key and the API secret together.")
        if (key or secret) and cleaned.get("clear_api_credentials"):
            raise forms.ValidationError("Either enter new credentials or clear them, not both.")
        return cleaned


@admin.register(TradingAccount)
class TradingAccountAdmin(AuditedModelAdmin):
    form = TradingAccountForm
    list_display = [
        "name",
        "exchange",
        "mode",
        "position_mode",
        "auto_trade",
        "trading_enabled",
        "exchange_health",
        "api_credentials",
        "webhook_secret",
        "is_active",
        "updated_at",
    ]
    list_filter = ["mode", "auto_trade", "trading_enabled", "position_mode", "exchange_health", "is_active"]
    search_fields = ["name", "subaccount_id"]
    date_hierarchy = "created_at"
    readonly_fields = [
        "api_credentials",
        "webhook_secret",
        "webhook_secret_rotated_at",
        "exchange_health",
        "exchange_health_reason",
        "exchange_health_changed_at",
        "created_at",
        "updated_at",
    ]
    fieldsets = [
        (None, {"fields": ["name", "exchange", "mode", "subaccount_id", "is_active"]}),
        (
            "Trading",
            {"fields": ["auto_trade", "trading_enabled", "position_mode", "default_margin_mode", "default_leverage"]},
        ),
        (
            "API credentials (write-only)",
            {"fields": ["api_credentials", "new_api_key", "new_api_secret", "clear_api_credentials"]},
        ),
        (
            "TradingView webhook (write-only)",
            {"fields": ["webhook_secret", "webhook_secret_rotated_at", "new_webhook_secret"]},
        ),
        ("BingX connection", {"fields": ["exchange_health", "exchange_health_reason", "exchange_health_changed_at"]}),
        ("History", {"fields": ["created_at", "updated_at"]}),
    ]
    actions = ["rotate_webhook_secret", "stop_trading", "resume_trading", "resync_now"]

    @admin.display(description="API key pair")
    def api_credentials(self, obj: TradingAccount) -> str:
        return _flag(obj.has_api_credentials)

    @admin.display(description="Webhook secret")
    def webhook_secret(self, obj: TradingAccount) -> str:
        if not obj.webhook_secret_hash:
            return "not set"
        return "set, previous one still valid" if obj.webhook_secret_previous_hash else "set"

    def save_model(self, request, obj, form, change):
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            actor = Actor.admin(request.user)
            data = form.cleaned_data
            if data.get("clear_api_credentials"):
                account_set_api_credentials(account=obj, api_key="", api_secret="", actor=actor)
            elif data.get("new_api_key"):
                account_set_api_credentials(
                    account=obj, api_key=data["new_api_key"], api_secret=data["new_api_secret"], actor=actor
                )
            if data.get("new_webhook_secret"):
                account_rotate_webhook_secret(account=obj, actor=actor, new_secret=data["new_webhook_secret"])

    @admin.action(description="Rotate webhook secret (generate a new one)")
    def rotate_webhook_secret(self, request, queryset):
        rotated = [
            (account, account_rotate_webhook_secret(account=account, actor=Actor.admin(request.user)))
            for account in queryset
        ]
        # Shown on this one page only: never in a message cookie, the session or a cached copy.
        response = TemplateResponse(
            request,
            "admin/trading/webhook_secrets.html",
            {**self.admin_site.each_context(request), "title": "New webhook secrets", "rotated": rotated},
        )
        add_never_cache_headers(response)
        return response

    @admin.action(description="Kill switch: stop new entries")
    def stop_trading(self, request, queryset):
        changed = sum(
            account_set_trading_enabled(
                account=a, enabled=False, actor=Actor.admin(request.user), reason="admin action"
            )
            for a in queryset
        )
        self.message_user(request, f"Trading stopped on {changed} account(s). Closing positions is still allowed.")

    @admin.action(description="Resume trading")
    def resume_trading(self, request, queryset):
        changed = sum(
            account_set_trading_enabled(account=a, enabled=True, actor=Actor.admin(request.user), reason="admin action")
            for a in queryset
        )
        self.message_user(request, f"Trading resumed on {changed} account(s).")

    @admin.action(description="Resync now (make orders, positions and balance match BingX)")
    def resync_now(self, request, queryset):
        for account in queryset:
            if account.mode == TradingMode.DRY_RUN:
                self.message_user(request, f"{account}: dry-run account, nothing on BingX.", level=messages.WARNING)
                continue
            try:
                report = resync_account(account=account, apply=True, actor=Actor.admin(request.user))
            except (ExchangeError, ResyncBusy) as error:
                self.message_user(request, f"{account}: resync failed: {error}", level=messages.ERROR)
            else:
                self.message_user(
                    request,
                    f"{account}: {report.corrections} correction(s), {len(report.differences)} difference(s) found.",
                    level=messages.SUCCESS,
                )


class TakeProfitLevelInline(admin.TabularInline):
    model = TakeProfitLevel
    extra = 0
    max_num = 6


@admin.register(SymbolProfile)
class SymbolProfileAdmin(ExportMixin, AuditedModelAdmin):
    inlines = [TakeProfitLevelInline]
    list_display = [
        "symbol",
        "account",
        "enabled",
        "market_type",
        "margin_mode",
        "leverage",
        "max_leverage",
        "max_position_notional",
        "order_size_mode",
        "order_size_value",
        "last_sync_ok",
        "last_synced_at",
    ]
    list_filter = ["enabled", "market_type", "margin_mode", "account", "last_sync_ok"]
    list_select_related = ["account"]
    search_fields = ["symbol", "account__name"]
    date_hierarchy = "updated_at"
    readonly_fields = ["last_synced_at", "last_sync_ok", "last_sync_result", "created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["account", "symbol", "enabled", "market_type"]}),
        ("Margin and leverage", {"fields": ["margin_mode", "leverage", "max_leverage", "max_position_notional"]}),
        ("Default order size", {"fields": ["order_size_mode", "order_size_value"]}),
        ("Default stop loss", {"fields": ["stop_loss_mode", "stop_loss_value"]}),
        ("Break-even", {"fields": ["breakeven_enabled", "breakeven_after_tp", "breakeven_offset_pct"]}),
        ("Trailing stop", {"fields": ["trailing_enabled", "trailing_activation_pct", "trailing_callback_pct"]}),
        ("Exchange sync", {"fields": ["last_synced_at", "last_sync_ok", "last_sync_result"]}),
        ("History", {"fields": ["created_at", "updated_at"]}),
    ]
    actions = ["sync_to_bingx"]

    @admin.action(description="Sync margin mode and leverage to BingX")
    def sync_to_bingx(self, request, queryset):
        actor = Actor.admin(request.user)
        for profile in queryset.select_related("account"):
            if profile.account.mode == TradingMode.DRY_RUN:
                self.message_user(
                    request, f"{profile}: dry-run account, nothing to sync on BingX.", level=messages.WARNING
                )
                continue
            try:
                result = symbol_profile_sync(profile=profile, actor=actor)
            except (SymbolSettingsFailed, ExchangeError) as error:
                self.message_user(request, f"{profile}: {error}", level=messages.ERROR)
            else:
                self.message_user(request, f"{profile.account.name} {result.describe()}", level=messages.SUCCESS)


@admin.register(RiskLimits)
class RiskLimitsAdmin(ExportMixin, AuditedModelAdmin):
    list_display = [
        "account",
        "max_open_positions",
        "max_trades_per_day",
        "max_daily_loss_usdt",
        "max_daily_loss_pct",
        "max_drawdown_pct",
        "max_notional_per_trade",
        "max_leverage",
        "min_confidence",
        "cooldown_seconds",
        "auto_flatten_on_daily_loss",
    ]
    list_filter = ["auto_flatten_on_daily_loss"]
    list_select_related = ["account"]
    search_fields = ["account__name"]
    date_hierarchy = "updated_at"
    fieldsets = [
        (None, {"fields": ["account"]}),
        (
            "Exposure",
            {"fields": ["max_open_positions", "max_trades_per_day", "max_notional_per_trade", "max_leverage"]},
        ),
        (
            "Losses",
            {"fields": ["max_daily_loss_usdt", "max_daily_loss_pct", "max_drawdown_pct", "auto_flatten_on_daily_loss"]},
        ),
        (
            "Signals",
            {
                "fields": [
                    "min_confidence",
                    "auto_min_confidence",
                    "cooldown_seconds",
                    "max_signal_lag_seconds",
                    "confirmation_timeout_seconds",
                ]
            },
        ),
        (
            "Trading hours",
            {"fields": ["trading_timezone", "trading_weekdays", "trading_hours_start", "trading_hours_end"]},
        ),
    ]


class FillInline(ReadOnlyInline):
    model = Fill
    fields = ["exchange_trade_id", "qty", "price", "fee", "fee_asset", "realized_pnl", "executed_at"]
    readonly_fields = fields


@admin.register(Order)
class OrderAdmin(ReadOnlyModelAdmin):
    inlines = [FillInline]
    list_display = [
        "client_order_id",
        "account",
        "symbol",
        "side",
        "position_side",
        "purpose",
        "order_type",
        "qty",
        "filled_qty",
        "average_price",
        "status",
        "created_at",
    ]
    list_filter = ["status", "purpose", "side", "order_type", "reduce_only", "account"]
    list_select_related = ["account"]
    search_fields = ["client_order_id", "exchange_order_id", "symbol"]
    raw_id_fields = ["signal"]
    date_hierarchy = "created_at"


@admin.register(Fill)
class FillAdmin(ReadOnlyModelAdmin):
    list_display = ["exchange_trade_id", "order", "qty", "price", "fee", "fee_asset", "realized_pnl", "executed_at"]
    list_filter = ["fee_asset", "order__account"]
    list_select_related = ["order"]
    search_fields = ["exchange_trade_id", "order__client_order_id", "order__symbol"]
    raw_id_fields = ["order"]
    date_hierarchy = "executed_at"


@admin.register(Position)
class PositionAdmin(ReadOnlyModelAdmin):
    list_display = [
        "symbol",
        "account",
        "side",
        "status",
        "qty",
        "entry_price",
        "mark_price",
        "leverage",
        "margin_mode",
        "unrealized_pnl",
        "realized_pnl",
        "liquidation_price",
        "opened_at",
        "closed_at",
        "close_reason",
    ]
    list_filter = ["status", "side", "margin_mode", "close_reason", "account"]
    list_select_related = ["account"]
    search_fields = ["symbol", "account__name"]
    date_hierarchy = "opened_at"


@admin.register(BalanceSnapshot)
class BalanceSnapshotAdmin(ReadOnlyModelAdmin):
    list_display = [
        "account",
        "asset",
        "equity",
        "available",
        "wallet_balance",
        "unrealized_pnl",
        "used_margin",
        "taken_at",
    ]
    list_filter = ["asset", "account"]
    list_select_related = ["account"]
    search_fields = ["account__name"]
    date_hierarchy = "taken_at"


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyModelAdmin):
    list_display = ["created_at", "who", "action", "on_object", "reason"]
    list_filter = ["actor_type", "object_type", "action"]
    search_fields = ["action", "object_id", "object_repr", "actor_label", "actor_id", "reason"]
    date_hierarchy = "created_at"

    @admin.display(description="Who", ordering="actor_type")
    def who(self, obj: AuditEvent) -> str:
        return f"{obj.get_actor_type_display()}: {obj.actor_label or obj.actor_id or '-'}"

    @admin.display(description="Object", ordering="object_type")
    def on_object(self, obj: AuditEvent) -> str:
        return f"{obj.object_type} #{obj.object_id}: {obj.object_repr}" if obj.object_type else "-"
