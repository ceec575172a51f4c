from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from trading.views import dashboard_view
from tvbingx.health import HealthApi

admin.site.site_header = "TVBingX back-office"
admin.site.site_title = "TVBingX"
admin.site.index_title = "Accounts, limits, signals and orders"
admin.site.site_url = None  # no public site: hide the "View site" link

urlpatterns = [
    # Inside the admin's URL space and behind its staff check (login redirect for everyone else).
    path("admin/dashboard/", admin.site.admin_view(dashboard_view), name="admin-dashboard"),
    path("admin/", admin.site.urls),
    path("health", HealthApi.as_view(), name="health"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("", include("signals_app.urls")),
]
