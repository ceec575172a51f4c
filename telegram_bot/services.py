"""Whitelist and session operations, shared by the bot, the admin and the setup command."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from signals_app.models import Signal
from signals_app.pipeline import position_flatten
from telegram_bot.access import BotUser
from telegram_bot.models import BotSession, TelegramUser
from trading.audit import Actor, audit_record, snapshot
from trading.dashboard import dashboard_accounts, dashboard_snapshot
from trading.exchange.errors import ExchangeError
from trading.execution import ExecutionFailed, OutcomeUnknown
from trading.models import Position, TradingAccount
from trading.selectors import PnlSummary, day_start, pnl_summary
from trading.services import account_set_auto_trade, account_set_trading_enabled

logger = logging.getLogger(__name__)


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


class BotActionRefused(Exception):
    """A bot action that cannot be done as asked; the message is shown to the user as it is."""


def _active_account(account_id: int) -> TradingAccount:
    account = TradingAccount.objects.filter(pk=account_id, is_active=True).first()
    if account is None:
        raise BotActionRefused(f"Account {account_id} does not exist or is not active.")
    return account


def bot_auto_trade_set(*, account_id: int, enabled: bool, actor: Actor) -> bool:
    """Auto-trade of one account to ``enabled`` (idempotent: a double tap changes nothing); True if it changed."""
    return account_set_auto_trade(
        account=_active_account(account_id), enabled=enabled, actor=actor, reason="from Telegram"
    )


def bot_auto_trade_set_named(*, enabled: bool, actor: Actor, account_name: str = "") -> list[str]:
    """``/auto on|off [ACCOUNT]``: one account by name, or every active account; the names that changed."""
    accounts = TradingAccount.objects.filter(is_active=True).order_by("name")
    if account_name:
        accounts = accounts.filter(name__iexact=account_name)
        if not accounts:
            raise BotActionRefused(f"No active account named {account_name}.")
    return [
        account.name
        for account in accounts
        if account_set_auto_trade(account=account, enabled=enabled, actor=actor, reason="from Telegram")
    ]


def bot_kill_switch_set(*, stopped: bool, actor: Actor) -> list[str]:
    """The kill switch on every active account (stopped: no new entries, exits allowed); the names that changed.

    Persisted in ``TradingAccount.trading_enabled``, which the risk engine checks for every entry.
    """
    return [
        account.name
        for account in TradingAccount.objects.filter(is_active=True).order_by("name")
        if account_set_trading_enabled(
            account=account, enabled=not stopped, actor=actor, reason="kill switch from Telegram"
        )
    ]


def bot_status() -> dict:
    """The admin dashboard's snapshot (JSON-ready values), plus today's PnL and hit rate per account."""
    accounts = list(dashboard_accounts())
    view = dashboard_snapshot(accounts=accounts)
    now = timezone.now()
    since = day_start(now=now, timezone_name=settings.TIME_ZONE)
    for account, shown in zip(accounts, view["accounts"], strict=True):
        shown["today"] = pnl_summary(account=account, since=since, until=now)
    view["now"] = now
    return view


@dataclass(frozen=True)
class PeriodReport:
    title: str
    since: datetime
    until: datetime
    accounts: list[tuple[AccountLine, PnlSummary]]


REPORT_PERIODS = {"d": ("Today", 1), "w": ("Last 7 days", 7)}


def bot_report(*, period: str) -> PeriodReport:
    """``d``: today so far; ``w``: the last 7 days, today included (days start at 00:00 in TIME_ZONE)."""
    title, days = REPORT_PERIODS[period]
    now = timezone.now()
    since = day_start(now=now, timezone_name=settings.TIME_ZONE) - timedelta(days=days - 1)
    lines = {line.pk: line for line in bot_accounts()}
    accounts = TradingAccount.objects.filter(pk__in=lines).order_by("name")
    return PeriodReport(
        title=title,
        since=since,
        until=now,
        accounts=[(lines[a.pk], pnl_summary(account=a, since=since, until=now)) for a in accounts],
    )


@dataclass(frozen=True)
class WaitingSignal:
    pk: int
    account: str
    symbol: str
    action: str
    received_at: datetime
    expires_at: datetime | None


def bot_signals_waiting(*, limit: int = 20) -> list[WaitingSignal]:
    """Signals awaiting confirmation, oldest first (the first to expire)."""
    signals = (
        Signal.objects.filter(status=Signal.Status.AWAITING_CONFIRMATION, account__is_active=True)
        .select_related("account")
        .order_by("confirmation_expires_at", "received_at", "pk")[:limit]
    )
    return [
        WaitingSignal(
            pk=s.pk,
            account=s.account.name,
            symbol=s.symbol,
            action=s.action,
            received_at=s.received_at,
            expires_at=s.confirmation_expires_at,
        )
        for s in signals
    ]


@dataclass(frozen=True)
class OpenPosition:
    pk: int
    account: str
    mode: str
    symbol: str
    side: str
    qty: Decimal
    entry_price: Decimal
    mark_price: Decimal | None
    unrealized_pnl: Decimal
    leverage: int


def _open_position(position: Position) -> OpenPosition:
    return OpenPosition(
        pk=position.pk,
        account=position.account.name,
        mode=position.account.mode,
        symbol=position.symbol,
        side=position.side,
        qty=position.qty,
        entry_price=position.entry_price,
        mark_price=position.mark_price,
        unrealized_pnl=position.unrealized_pnl,
        leverage=position.leverage,
    )


def _open_positions():
    return (
        Position.objects.filter(status=Position.Status.OPEN, account__is_active=True)
        .select_related("account")
        .order_by("account__name", "symbol", "side")
    )


def bot_positions_open() -> list[OpenPosition]:
    return [_open_position(position) for position in _open_positions()]


def symbol_key(text: str) -> str:
    """``BTC``, ``btcusdt``, ``BTC-USDT``, ``BTC/USDT:USDT`` -> ``BTCUSDT``: how /close matches what was typed."""
    base_quote = text.upper().split(":")[0]
    key = "".join(character for character in base_quote if character.isalnum())
    return key if not key or key.endswith("USDT") else f"{key}USDT"


def bot_positions_matching(*, symbol: str) -> list[OpenPosition]:
    """Open positions on the symbol typed after /close, in any of the spellings ``symbol_key`` accepts."""
    wanted = symbol_key(symbol)
    if not wanted:
        raise BotActionRefused("Which symbol? For example: /close BTCUSDT")
    return [_open_position(p) for p in _open_positions() if symbol_key(p.symbol) == wanted]


def bot_position(*, position_id: int) -> OpenPosition | None:
    position = _open_positions().filter(pk=position_id).first()
    return _open_position(position) if position else None


def _digits(value: Decimal) -> str:
    return format(value.normalize(), "f")


def bot_position_close(*, position_id: int, actor: Actor) -> str:
    """Close one open position at market by hand, the way a loss breach flattens it (reduce-only, keyed on the
    position so a repeated confirmation places no second order); the outcome as one line of text."""
    position = Position.objects.select_related("account").filter(pk=position_id).first()
    if position is None or position.status != Position.Status.OPEN:
        raise BotActionRefused("That position is already closed.")
    if not position.account.is_active:
        raise BotActionRefused(f"Account {position.account.name} is not active.")
    before = {"status": position.status, "qty": _digits(position.qty)}
    try:
        report = position_flatten(position=position, actor=actor)
    except (ExchangeError, ExecutionFailed, OutcomeUnknown) as error:
        logger.error("close from Telegram: %s %s not closed: %s", position.symbol, position.side, error)
        audit_record(actor=actor, action="position.close_failed", instance=position, before=before, reason=str(error))
        raise BotActionRefused(f"Not closed: {error}") from error
    position.refresh_from_db()
    audit_record(
        actor=actor,
        action="position.close_by_hand",
        instance=position,
        before=before,
        after={"status": position.status, "qty": _digits(position.qty)},
        reason=report.summary,
    )
    return report.summary
