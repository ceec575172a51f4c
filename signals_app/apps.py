from django.apps import AppConfig


class SignalsAppConfig(AppConfig):
    # "signals" here means trading signals from TradingView, not Django signals.
    name = "signals_app"
    verbose_name = "Trading signals"
