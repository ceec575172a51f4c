"""manage.py resync: compare live/demo accounts with BingX and make the database match (or only show, --dry-run)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from trading.audit import Actor
from trading.exchange.errors import ExchangeError
from trading.execution import exchange_accounts
from trading.models import TradingAccount, TradingMode
from trading.resync import ResyncBusy, resync_account
from tvbingx.tables import format_table

BAR_WIDTH = 24
HEADERS = ["account", "kind", "object", "field", "database", "bingx", "action"]


class Command(BaseCommand):
    help = "Compare orders, fills, positions and balances with BingX and correct the database (audited)."

    def add_arguments(self, parser):
        parser.add_argument("--account", help="Only this account (by name).")
        parser.add_argument("--dry-run", action="store_true", help="Only list the differences; change nothing.")

    def handle(self, *args, account=None, dry_run=False, **options):
        accounts = list(exchange_accounts().order_by("name"))
        if account:
            named = TradingAccount.objects.filter(name=account, is_active=True).first()
            if named is None:
                raise CommandError(f"no active account named {account!r}")
            if named.mode == TradingMode.DRY_RUN:
                raise CommandError(f"{account} is a dry-run account: it has nothing on BingX")
            accounts = [named]
        rows, failures, corrections = [], [], 0
        for item in accounts:
            try:
                report = resync_account(
                    account=item, apply=not dry_run, actor=Actor.system("manage.py resync"), progress=self._bar(item)
                )
            except (ExchangeError, ResyncBusy) as error:
                failures.append(f"{item.name}: {error}")
                continue
            finally:
                self._bar_end()
            corrections += report.corrections
            rows += [
                [item.name, d.kind, d.object, d.field, d.database, d.exchange, d.action] for d in report.differences
            ]
        if rows:
            self.stdout.write(format_table(HEADERS, rows))
        summary = f"{len(rows)} difference(s)"
        summary += " (dry run: nothing changed)" if dry_run else f", {corrections} correction(s)"
        self.stdout.write(summary if rows else "no differences")
        for failure in failures:
            self.stderr.write(f"BingX not reached for {failure}")
        if failures:
            raise CommandError(f"{len(failures)} account(s) could not be compared with BingX")

    def _bar(self, account: TradingAccount):
        if not self.stderr.isatty():
            return None

        def show(stage: str, done: int, total: int) -> None:
            filled = BAR_WIDTH * done // total if total else BAR_WIDTH
            bar = "#" * filled + "." * (BAR_WIDTH - filled)
            self.stderr.write(f"\r{account.name} {stage:<18} [{bar}] {done}/{total}\033[K", ending="")
            self.stderr.flush()

        return show

    def _bar_end(self) -> None:
        if self.stderr.isatty():
            self.stderr.write("\r\033[K", ending="")
            self.stderr.flush()
