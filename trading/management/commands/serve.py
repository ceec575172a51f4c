"""Run the platform: one ASGI server (uvicorn) for HTTP and WebSocket on HOST:PORT."""

import logging
import threading
import time

import uvicorn
from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import close_old_connections, connection
from django.urls import NoReverseMatch, reverse


class Command(BaseCommand):
    help = "Serve HTTP and WebSocket on HOST:PORT (from .env); prints the admin and webhook URLs."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=settings.CONFIG["HOST"])
        parser.add_argument("--port", type=int, default=settings.CONFIG["PORT"])

    def handle(self, *args, host, port, **options):
        shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        base = f"http://{shown_host}:{port}"
        tasks = "Celery on Redis (run a worker and beat)" if settings.REDIS_URL else "in-process"
        self.stdout.write(
            self.style.SUCCESS(
                f"TVBingX: trading mode {settings.TRADING_MODE}, database {connection.vendor}, tasks {tasks}"
            )
        )
        self.stdout.write(f"  Admin:    {base}{reverse('admin:index')}")
        try:
            self.stdout.write(f"  Webhook:  {base}{reverse('webhook-tradingview')}")
        except NoReverseMatch:
            self.stdout.write("  Webhook:  not installed yet")
        self.stdout.write(f"  Health:   {base}{reverse('health')}")
        self.stdout.write("  Stop with Ctrl+C.")
        if settings.SIGNAL_PROCESSING == "thread":
            # Embedded mode has no Celery beat: this thread does the beat's periodic work.
            threading.Thread(target=_embedded_beat, name="embedded-beat", daemon=True).start()
        # Proxy headers are not trusted here: the webhook decides itself which proxies to believe.
        uvicorn.run(
            "tvbingx.asgi:application",
            host=host,
            port=port,
            proxy_headers=False,
            log_level=settings.CONFIG["LOG_LEVEL"].lower(),
            lifespan="off",
        )


SWEEP_EVERY_SECONDS = 10


def _embedded_beat() -> None:
    from signals_app.pipeline import signals_sweep
    from trading.execution import orders_poll_all
    from trading.resync import resync_all

    stop = threading.Event()
    resync_due = time.monotonic() + settings.RESYNC_INTERVAL_SECONDS
    while not stop.wait(SWEEP_EVERY_SECONDS):
        try:
            orders_poll_all()  # live/demo without Celery: resting orders are still watched
            signals_sweep()
            if time.monotonic() >= resync_due:
                resync_due = time.monotonic() + settings.RESYNC_INTERVAL_SECONDS
                resync_all()  # the database compared with BingX and corrected
        except Exception:  # keep sweeping; the next round retries
            logging.getLogger(__name__).exception("embedded sweep failed")
        finally:
            close_old_connections()
