"""manage.py sync_symbol_settings: push position mode, margin mode and leverage from the profiles to BingX."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from trading.audit import Actor
from trading.exchange.errors import ExchangeError
from trading.models import SymbolProfile, TradingAccount, TradingMode
from trading.symbol_settings import SymbolSettingsFailed, account_position_mode_sync, symbol_profile_sync
from tvbingx.tables import format_table


class Command(BaseCommand):
    help = "Set each enabled symbol's margin mode and leverage on BingX as its profile says (rolled back on failure)."

    def add_arguments(self, parser):
        parser.add_argument("--account", help="Only this account (by name).")
        parser.add_argument("--symbol", help="Only this symbol (unified, e.g. BTC/USDT:USDT).")

    def handle(self, *args, account=None, symbol=None, **options):
        actor = Actor.system("sync_symbol_settings")
        accounts = TradingAccount.objects.filter(is_active=True, mode__in=(TradingMode.LIVE, TradingMode.DEMO))
        if account:
            accounts = accounts.filter(name=account)
            if not accounts:
                raise CommandError(f"no active live/demo account named {account!r}")
        rows, failures = [], 0
        for item in accounts.order_by("name"):
            try:
                rows.append([item.name, "(position mode)", "ok", account_position_mode_sync(account=item, actor=actor)])
            except ExchangeError as error:
                rows.append([item.name, "(position mode)", "FAILED", str(error)])
                failures += 1
            profiles = SymbolProfile.objects.filter(
                account=item, enabled=True, market_type=SymbolProfile.MarketType.SWAP
            )
            if symbol:
                profiles = profiles.filter(symbol=symbol)
            for profile in profiles.order_by("symbol"):
                try:
                    result = symbol_profile_sync(profile=profile, actor=actor)
                except (SymbolSettingsFailed, ExchangeError) as error:
                    rows.append([item.name, profile.symbol, "FAILED", str(error)])
                    failures += 1
                else:
                    rows.append([item.name, profile.symbol, "ok", result.describe()])
        self.stdout.write(format_table(["account", "symbol", "result", "state on BingX"], rows))
        if failures:
            raise CommandError(f"{failures} step(s) failed; see above")
