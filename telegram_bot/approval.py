"""Manual approval from Telegram: approve, reject and edit a waiting signal, and keep its cards up to date.

Plain sync services (the bot calls them through ``telegram_bot.db.db``); they return plain values, never
model instances, so the async handlers never touch the ORM. Approve and reject go through
``signals_app.pipeline`` (risk re-checked, executed on the exchange); an edit is checked by the same risk
engine (``plan_build``) without trading and is stored on the signal with an audit row only when it passes.
Every card of the signal (one per chat, ``SignalCard``) is then re-rendered; a card whose signal is final
(executed, rejected, failed, expired) loses its buttons and is closed.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from django.db import transaction
from django.utils import timezone

from signals_app.models import Signal
from signals_app.pipeline import SignalRejected, plan_build, signal_approve, signal_reject, signals_expire_due
from telegram_bot.access import BotUser, actor_of
from telegram_bot.cards import (
    CardView,
    OrderResult,
    number,
    signal_card_final_view,
    signal_card_is_editable,
    signal_card_is_final,
    signal_card_view,
)
from telegram_bot.models import SignalCard, TelegramUser
from telegram_bot.notifications.outbox import signal_card_record
from trading.audit import audit_record
from trading.models import AuditEvent
from trading.transitions import InvalidTransition
from tvbingx.config import MAX_EXCHANGE_LEVERAGE

logger = logging.getLogger(__name__)
S = Signal.Status
MAX_TP_LEVELS = 6
HUNDRED = Decimal("100")
EDIT_FIELDS = ("q", "sl", "tp", "lev")
EDIT_PROMPTS = {
    "q": "Type the new quantity (in the base asset, e.g. 0.01).",
    "sl": "Type the new stop-loss price (e.g. 64000).",
    "tp": (
        "Type the take-profit prices, separated by spaces (e.g. 66000 67000), split evenly, "
        "or each with its share in % (e.g. 66000:50 67000:50)."
    ),
    "lev": f"Type the new leverage, a whole number from 1 to {MAX_EXCHANGE_LEVERAGE}.",
}
EDIT_LABELS = {"q": "qty", "sl": "stop loss", "tp": "take profit", "lev": "leverage"}


class EditInvalid(ValueError):
    """What the trader typed cannot be used; the message says why (nothing was changed)."""


@dataclass(frozen=True)
class CardTarget:
    """A message showing a signal's card, to edit."""

    card_pk: int | None  # None: a message not (yet) registered as a SignalCard
    chat_id: int
    message_id: int


@dataclass(frozen=True)
class CardUpdate:
    """What to show on every card of one signal after something happened to it."""

    signal_id: int
    view: CardView
    final: bool
    targets: list[CardTarget] = field(default_factory=list)
    answer: str = ""  # the short answer to the button press (a toast), or the reply to a typed edit
    alert: bool = False  # show ``answer`` as a dialog the user must dismiss (refusals)


# --- cards -----------------------------------------------------------------------------------------


def signal_card_remember(*, signal: Signal, telegram_user: TelegramUser, chat_id: int, message_id: int) -> SignalCard:
    """Note where a signal's card, rendered as it is now, was sent (a re-sent card replaces the older one)."""
    return signal_card_record(
        signal_id=signal.pk,
        telegram_user_id=telegram_user.pk,
        chat_id=chat_id,
        message_id=message_id,
        state=SignalCard.State.CLOSED if signal_card_is_final(signal) else SignalCard.State.OPEN,
    )


def signal_card_render(signal: Signal, *, note: str = "") -> CardView:
    """The card for the signal as it is now: buttons while waiting, else the final card with its orders
    and who decided (the same card whoever renders it: a button handler or the refresh job)."""
    if signal.status == S.AWAITING_CONFIRMATION:
        return signal_card_view(signal, note=note)
    orders = [OrderResult.from_order(order) for order in signal.orders.order_by("created_at", "id")]
    return signal_card_final_view(signal, orders=orders, actor_label=_decided_by(signal))


def _decided_by(signal: Signal) -> str:
    """Who approved or rejected the waiting signal, from its audit trail ("" for the platform itself)."""
    decision = (
        AuditEvent.objects.filter(
            object_type=Signal._meta.label_lower,
            object_id=str(signal.pk),
            action="signal.status",
            after__status__in=[S.APPROVED, S.REJECTED],
        )
        .order_by("id")
        .first()
    )
    if decision is None or decision.actor_type == AuditEvent.ActorType.SYSTEM:
        return ""
    if decision.actor_type == AuditEvent.ActorType.TELEGRAM:
        return f"@{decision.actor_label}" if decision.actor_label else decision.actor_id
    return decision.actor_label or decision.actor_id


def _targets(signal: Signal) -> list[CardTarget]:
    return [
        CardTarget(card.pk, card.chat_id, card.message_id)
        for card in SignalCard.objects.filter(signal=signal, state=SignalCard.State.OPEN).order_by("id")
    ]


def _update(signal: Signal, *, answer: str = "", alert: bool = False, note: str = ""):
    # As it is now, with its account (the card names it): refresh_from_db would drop the cached account.
    signal = Signal.objects.select_related("account").get(pk=signal.pk)
    return CardUpdate(
        signal_id=signal.pk,
        view=signal_card_render(signal, note=note),
        final=signal_card_is_final(signal),
        targets=_targets(signal),
        answer=answer,
        alert=alert,
    )


def signal_card_get(*, signal_id: int) -> CardUpdate:
    """The current card of a signal (``sig:v:<id>``: re-send it); ``answer`` says so when it is not found."""
    signal = Signal.objects.select_related("account").filter(pk=signal_id).first()
    if signal is None:
        raise EditInvalid(f"Signal {signal_id} does not exist.")
    _expire_if_due(signal)
    return _update(signal)


def signal_card_shown(*, signal_id: int, bot_user: BotUser, chat_id: int, message_id: int) -> None:
    """A card was (re-)sent to this chat: remember it so it is edited when the signal changes."""
    signal = Signal.objects.get(pk=signal_id)
    telegram_user = TelegramUser.objects.get(pk=bot_user.pk)
    signal_card_remember(signal=signal, telegram_user=telegram_user, chat_id=chat_id, message_id=message_id)


def signal_cards_edited(*, card_pks: list[int], final: bool) -> int:
    """The cards were edited; a final card is closed (never edited again). Returns how many were closed."""
    if not final or not card_pks:
        return 0
    return SignalCard.objects.filter(pk__in=card_pks, state=SignalCard.State.OPEN).update(
        state=SignalCard.State.CLOSED, updated_at=timezone.now()
    )


def signal_cards_refresh_due() -> list[CardUpdate]:
    """Cards still showing buttons for a signal that no longer waits (expired, or handled elsewhere: the
    admin, another process): what each must show now. Expires due signals first, so an expired card
    says so within one run even when no worker sweeps."""
    signals_expire_due()
    stale = (
        Signal.objects.filter(telegram_cards__state=SignalCard.State.OPEN)
        .exclude(status=S.AWAITING_CONFIRMATION)
        .select_related("account")
        .distinct()
    )
    return [_update(signal) for signal in stale]


# --- approve / reject ----------------------------------------------------------------------------


def _waiting(signal_id: int) -> tuple[Signal | None, str]:
    """The signal if it still awaits confirmation, else why not (already handled / expired / unknown)."""
    signal = Signal.objects.select_related("account").filter(pk=signal_id).first()
    if signal is None:
        return None, f"Signal {signal_id} does not exist."
    _expire_if_due(signal)
    if signal.status == S.AWAITING_CONFIRMATION:
        return signal, ""
    if signal.status == S.EXPIRED:
        return signal, f"Expired at {signal.expired_at or signal.confirmation_expires_at:%H:%M:%S} UTC."
    return signal, f"Already handled: {signal.get_status_display().lower()}."


def _expire_if_due(signal: Signal) -> None:
    if (
        signal.status == S.AWAITING_CONFIRMATION
        and signal.confirmation_expires_at
        and signal.confirmation_expires_at <= timezone.now()
    ):
        signals_expire_due()
        signal.refresh_from_db()


def _label(bot_user: BotUser) -> str:
    return f"@{bot_user.username}" if bot_user.username else str(bot_user.telegram_id)


def signal_card_approve(*, signal_id: int, bot_user: BotUser) -> CardUpdate:
    """Approve: the risk checks run again, then the order goes to the exchange (or the dry run); the card
    shows what the exchange did. A refusal leaves the signal waiting (risk) or rejected (exchange)."""
    signal, refusal = _waiting(signal_id)
    if signal is None:
        raise EditInvalid(refusal)
    if refusal:
        return _update(signal, answer=refusal, alert=True)
    try:
        signal_approve(signal=signal, actor=actor_of(bot_user))
    except SignalRejected as rejection:
        signal.refresh_from_db()
        if signal.status == S.AWAITING_CONFIRMATION:  # the risk checks refused it now; nothing traded
            return _update(signal, answer=f"Not approved: {rejection}", alert=True)
        return _update(signal, answer=f"Rejected: {rejection}", alert=True)
    except InvalidTransition:  # handled elsewhere (the sweeper, the admin) at the same moment
        signal.refresh_from_db()
        return _update(signal, answer=f"Already handled: {signal.get_status_display().lower()}.", alert=True)
    signal.refresh_from_db()
    answers = {
        S.EXECUTED: "Approved: executed.",
        S.FAILED: f"Approved, but it failed: {signal.rejection_reason}",
        S.EXECUTING: "Approved: the outcome is being confirmed with the exchange.",
    }
    answer = answers.get(signal.status, f"Approved: {signal.get_status_display().lower()}.")
    return _update(signal, answer=answer, alert=signal.status == S.FAILED)


def signal_card_reject(*, signal_id: int, bot_user: BotUser) -> CardUpdate:
    signal, refusal = _waiting(signal_id)
    if signal is None:
        raise EditInvalid(refusal)
    if refusal:
        return _update(signal, answer=refusal, alert=True)
    label = _label(bot_user)
    try:
        signal_reject(signal=signal, actor=actor_of(bot_user), reason=f"rejected in Telegram by {label}")
    except InvalidTransition:
        signal.refresh_from_db()
        return _update(signal, answer=f"Already handled: {signal.get_status_display().lower()}.", alert=True)
    return _update(signal, answer="Rejected.")


# --- edits ---------------------------------------------------------------------------------------


def _decimal(text: str, what: str) -> Decimal:
    cleaned = text.strip().replace(",", ".") if text.count(",") == 1 and "." not in text else text.strip()
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise EditInvalid(f"“{text.strip()[:40]}” is not a number; type the {what} like 0.01.") from None
    if not value.is_finite() or value <= 0:
        raise EditInvalid(f"The {what} must be a number above 0.")
    return value


def parse_qty(text: str) -> Decimal:
    return _decimal(text, "quantity")


def parse_price(text: str) -> Decimal:
    return _decimal(text, "price")


def parse_leverage(text: str, *, maximum: int = MAX_EXCHANGE_LEVERAGE) -> int:
    cleaned = text.strip().lower().removesuffix("x").strip()
    if not re.fullmatch(r"\d{1,4}", cleaned):
        raise EditInvalid(f"“{text.strip()[:40]}” is not a whole number; type the leverage like 10.")
    value = int(cleaned)
    if not 1 <= value <= maximum:
        raise EditInvalid(f"Leverage must be from 1 to {maximum}; {value} is outside.")
    return value


def parse_tp_levels(text: str) -> list[dict]:
    """``66000 67000`` (equal shares) or ``66000:50 67000:50`` (price:share %): up to six levels."""
    tokens = [token for token in re.split(r"[\s,;]+", text.strip()) if token]
    if not tokens:
        raise EditInvalid("Type at least one take-profit price.")
    if len(tokens) > MAX_TP_LEVELS:
        raise EditInvalid(f"At most {MAX_TP_LEVELS} take-profit levels; you typed {len(tokens)}.")
    prices, shares = [], []
    for token in tokens:
        price_text, _, share_text = token.partition(":")
        prices.append(_decimal(price_text, "take-profit price"))
        shares.append(_decimal(share_text.rstrip("%"), "take-profit share") if share_text else None)
    if any(share is None for share in shares) and any(share is not None for share in shares):
        raise EditInvalid("Give a share (price:%) for every level, or for none of them.")
    if shares[0] is None:
        each = (HUNDRED / len(prices)).quantize(Decimal("0.01"))
        shares = [each] * (len(prices) - 1) + [HUNDRED - each * (len(prices) - 1)]
    if sum(shares) != HUNDRED:
        raise EditInvalid(f"The shares add up to {sum(shares).normalize():f}%; they must add up to 100%.")
    return [{"price": str(price), "size_pct": str(share)} for price, share in zip(prices, shares, strict=True)]


def _edit_changes(field_code: str, text: str) -> dict:
    if field_code == "q":
        return {"size_mode": "qty", "size_value": parse_qty(text)}
    if field_code == "sl":
        return {"sl_price": parse_price(text), "sl_pct": None}
    if field_code == "tp":
        return {"tp_levels": parse_tp_levels(text)}
    if field_code == "lev":
        return {"leverage": parse_leverage(text)}
    raise EditInvalid(f"Unknown field {field_code!r}.")


def signal_card_edit(*, signal_id: int, field_code: str, text: str, bot_user: BotUser) -> CardUpdate:
    """Change qty (``q``), stop loss (``sl``), take profits (``tp``) or leverage (``lev``) of a waiting signal.

    The typed value is parsed (``EditInvalid`` when it cannot be), then the whole trade is worked out again
    and risk-checked as it would be on approval, without trading. Only a plan that passes is stored, with
    its audit row; a refusal changes nothing and raises ``EditInvalid`` with the risk engine's reason.
    """
    changes = _edit_changes(field_code, text)
    signal, refusal = _waiting(signal_id)
    if signal is None:
        raise EditInvalid(refusal)
    if refusal:
        return _update(signal, answer=f"Not changed. {refusal}", alert=True)
    if not signal_card_is_editable(signal):
        raise EditInvalid(f"A {signal.get_action_display().lower()} signal has no {EDIT_LABELS[field_code]} to edit.")
    actor = actor_of(bot_user)
    with transaction.atomic():
        locked = Signal.objects.select_for_update().select_related("account").get(pk=signal_id)
        if locked.status != S.AWAITING_CONFIRMATION:
            return _update(locked, answer=f"Not changed. Already handled: {locked.get_status_display().lower()}.")
        before = {name: getattr(locked, name) for name in changes}
        old_plan = dict(locked.extras.get("plan") or {})
        for name, value in changes.items():
            setattr(locked, name, value)
        try:
            plan = plan_build(locked, locked.account)
        except SignalRejected as rejection:
            raise EditInvalid(f"Not changed: {rejection}") from None
        if not plan.risk.passed:
            raise EditInvalid(f"Not changed, the risk checks refuse it: {plan.risk.reason}")
        new_plan = plan.describe()
        locked.extras = {**locked.extras, "plan": new_plan}
        locked.save(update_fields=[*changes, "extras", "updated_at"])
        audit_record(
            actor=actor,
            action="signal.edited",
            instance=locked,
            before={**before, "plan": old_plan},
            after={**changes, "plan": new_plan},
            reason=f"{EDIT_LABELS[field_code]} edited in Telegram",
        )
    note = f"{EDIT_LABELS[field_code]} changed by {_label(bot_user)}: {_change_text(field_code, old_plan, new_plan)}"
    return _update(locked, answer=f"Changed. {note}", note=note)


def _change_text(field_code: str, old: dict, new: dict) -> str:
    def legs(plan: dict, prefix: str) -> str:
        prices = [leg["trigger"] for leg in plan.get("protective") or [] if leg["purpose"].startswith(prefix)]
        return " ".join(number(price) for price in prices) or "none"

    if field_code == "q":
        return f"{number(old.get('qty'))} → {number(new.get('qty'))}"
    if field_code == "lev":
        return f"{old.get('leverage', '-')}x → {new.get('leverage', '-')}x"
    prefix = "stop_loss" if field_code == "sl" else "take_profit_"
    return f"{legs(old, prefix)} → {legs(new, prefix)}"
