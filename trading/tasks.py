"""Celery tasks of the trading app: thin wrappers around services."""

from celery import shared_task

from trading.markets import markets_catalog


@shared_task(name="markets.refresh", ignore_result=True)
def markets_refresh_task() -> int:
    """Keep the market list warm so a webhook never waits for BingX to list its contracts."""
    return len(markets_catalog(refresh=True))
