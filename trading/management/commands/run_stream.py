"""Follow every active live/demo account's BingX user-data stream until SIGTERM or SIGINT."""

import asyncio
import logging
import signal

from django.conf import settings
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
        shortfall = pool_shortfall(settings.DATABASES["default"].get("OPTIONS", {}).get("pool"), len(names))
        if shortfall:
            self.stderr.write(self.style.WARNING(shortfall))
        self.stdout.write(f"Streaming {len(names)} account(s): {', '.join(names) or 'none yet'}. Stop with Ctrl+C.")
        asyncio.run(self._run(account))
        self.stdout.write("Stream stopped.")

    async def _run(self, names: list[str]) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await streams_run(stop, timings=StreamTimings.from_settings(), account_names=names)


def pool_shortfall(pool_options, accounts: int) -> str | None:
    """A warning when the PostgreSQL pool cannot give every account's applier and follow-up threads their
    connections (plus two spare)."""
    if not isinstance(pool_options, dict) or "max_size" not in pool_options:
        return None  # no pool (SQLite): a connection per thread, nothing to run out of
    needed = 2 * accounts + 2
    if pool_options["max_size"] >= needed:
        return None
    return (
        f"DATABASE_POOL_SIZE={pool_options['max_size']} is below the {needed} connections {accounts} account "
        f"stream(s) need (two each, plus two): appliers will wait for connections. Raise it for this process."
    )
