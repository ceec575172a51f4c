from django.contrib import admin
from import_export import fields, resources

from signals_app.models import Signal
from signals_app.payload import redact_secrets
from trading.models import Order
from tvbingx.admin_mixins import ReadOnlyInline, ReadOnlyModelAdmin


class OrderInline(ReadOnlyInline):
    model = Order
    fields = ["client_order_id", "purpose", "side", "order_type", "qty", "filled_qty", "status", "error_text"]
    readonly_fields = fields


class SignalResource(resources.ModelResource):
    """Exports carry the raw body with the webhook secret masked."""

    raw_body = fields.Field(attribute="raw_body", column_name="raw_body")

    class Meta:
        model = Signal

    def dehydrate_raw_body(self, signal: Signal) -> str:
        return redact_secrets(signal.raw_body)


@admin.register(Signal)
class SignalAdmin(ReadOnlyModelAdmin):
    """Signals are evidence: exactly what arrived and what happened to it. Nothing here is editable.

    The raw body is shown with the webhook secret masked; the stored row keeps it exactly as received.
    """

    resource_classes = [SignalResource]
    inlines = [OrderInline]
    exclude = ["raw_body"]
    readonly_fields = ["raw_body_masked"]
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

    @admin.display(description="Raw body (secret masked)")
    def raw_body_masked(self, obj: Signal) -> str:
        return redact_secrets(obj.raw_body)
