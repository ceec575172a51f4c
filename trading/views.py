"""HTML views of the trading app (served inside the admin, which checks staff access)."""

from __future__ import annotations

from django.contrib import admin
from django.template.response import TemplateResponse

from trading.dashboard import dashboard_accounts, dashboard_snapshot


def dashboard_view(request):
    """The live dashboard: rendered with a first snapshot, then kept current over /ws/dashboard/."""
    context = {
        **admin.site.each_context(request),
        "title": "Live dashboard",
        "snapshot": dashboard_snapshot(accounts=dashboard_accounts()),
        "websocket_path": "/ws/dashboard/",
    }
    return TemplateResponse(request, "admin/trading/dashboard.html", context)
