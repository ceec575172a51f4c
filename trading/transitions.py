"""Status changes: one checked, locked, audited path for every model with a status field.

The allowed moves are plain data (``rules.py`` in each app). ``apply_transition`` locks the row,
refuses a move the table does not allow, stamps ``<status>_at`` where the model has such a field,
and writes the audit row in the same transaction, so a status never changes without its trace.
Moving to the status a row already has is a no-op, which makes redelivered work harmless.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.db import models, transaction
from django.utils import timezone

from trading.audit import Actor, audit_event_new


class InvalidTransition(Exception):
    def __init__(self, instance: models.Model, current: str, target: str, allowed: frozenset[str]):
        self.current, self.target, self.allowed = current, target, allowed
        label = instance._meta.verbose_name
        allowed_text = ", ".join(sorted(allowed)) if allowed else "none (final status)"
        super().__init__(
            f"{label} {instance.pk} cannot move from '{current}' to '{target}'; allowed from '{current}': "
            f"{allowed_text}."
        )


def check_transition(table: Mapping[str, frozenset[str]], current: str, target: str) -> bool:
    """Pure check: True if the move is allowed, False if it is a no-op; raises ValueError otherwise."""
    if current == target:
        return False
    if target not in table.get(current, frozenset()):
        raise ValueError(f"'{current}' -> '{target}' is not an allowed transition")
    return True


def apply_transition(
    instance: models.Model,
    *,
    to: str,
    table: Mapping[str, frozenset[str]],
    actor: Actor,
    reason: str = "",
    changes: dict[str, Any] | None = None,
) -> bool:
    """Move ``instance`` to status ``to``; returns False when it already had that status."""
    model = type(instance)
    with transaction.atomic():
        locked = model.objects.select_for_update().get(pk=instance.pk)
        staged = transition_stage(locked, to=to, table=table, actor=actor, reason=reason, changes=changes)
        if staged is None:
            instance.refresh_from_db()
            return False
        locked.save(update_fields=staged.fields)
        staged.event.save(force_insert=True)
    for name in staged.fields:
        setattr(instance, name, getattr(locked, name))
    return True


@dataclass(frozen=True)
class StagedTransition:
    """A move made on a row in memory: the fields to save and its audit row (unsaved)."""

    fields: list[str]
    event: Any  # AuditEvent


def transition_stage(
    locked: models.Model,
    *,
    to: str,
    table: Mapping[str, frozenset[str]],
    actor: Actor,
    reason: str = "",
    changes: dict[str, Any] | None = None,
) -> StagedTransition | None:
    """The move of ``apply_transition`` on a row the caller holds locked, in memory: sets the status, its
    ``<status>_at`` stamp and ``changes``, and returns what to save (None: already there). For callers that
    write many rows at once (the stream's bursts); everyone else uses ``apply_transition``."""
    model = type(locked)
    current = locked.status
    try:
        if not check_transition(table, current, to):
            return None
    except ValueError:
        raise InvalidTransition(locked, current, to, table.get(current, frozenset())) from None
    updates: dict[str, Any] = {"status": to, **(changes or {})}
    stamp = f"{to}_at"
    field_names = _field_names(model)
    if stamp in field_names:
        updates[stamp] = timezone.now()
    before = {name: getattr(locked, name) for name in updates}
    for name, value in updates.items():
        setattr(locked, name, value)
    fields = list(updates)
    if "updated_at" in field_names:
        locked.updated_at = timezone.now()
        fields.append("updated_at")  # auto_now fields are only written when listed
    action = f"{model._meta.model_name}.status"
    event = audit_event_new(actor=actor, action=action, instance=locked, before=before, after=updates, reason=reason)
    return StagedTransition(fields, event)


@functools.cache
def _field_names(model: type[models.Model]) -> frozenset[str]:
    return frozenset(field.name for field in model._meta.concrete_fields)
