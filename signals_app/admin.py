from django.contrib import admin

from signals_app.models import Signal
from trading.models import Order
from tvbingx.admin_mixins import ReadOnlyInline, ReadOnlyModelAdmin


class OrderInline(ReadOnlyInline):
    model = Order
    fields = ["client_order_id", "purpose", "side", "order_type", "qty", "filled_qty", "status", "error_text"]
    readonly_fields = fields


@admin.register(Signal)
class SignalAdmin(ReadOnlyModelAdmin):
    """Signals are evidence: exactly what arrived and what happened to it. Nothing here is editable."""

    inlines = [OrderInline]
    list_display = [
        "id",
        "received_at",
        "account",
        "symbol",
        "action",
        "status",
        "confidence",
        "strategy",
        "timeframe",
        "short_reason",
    ]
    list_filter = ["status", "action", "order_type", "account", "strategy"]
    list_select_related = ["account"]
    search_fields = ["idempotency_key", "symbol", "strategy", "rejection_reason", "source_ip"]
    date_hierarchy = "received_at"

    @admin.display(description="Reason")
    def short_reason(self, obj: Signal) -> str:
        return (obj.rejection_reason[:80] + "...") if len(obj.rejection_reason) > 80 else obj.rejection_reason
