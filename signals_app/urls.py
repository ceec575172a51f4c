from django.urls import path

from signals_app.apis import TradingViewWebhookApi, TradingViewWebhookTokenApi

urlpatterns = [
    path("webhook/tradingview", TradingViewWebhookApi.as_view(), name="webhook-tradingview"),
    path("webhook/tradingview/<str:token>", TradingViewWebhookTokenApi.as_view(), name="webhook-tradingview-token"),
]
