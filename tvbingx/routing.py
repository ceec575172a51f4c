"""WebSocket routes. Each app's consumers are added here as they are built."""

from django.urls import path

from trading.consumers import DashboardConsumer

websocket_urlpatterns: list = [
    path("ws/dashboard/", DashboardConsumer.as_asgi()),
]
