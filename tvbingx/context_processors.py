from django.conf import settings

_LABELS = {"dry_run": "DRY RUN", "demo": "DEMO", "live": "LIVE"}


def platform(request):
    return {
        "tvbingx_trading_mode": settings.TRADING_MODE,
        "tvbingx_trading_mode_label": _LABELS.get(settings.TRADING_MODE, settings.TRADING_MODE),
    }
