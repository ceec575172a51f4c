from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from tvbingx.health import HealthApi

admin.site.site_header = "TVBingX back-office"
admin.site.site_title = "TVBingX"
admin.site.index_title = "Accounts, limits, signals and orders"
admin.site.site_url = None  # no public site: hide the "View site" link

urlpatterns = [
    path("admin/", admin.site.urls),
    path("health", HealthApi.as_view(), name="health"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("", include("signals_app.urls")),
]
