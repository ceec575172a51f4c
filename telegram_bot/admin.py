import re

from django.contrib import admin, messages
from django.db import transaction
from django.utils import timezone

from telegram_bot.models import BotSession, Notification, SignalCard, TelegramUser
from trading.audit import Actor, audit_record
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


@admin.register(Notification)
class NotificationAdmin(ReadOnlyModelAdmin):
    """The outbox: what was (or will be) pushed to whom. Read-only, plus "retry now"."""

    list_display = [
        "created_at",
        "kind",
        "telegram_user",
        "chat_id",
        "status",
        "attempts",
        "next_attempt_at",
        "sent_at",
    ]
    list_filter = ["status", "kind"]
    list_select_related = ["telegram_user"]
    search_fields = ["dedupe_key", "text", "last_error"]
    date_hierarchy = "created_at"
    actions = ["retry_now"]

    @admin.action(description="Retry now (failed or waiting notifications)")
    def retry_now(self, request, queryset):
        """Puts failed and waiting rows back in the queue, due now. Sent and in-flight rows are left alone:
        re-sending those would duplicate a message the user already has (or may have)."""
        retryable = [Notification.Status.PENDING, Notification.Status.FAILED]
        with transaction.atomic():
            rows = list(queryset.select_for_update().filter(status__in=retryable))
            for row in rows:
                before = {"status": row.status, "next_attempt_at": row.next_attempt_at, "last_error": row.last_error}
                row.status, row.next_attempt_at, row.failed_at = Notification.Status.PENDING, timezone.now(), None
                row.save(update_fields=["status", "next_attempt_at", "failed_at"])
                audit_record(
                    actor=Actor.admin(request.user),
                    action="notification.retry",
                    instance=row,
                    before=before,
                    after={"status": row.status, "next_attempt_at": row.next_attempt_at},
                )
        skipped = queryset.count() - len(rows)
        self.message_user(request, f"{len(rows)} notification(s) queued again.", messages.SUCCESS)
        if skipped:
            self.message_user(
                request, f"{skipped} sent or in-flight notification(s) left as they are.", messages.WARNING
            )


@admin.register(SignalCard)
class SignalCardAdmin(ReadOnlyModelAdmin):
    list_display = ["signal", "telegram_user", "chat_id", "message_id", "state", "created_at", "updated_at"]
    list_filter = ["state"]
    list_select_related = ["signal", "telegram_user"]
    search_fields = ["chat_id", "signal__symbol"]
    date_hierarchy = "created_at"
