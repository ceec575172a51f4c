"""Follow every active live/demo account's BingX user-data stream until SIGTERM or SIGINT."""

import asyncio
import logging
import signal

from django.core.management.base import BaseCommand

from trading.stream import StreamTimings, stream_accounts, streams_run

logger = logging.getLogger("trading.stream")


class Command(BaseCommand):
    help = (
        "Apply BingX's user-data stream (fills, orders, positions, balances) as it happens, for every active "
        "live/demo account with API keys, and publish each change on the channel layer. Stop with Ctrl+C or SIGTERM."
    )

    def add_arguments(self, parser):
        parser.add_argument("--account", action="append", default=[], help="Only this account (repeatable).")

    def handle(self, *args, account, **options):
        names = [a.name for a in stream_accounts() if not account or a.name in account]
        self.stdout.write(f"Streaming {len(names)} account(s): {', '.join(names) or 'none yet'}. Stop with Ctrl+C.")
        asyncio.run(self._run(account))
        self.stdout.write("Stream stopped.")

    async def _run(self, names: list[str]) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await streams_run(stop, timings=StreamTimings.from_settings(), account_names=names)
