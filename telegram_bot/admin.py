import re

from django.contrib import admin

from telegram_bot.models import BotSession, TelegramUser
from tvbingx.admin_mixins import AuditedModelAdmin, ReadOnlyModelAdmin


@admin.register(TelegramUser)
class TelegramUserAdmin(AuditedModelAdmin):
    """The bot's whitelist: only active users listed here get any answer."""

    list_display = [
        "telegram_id",
        "username",
        "display_name",
        "role",
        "is_active",
        "notify_signals",
        "notify_orders",
        "notify_risk",
        "notify_reports",
        "last_seen_at",
    ]
    list_filter = ["role", "is_active"]
    search_fields = ["username", "display_name"]
    date_hierarchy = "created_at"
    readonly_fields = ["last_seen_at", "created_at", "updated_at"]

    def get_search_results(self, request, queryset, search_term):
        results, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        term = search_term.strip()
        if re.fullmatch(r"-?[0-9]{1,19}", term):  # a numeric term is also looked up as a Telegram id
            results |= queryset.filter(telegram_id=int(term))
        return results, may_have_duplicates


@admin.register(BotSession)
class BotSessionAdmin(ReadOnlyModelAdmin):
    list_display = ["name", "account", "telegram_user", "chat_id", "state", "is_active", "last_activity_at"]
    list_filter = ["state", "is_active", "account"]
    list_select_related = ["account", "telegram_user"]
    search_fields = ["name", "state"]
    date_hierarchy = "last_activity_at"
