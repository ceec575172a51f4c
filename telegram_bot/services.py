"""Whitelist and session operations, shared by the bot, the admin and the setup command."""

from __future__ import annotations

from django.db import transaction

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
