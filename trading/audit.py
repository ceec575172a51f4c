"""Who did what: the append-only audit trail, written in the same transaction as each change."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.forms.models import model_to_dict


@dataclass(frozen=True)
class Actor:
    kind: str  # one of AuditEvent.ActorType
    identifier: str = ""
    label: str = ""

    @classmethod
    def system(cls, label: str = "system") -> Actor:
        return cls("system", "", label)

    @classmethod
    def admin(cls, user) -> Actor:
        return cls("admin", str(user.pk), user.get_username())

    @classmethod
    def telegram(cls, telegram_id: int, username: str = "") -> Actor:
        return cls("telegram", str(telegram_id), username)

    @classmethod
    def webhook(cls, source_ip: str | None) -> Actor:
        return cls("webhook", source_ip or "", "tradingview")


_ENCODER = DjangoJSONEncoder()
_PLAIN = (str, int, float, bool, type(None))


def jsonable(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` as the JSON round trip through Django's encoder gives it back (Decimals, datetimes and UUIDs
    as strings, tuples as lists), built directly: the round trip (dumps and loads) was most of the cost of
    an audit row, and the stream writes one per status move. Dicts with keys other than strings still take
    the round trip (JSON turns 1 into "1", True into "true")."""
    try:
        return _json_value(data)
    except _RoundTrip:
        return json.loads(json.dumps(data, cls=DjangoJSONEncoder))


class _RoundTrip(Exception):
    pass


def _json_value(value: Any) -> Any:
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is dict:
        if any(type(key) is not str for key in value):
            raise _RoundTrip
        return {key: _json_value(item) for key, item in value.items()}
    if kind in (list, tuple):
        return [_json_value(item) for item in value]
    for plain in _PLAIN[:4]:  # subclasses (TextChoices, IntegerChoices) as JSON writes them
        if isinstance(value, plain):
            return plain.__str__(value) if plain is str else json.loads(json.dumps(value))
    if isinstance(value, dict | list | tuple):
        raise _RoundTrip
    return _json_value(_ENCODER.default(value))  # Decimal, datetime, UUID, lazy text; TypeError as json.dumps


def snapshot(instance: models.Model, *, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """The instance's editable fields as JSON, with secrets replaced by whether they are set."""
    secret_fields = set(getattr(instance, "AUDIT_SECRET_FIELDS", ()))
    data = model_to_dict(instance, exclude=list(exclude))
    for name in secret_fields & set(data):
        data[name] = "<set>" if data[name] else "<empty>"
    return jsonable(data)


def audit_record(
    *,
    actor: Actor,
    action: str,
    instance: models.Model | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    reason: str = "",
):
    event = audit_event_new(actor=actor, action=action, instance=instance, before=before, after=after, reason=reason)
    event.save(force_insert=True)
    return event


def audit_event_new(
    *,
    actor: Actor,
    action: str,
    instance: models.Model | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    reason: str = "",
):
    """The AuditEvent audit_record stores, not saved yet: for a caller that inserts it its own way."""
    from trading.models import AuditEvent

    return AuditEvent(
        actor_type=actor.kind,
        actor_id=actor.identifier,
        actor_label=actor.label,
        action=action,
        object_type=instance._meta.label_lower if instance is not None else "",
        object_id=str(instance.pk) if instance is not None else "",
        object_repr=str(instance)[:200] if instance is not None else "",
        reason=reason,
        before=jsonable(before or {}),
        after=jsonable(after or {}),
    )
