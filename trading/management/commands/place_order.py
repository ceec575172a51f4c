"""manage.py place_order: one test order on BingX by hand, shown and confirmed before it is sent."""

from __future__ import annotations

import uuid
from decimal import Decimal, InvalidOperation

from django.core.management.base import BaseCommand, CommandError

from trading.audit import Actor
from trading.exchange.errors import ExchangeError
from trading.execution import OutcomeUnknown, order_place_manual
from trading.markets import UnknownSymbol, markets_catalog
from trading.models import TradingAccount, TradingMode
from trading.precision import round_amount_down, round_price
from tvbingx.tables import format_table


class Command(BaseCommand):
    help = "Place one order on BingX for an account (live or demo), after showing it and asking to confirm."

    def add_arguments(self, parser):
        parser.add_argument("--account", required=True, help="Account name.")
        parser.add_argument("--symbol", required=True, help="BTCUSDT, BTC-USDT, BTC/USDT:USDT ...")
        parser.add_argument("--side", required=True, choices=["buy", "sell"])
        parser.add_argument("--qty", required=True, help="Base quantity; rounded down to the market's step.")
        parser.add_argument("--type", default="market", choices=["market", "limit"], dest="order_type")
        parser.add_argument("--price", help="Limit price (limit orders).")
        parser.add_argument("--reduce-only", action="store_true", help="Only reduce an open position.")
        parser.add_argument("--yes", action="store_true", help="Do not ask; send at once.")

    def handle(self, *args, account, symbol, side, qty, order_type, price, reduce_only, yes, **options):
        target = TradingAccount.objects.filter(name=account, is_active=True).first()
        if target is None:
            raise CommandError(f"no active account named {account!r}")
        if target.mode == TradingMode.DRY_RUN:
            raise CommandError(f"{account} is a dry-run account: it places nothing on BingX")
        try:
            market = markets_catalog().resolve(symbol)
        except UnknownSymbol as error:
            raise CommandError(str(error)) from None
        amount = round_amount_down(_decimal("--qty", qty), market.rules.amount_step)
        if amount <= 0 or amount < market.rules.min_qty:
            raise CommandError(f"--qty {qty} is below {market.symbol}'s minimum {market.rules.min_qty}")
        limit = None
        if order_type == "limit":
            if not price:
                raise CommandError("a limit order needs --price")
            limit = round_price(_decimal("--price", price), market.rules.price_tick)
        rows = [[target.name, target.mode, market.symbol, side, order_type, amount, limit or "market", reduce_only]]
        headers = ["account", "mode", "symbol", "side", "type", "qty", "price", "reduce-only"]
        self.stdout.write(format_table(headers, rows))
        if not yes and input("Send this order to BingX? Type 'yes': ").strip().lower() != "yes":
            raise CommandError("not sent")
        try:
            order = order_place_manual(
                account=target,
                symbol=market.symbol,
                side=side,
                qty=amount,
                order_type=order_type,
                price=limit,
                reduce_only=reduce_only,
                actor=Actor.system("place_order"),
                reference=uuid.uuid4().hex,
            )
        except OutcomeUnknown as error:
            raise CommandError(f"{error}; check `manage.py exchange_status` and the admin before retrying") from None
        except ExchangeError as error:
            raise CommandError(f"BingX did not take the order: {error}") from None
        result = [[order.client_order_id, order.exchange_order_id, order.status, order.filled_qty, order.average_price]]
        self.stdout.write(format_table(["client order id", "BingX order id", "status", "filled", "average"], result))


def _decimal(option: str, text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise CommandError(f"{option} {text!r} is not a number") from None
    if not value.is_finite() or value <= 0:
        raise CommandError(f"{option} must be a positive number")
    return value
