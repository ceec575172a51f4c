"""WebSocket routes. Each app's consumers are added here as they are built (the dashboard at /ws/dashboard/)."""

websocket_urlpatterns: list = []
