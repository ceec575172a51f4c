"""Celery tasks of the trading app: thin wrappers around services."""

from celery import shared_task

from trading.execution import clock_sync_all, orders_poll_all
from trading.markets import markets_catalog
from trading.resync import resync_all


@shared_task(name="markets.refresh", ignore_result=True)
def markets_refresh_task() -> int:
    """Keep the market list warm so a webhook never waits for BingX to list its contracts."""
    return len(markets_catalog(refresh=True))


@shared_task(name="exchange.orders_poll", ignore_result=True)
def orders_poll_task() -> int:
    """Resting and unknown orders of live/demo accounts: fills, SL/TP hits, lost submissions."""
    return orders_poll_all()


@shared_task(name="exchange.clock_sync", ignore_result=True)
def clock_sync_task() -> int:
    return clock_sync_all()


@shared_task(name="exchange.resync", ignore_result=True)
def resync_task() -> int:
    """Compare live/demo accounts with BingX and correct the database; returns the corrections made."""
    return resync_all()
