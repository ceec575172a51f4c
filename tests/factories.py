"""factory_boy factories: each builds a valid object with the fewest fields a test must care about."""

from __future__ import annotations

from decimal import Decimal

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from signals_app.models import Signal
from telegram_bot.models import BotSession, TelegramUser
from trading.models import (
    BalanceSnapshot,
    Fill,
    Order,
    Position,
    RiskLimits,
    SymbolProfile,
    TakeProfitLevel,
    TradingAccount,
)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"staff{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.com")
    password = factory.django.Password("correct-horse-battery")


class TradingAccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TradingAccount

    name = factory.Sequence(lambda n: f"account{n}")


class RiskLimitsFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RiskLimits

    account = factory.SubFactory(TradingAccountFactory)


class SymbolProfileFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SymbolProfile

    account = factory.SubFactory(TradingAccountFactory)
    symbol = factory.Sequence(lambda n: f"COIN{n}/USDT:USDT")
    leverage = 5
    max_leverage = 20


class TakeProfitLevelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TakeProfitLevel

    profile = factory.SubFactory(SymbolProfileFactory)
    level = factory.Sequence(lambda n: n % 6 + 1)
    value = Decimal("1.5")
    size_pct = Decimal("50")


class SignalFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Signal

    account = factory.SubFactory(TradingAccountFactory)
    raw_body = '{"symbol": "BTCUSDT.P", "action": "buy"}'
    idempotency_key = factory.Sequence(lambda n: f"alert-{n}")
    symbol = "BTC/USDT:USDT"
    action = Signal.Action.BUY


class OrderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Order

    account = factory.SubFactory(TradingAccountFactory)
    signal = factory.SubFactory(SignalFactory, account=factory.SelfAttribute("..account"))
    client_order_id = factory.Sequence(lambda n: f"tv{n:030d}")
    symbol = "BTC/USDT:USDT"
    side = "buy"
    qty = Decimal("0.010")


class FillFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Fill

    order = factory.SubFactory(OrderFactory)
    exchange_trade_id = factory.Sequence(lambda n: f"trade-{n}")
    qty = Decimal("0.010")
    price = Decimal("65000.5")
    executed_at = factory.LazyFunction(timezone.now)


class PositionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Position

    account = factory.SubFactory(TradingAccountFactory)
    symbol = "BTC/USDT:USDT"
    side = "long"
    qty = Decimal("0.010")
    entry_price = Decimal("65000")
    leverage = 5
    margin_mode = "isolated"
    opened_at = factory.LazyFunction(timezone.now)


class BalanceSnapshotFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BalanceSnapshot

    account = factory.SubFactory(TradingAccountFactory)
    equity = Decimal("1000")
    available = Decimal("800")
    wallet_balance = Decimal("1000")
    taken_at = factory.LazyFunction(timezone.now)


class TelegramUserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TelegramUser

    telegram_id = factory.Sequence(lambda n: 100000 + n)
    username = factory.Sequence(lambda n: f"trader{n}")


class BotSessionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BotSession

    name = factory.Sequence(lambda n: f"session{n}")


class AuditEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "trading.AuditEvent"

    actor_type = "system"
    action = "test.event"


class TelegramAdminFactory(TelegramUserFactory):
    role = TelegramUser.Role.ADMIN


class TelegramTraderFactory(TelegramUserFactory):
    role = TelegramUser.Role.TRADER


class TelegramViewerFactory(TelegramUserFactory):
    role = TelegramUser.Role.VIEWER
