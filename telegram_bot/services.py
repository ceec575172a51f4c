"""Whitelist and session operations, shared by the bot, the admin and the setup command."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from telegram_bot.access import BotUser
from telegram_bot.models import BotSession, TelegramUser
from trading.audit import Actor, audit_record, snapshot
from trading.models import TradingAccount


def telegram_users_bootstrap_admins(*, telegram_ids: list[int], actor: Actor) -> list[TelegramUser]:
    """Make sure each id in TELEGRAM_ADMIN_IDS is a whitelisted admin; returns the ones created or changed.

    An id the admin deliberately deactivated or demoted stays as it is: the environment only seeds.
    """
    touched = []
    with transaction.atomic():
        for telegram_id in telegram_ids:
            user, created = TelegramUser.objects.get_or_create(
                telegram_id=telegram_id, defaults={"role": TelegramUser.Role.ADMIN}
            )
            if created:
                audit_record(actor=actor, action="telegramuser.created", instance=user, after=snapshot(user))
                touched.append(user)
    return touched


def bot_session_ensure_default(*, name: str, account: TradingAccount, actor: Actor) -> BotSession:
    with transaction.atomic():
        session, created = BotSession.objects.get_or_create(name=name, defaults={"account": account})
        if created:
            audit_record(actor=actor, action="botsession.created", instance=session, after=snapshot(session))
    return session


# --- bot core: the gate ---------------------------------------------------------------------------


def telegram_user_seen(*, telegram_id: int, username: str = "") -> BotUser | None:
    """The active whitelisted user with this Telegram id as a ``BotUser`` (last_seen_at updated), else None."""
    user = TelegramUser.objects.filter(telegram_id=telegram_id, is_active=True).first()
    if user is None:
        return None
    TelegramUser.objects.filter(pk=user.pk).update(last_seen_at=timezone.now())
    return BotUser(telegram_id=user.telegram_id, username=user.username or username, role=user.role, pk=user.pk)


# --- bot core: screens (plain values: async handlers must not touch model instances) --------------


@dataclass(frozen=True)
class AccountLine:
    pk: int
    name: str
    mode: str
    mode_label: str
    auto_trade: bool
    trading_enabled: bool


def bot_accounts() -> list[AccountLine]:
    """The active trading accounts, as the menus show them."""
    return [
        AccountLine(
            pk=account.pk,
            name=account.name,
            mode=account.mode,
            mode_label=account.get_mode_display(),
            auto_trade=account.auto_trade,
            trading_enabled=account.trading_enabled,
        )
        for account in TradingAccount.objects.filter(is_active=True).order_by("name")
    ]
