"""manage.py exchange_status: can each live/demo account reach BingX, how far off is our clock, what is there."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from trading.exchange.client import client_for
from trading.exchange.errors import ExchangeError
from trading.models import TradingAccount, TradingMode
from tvbingx.tables import format_table


class Command(BaseCommand):
    help = "Connectivity, clock offset, mode and balances of the trading accounts on BingX."

    def add_arguments(self, parser):
        parser.add_argument("--account", help="Only this account (by name).")

    def handle(self, *args, account=None, **options):
        accounts = TradingAccount.objects.filter(is_active=True).order_by("name")
        if account:
            accounts = accounts.filter(name=account)
            if not accounts:
                raise CommandError(f"no active account named {account!r}")
        rows, failures = [], 0
        for item in accounts:
            row, ok = _status_row(item)
            rows.append(row)
            failures += not ok
        headers = ["account", "mode", "endpoint", "reachable", "clock offset", "position mode", "equity", "available"]
        self.stdout.write(format_table(headers, rows))
        if failures:
            raise CommandError(f"{failures} account(s) could not be read from BingX (see above)")


def _status_row(account: TradingAccount) -> tuple[list[object], bool]:
    if account.mode == TradingMode.DRY_RUN:
        return [account.name, account.mode, "(simulated)", "-", "-", account.position_mode, "-", "-"], True
    try:
        client = client_for(account)
    except ExchangeError as error:
        return [account.name, account.mode, "-", f"no: {error}", "-", "-", "-", "-"], False
    endpoint = client.endpoints.rest_root
    try:
        reading = client.clock_measure()
        balance = client.balance()
        hedged = client.hedge_mode()
    except ExchangeError as error:
        return [account.name, account.mode, endpoint, f"no: {error}", "-", "-", "-", "-"], False
    clock = f"{reading.offset_ms:+d} ms (round trip {reading.round_trip_ms} ms)"
    mode = "hedge" if hedged else "one_way"
    if mode != account.position_mode:
        mode += f" (account says {account.position_mode})"
    return [account.name, account.mode, endpoint, "yes", clock, mode, balance.equity, balance.available], True
