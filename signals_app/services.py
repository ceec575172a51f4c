"""Business operations on signals, shared by the webhook, tasks, the bot and the admin."""

from __future__ import annotations

from signals_app.models import Signal
from signals_app.rules import SIGNAL_TRANSITIONS
from trading.audit import Actor
from trading.transitions import apply_transition


def signal_transition(*, signal: Signal, to: str, actor: Actor, reason: str = "", changes: dict | None = None) -> bool:
    """Move a signal to another stage (stamping ``<stage>_at``); a rejection stores its reason."""
    changes = dict(changes or {})
    if to in (Signal.Status.REJECTED, Signal.Status.FAILED, Signal.Status.EXPIRED) and reason:
        changes.setdefault("rejection_reason", reason)
    return apply_transition(signal, to=to, table=SIGNAL_TRANSITIONS, actor=actor, reason=reason, changes=changes)
