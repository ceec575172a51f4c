"""The webhook's INSERTs, compiled once per process (one statement for both rows on PostgreSQL), store exactly
what Model.save() stores."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from unittest import mock

import pytest
from django.db import IntegrityError, transaction
from django.db.models.signals import pre_save
from django.forms.models import model_to_dict
from django.utils import timezone

from signals_app.ingest import _insert, _insert_with_audit, signal_ingest
from signals_app.models import Signal
from tests.factories import TradingAccountFactory
from trading.audit import Actor, audit_event_new
from trading.models import AuditEvent
from trading.services import account_rotate_webhook_secret

pytestmark = pytest.mark.django_db


NOW = timezone.now()


def _signal(account, key: str, now=NOW) -> Signal:
    return Signal(
        account_id=account.id,
        raw_body='{"symbol": "BTCUSDT.P", "note": "ünïcode ✓"}',
        headers={"Content-Type": "application/json", "User-Agent": "Go-http-client/1.1"},
        source_ip="52.89.214.238",
        idempotency_key=key,
        payload_hash="ab" * 32,
        received_at=now,
        symbol="BTC/USDT:USDT",
        action="buy",
        size_mode="usdt",
        size_value=Decimal("100.123456789"),  # more places than the column: rounded as the ORM rounds
        order_type="market",
        price=Decimal("97250.5"),
        sl_pct=Decimal("1.5"),
        tp_levels=[{"price": None, "pct": Decimal("1"), "size_pct": Decimal("50")}],
        leverage=5,
        margin_mode="",
        confidence=Decimal("80.00"),
        strategy="ema",
        timeframe="5",
        sent_at=now - timedelta(seconds=1),
        max_lag_seconds=30,
        extras={"trailing": {"activation_pct": "1"}},
    )


def _stored(instance) -> dict:
    row = type(instance).objects.get(pk=instance.pk)
    return model_to_dict(row, exclude=["id", "idempotency_key", "updated_at", "created_at", "object_id"])


def test_it_stores_a_signal_as_save_does():
    account = TradingAccountFactory()
    by_orm = _signal(account, "orm")
    by_orm.save(force_insert=True)
    compiled = _signal(account, "compiled")

    _insert(compiled)

    assert compiled.pk is not None and compiled.pk != by_orm.pk
    assert not compiled._state.adding and compiled._state.db == "default"
    assert compiled.updated_at is not None  # auto_now, set as save() sets it
    assert _stored(compiled) == _stored(by_orm)
    assert Signal.objects.get(pk=compiled.pk).size_value == Decimal("100.12345679")


def test_it_stores_an_audit_event_as_audit_record_does():
    account = TradingAccountFactory()
    signal = _signal(account, "k")
    _insert(signal)
    actor = Actor.webhook("52.89.214.238")
    by_orm = audit_event_new(actor=actor, action="signal.received", instance=signal, after={"key": "k"})
    by_orm.save(force_insert=True)
    compiled = audit_event_new(actor=actor, action="signal.received", instance=signal, after={"key": "k"})

    _insert(compiled)

    assert compiled.created_at is not None  # auto_now_add
    assert _stored(compiled) == _stored(by_orm)
    assert AuditEvent.objects.get(pk=compiled.pk).object_id == str(signal.pk)


def test_a_second_signal_with_the_same_key_is_refused_and_rolled_back():
    account = TradingAccountFactory()
    _insert(_signal(account, "same"))
    with pytest.raises(IntegrityError), transaction.atomic():
        _insert(_signal(account, "same"))
    assert Signal.objects.filter(account=account).count() == 1


def test_a_model_signal_receiver_gets_save_and_its_signals():
    seen = []

    def receiver(sender, instance, **kwargs):
        seen.append(instance)

    pre_save.connect(receiver, sender=Signal)
    try:
        signal = _signal(TradingAccountFactory(), "k")
        _insert(signal)
    finally:
        pre_save.disconnect(receiver, sender=Signal)
    assert seen == [signal]
    assert Signal.objects.filter(pk=signal.pk).exists()


def _ingest(secret: str, alert_id: str, **fields):
    body = {"secret": secret, "alert_id": alert_id, "symbol": "BINANCE:BTCUSDT.P", "action": "buy", **fields}
    return signal_ingest(
        raw_body=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, source_ip="52.89.214.238"
    )


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_one_statement_stores_the_signal_and_its_audit_event_as_the_transaction_does():
    account = TradingAccountFactory()
    secret = account_rotate_webhook_secret(account=account, actor=Actor.system("test"))
    used = []

    def recording(*args, **kwargs):
        used.append("called")
        used[-1] = _insert_with_audit(*args, **kwargs)  # stays "called" when it raises
        return used[-1]

    fields = {"size": {"mode": "usdt", "value": "100"}, "sl": {"pct": "1.5"}, "tp": [{"pct": "1", "size_pct": 50}]}
    with mock.patch("signals_app.ingest._insert_with_audit", side_effect=recording):
        with transaction.atomic():  # inside a transaction: the general path
            general = _ingest(secret, "general", **fields)
        one_statement = _ingest(secret, "one-statement", **fields)
        duplicate = _ingest(secret, "one-statement", **fields)
        conflict = _ingest(secret, "one-statement", leverage=3)

    assert used == [False, True, "called", "called"]  # the resends: the unique constraint refused the statement
    assert (general.http_status, one_statement.http_status, duplicate.http_status) == (202, 202, 200)
    assert conflict.http_status == 409
    stored = {
        name: Signal.objects.get(pk=result.body["signal_id"])
        for name, result in (("general", general), ("one_statement", one_statement))
    }
    assert Signal.objects.filter(account=account).count() == 2
    assert duplicate.body["signal_id"] == one_statement.body["signal_id"]
    varying = ["id", "raw_body", "idempotency_key", "payload_hash", "received_at", "updated_at"]
    assert model_to_dict(stored["one_statement"], exclude=varying) == model_to_dict(stored["general"], exclude=varying)
    events = {
        name: AuditEvent.objects.get(action="signal.received", object_id=str(signal.pk))
        for name, signal in stored.items()
    }
    for name, event in events.items():
        assert event.object_type == "signals_app.signal"
        assert event.object_repr == str(stored[name])
        assert event.after == {"key": stored[name].idempotency_key}
    audit_varying = ["id", "created_at", "object_id", "object_repr", "after"]
    assert model_to_dict(events["one_statement"], exclude=audit_varying) == model_to_dict(
        events["general"], exclude=audit_varying
    )
