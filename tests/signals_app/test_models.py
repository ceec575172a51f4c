"""The signal table refuses a second alert with the same idempotency key for an account."""

import pytest
from django.db import IntegrityError, transaction

from tests.factories import SignalFactory, TradingAccountFactory

pytestmark = pytest.mark.django_db


def test_idempotency_key_is_unique_per_account():
    signal = SignalFactory(idempotency_key="bar-2026-11-25T09:00:00Z")
    with pytest.raises(IntegrityError), transaction.atomic():
        SignalFactory(account=signal.account, idempotency_key="bar-2026-11-25T09:00:00Z")


def test_two_accounts_may_use_the_same_idempotency_key():
    SignalFactory(account=TradingAccountFactory(), idempotency_key="same")
    SignalFactory(account=TradingAccountFactory(), idempotency_key="same")


def test_an_empty_idempotency_key_is_refused():
    with pytest.raises(IntegrityError), transaction.atomic():
        SignalFactory(idempotency_key="")


def test_the_raw_body_is_stored_exactly_as_received():
    body = '{"symbol":"BTCUSDT.P" ,  "action":"buy","note":"ünïcode ✓"}\n'
    signal = SignalFactory(raw_body=body)
    signal.refresh_from_db()
    assert signal.raw_body == body
