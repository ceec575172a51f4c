"""Rewrite the offline market snapshot from BingX's live USDT-M perpetual contract list.

The snapshot (trading/data/bingx_swap_contracts.json) is what the platform trades against when
MARKET_DATA_SOURCE=snapshot or BingX is unreachable, so refresh it before shipping a release.
"""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from trading.exchange import ExchangeUnavailable, fetch_swap_contracts, parse_swap_contracts, swap_contracts_url
from trading.markets import SNAPSHOT_PATH, MarketSnapshot, market_snapshot_write


class Command(BaseCommand):
    help = "Fetch BingX's USDT-M perpetual contracts (public endpoint, BINGX_BASE_URL) and rewrite the snapshot."

    def add_arguments(self, parser):
        parser.add_argument(
            "--output", type=Path, default=SNAPSHOT_PATH, help=f"file to write (default: {SNAPSHOT_PATH})"
        )

    def handle(self, *args, output: Path, **options):
        base_url = settings.BINGX_BASE_URL
        try:
            contracts = fetch_swap_contracts(base_url=base_url)
        except ExchangeUnavailable as error:
            raise CommandError(f"{error}\nThe snapshot was not changed.") from error
        tradable = parse_swap_contracts(contracts)
        if not tradable:
            # Writing this would leave the fallback with nothing to trade: keep the old file instead.
            raise CommandError(
                f"BingX listed {len(contracts)} contracts but none ccxt parses as a USDT perpetual; "
                "the snapshot was not changed."
            )
        snapshot = MarketSnapshot(source=swap_contracts_url(base_url), recorded_at=timezone.now(), contracts=contracts)
        market_snapshot_write(snapshot, path=output)
        self.stdout.write(
            self.style.SUCCESS(f"Wrote {len(contracts)} contracts ({len(tradable)} USDT perpetuals) to {output}.")
        )
