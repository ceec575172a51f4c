"""Database constraints on the trading models: duplicates and impossible values cannot be stored."""

from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from tests.factories import (
    AuditEventFactory,
    FillFactory,
    OrderFactory,
    PositionFactory,
    SymbolProfileFactory,
    TakeProfitLevelFactory,
    TradingAccountFactory,
)
from trading.models import AuditEvent, Position

pytestmark = pytest.mark.django_db


def test_client_order_id_is_unique_across_accounts():
    OrderFactory(client_order_id="tvabc123")
    with pytest.raises(IntegrityError), transaction.atomic():
        OrderFactory(client_order_id="tvabc123")


def test_client_order_id_must_be_lowercase_because_bingx_lowercases_it():
    with pytest.raises(IntegrityError), transaction.atomic():
        OrderFactory(client_order_id="TvAbc123")


def test_order_quantity_must_be_positive():
    with pytest.raises(IntegrityError), transaction.atomic():
        OrderFactory(qty=Decimal("0"))


def test_order_cannot_be_filled_beyond_its_quantity():
    with pytest.raises(IntegrityError), transaction.atomic():
        OrderFactory(qty=Decimal("1"), filled_qty=Decimal("1.00000001"))


def test_order_amounts_keep_eight_decimal_places():
    order = OrderFactory(qty=Decimal("0.12345678"))
    order.refresh_from_db()
    assert order.qty == Decimal("0.12345678")


def test_exchange_trade_id_is_recorded_once():
    FillFactory(exchange_trade_id="t-1")
    with pytest.raises(IntegrityError), transaction.atomic():
        FillFactory(exchange_trade_id="t-1")


def test_one_symbol_profile_per_account_and_symbol():
    profile = SymbolProfileFactory(symbol="BTC/USDT:USDT")
    with pytest.raises(IntegrityError), transaction.atomic():
        SymbolProfileFactory(account=profile.account, symbol="BTC/USDT:USDT")


def test_the_same_symbol_may_be_configured_on_two_accounts():
    SymbolProfileFactory(symbol="BTC/USDT:USDT")
    SymbolProfileFactory(symbol="BTC/USDT:USDT")


def test_symbol_leverage_cannot_exceed_its_maximum():
    with pytest.raises(IntegrityError), transaction.atomic():
        SymbolProfileFactory(leverage=21, max_leverage=20)


def test_take_profit_levels_run_from_one_to_six():
    with pytest.raises(IntegrityError), transaction.atomic():
        TakeProfitLevelFactory(level=7)


def test_a_take_profit_level_exists_once_per_profile():
    level = TakeProfitLevelFactory(level=1)
    with pytest.raises(IntegrityError), transaction.atomic():
        TakeProfitLevelFactory(profile=level.profile, level=1)


def test_only_one_open_position_per_account_symbol_and_side():
    position = PositionFactory(side="long")
    with pytest.raises(IntegrityError), transaction.atomic():
        PositionFactory(account=position.account, symbol=position.symbol, side="long")


def test_closed_positions_do_not_block_a_new_open_one():
    closed = PositionFactory(side="long", status=Position.Status.CLOSED)
    PositionFactory(account=closed.account, symbol=closed.symbol, side="long")
    PositionFactory(account=closed.account, symbol=closed.symbol, side="long", status=Position.Status.CLOSED)


def test_long_and_short_may_be_open_together_in_hedge_mode():
    long = PositionFactory(side="long")
    PositionFactory(account=long.account, symbol=long.symbol, side="short")


def test_account_names_are_unique():
    TradingAccountFactory(name="main")
    with pytest.raises(IntegrityError), transaction.atomic():
        TradingAccountFactory(name="main")


def test_audit_events_cannot_be_changed():
    event = AuditEventFactory()
    event.reason = "rewritten"
    with pytest.raises(PermissionError):
        event.save()


def test_audit_events_cannot_be_deleted_one_by_one():
    event = AuditEventFactory()
    with pytest.raises(PermissionError):
        event.delete()
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_audit_events_cannot_be_updated_or_deleted_in_bulk():
    AuditEventFactory()
    with pytest.raises(PermissionError):
        AuditEvent.objects.all().update(reason="x")
    with pytest.raises(PermissionError):
        AuditEvent.objects.all().delete()
    assert AuditEvent.objects.count() == 1
