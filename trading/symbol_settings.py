"""Margin mode and leverage of one symbol on BingX, made to match what the platform wants.

Order matters on BingX: margin mode first, then leverage, for the one side (one-way mode: BOTH) or for
LONG and SHORT (hedge mode). When a step fails, the steps already done are undone in reverse order and
the caller gets BingX's reason. The result and time go on the symbol's profile. Called before every
entry, by the admin action, by ``manage.py sync_symbol_settings`` and (later) the Telegram dialog.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone

from trading.audit import Actor, audit_record
from trading.exchange.client import BingXClient, client_for
from trading.exchange.errors import ExchangeError, ExchangeRejected
from trading.models import PositionMode, SymbolProfile, TradingAccount

logger = logging.getLogger(__name__)


class SymbolSettingsFailed(Exception):
    """BingX refused a step; what had been changed was restored (or the message says it could not be)."""


@dataclass
class SymbolSettingsResult:
    symbol: str
    margin_mode: str
    leverage_long: int | None
    leverage_short: int | None
    changed: list[str] = field(default_factory=list)

    def describe(self) -> str:
        leverage = (
            f"{self.leverage_long}x"
            if self.leverage_long == self.leverage_short
            else f"long {self.leverage_long}x / short {self.leverage_short}x"
        )
        done = f"; changed {', '.join(self.changed)}" if self.changed else "; already as wanted"
        return f"{self.symbol}: {self.margin_mode}, {leverage}{done}"


def _sides(account: TradingAccount) -> tuple[str, ...]:
    return ("LONG", "SHORT") if account.position_mode == PositionMode.HEDGE else ("BOTH",)


def symbol_settings_ensure(
    *,
    account: TradingAccount,
    symbol: str,
    margin_mode: str,
    leverage: int,
    actor: Actor,
    client: BingXClient | None = None,
    profile: SymbolProfile | None = None,
    record_always: bool = False,
) -> SymbolSettingsResult:
    """Set margin mode then leverage where BingX's differ; roll back and raise on a refusal.

    The profile records every failure and every change; an entry that found everything as wanted does not
    write (it runs before each order), an explicit sync (``record_always``) does.
    """
    client = client or client_for(account)
    profile = profile or SymbolProfile.objects.filter(account=account, symbol=symbol).first()
    undo: list[tuple[str, str, object]] = []  # (what, side, previous value), in the order done
    try:
        current_mode = client.margin_mode(symbol)
        current = client.leverage(symbol)
        if current_mode != margin_mode:
            client.set_margin_mode(symbol, margin_mode)
            undo.append(("margin mode", "", current_mode))
        for side in _sides(account):
            previous = current.short if side == "SHORT" else current.long
            differs = previous != leverage or (side == "BOTH" and current.short != leverage)
            if differs:
                client.set_leverage(symbol, side=side, leverage=leverage)
                undo.append(("leverage", side, previous))
    except ExchangeError as error:
        restored = _roll_back(client, symbol, undo)
        refused = isinstance(error, ExchangeRejected)
        message = f"{symbol}: {'BingX refused' if refused else 'BingX unreachable'} ({error}); {restored}"
        _record(profile, ok=False, text=message, actor=actor)
        if refused:
            raise SymbolSettingsFailed(message) from error
        raise type(error)(message, code=error.code) from error  # a fault, not a decision: the caller fails
    if not undo:  # nothing changed: what was read is the state, no need to read it again
        result = SymbolSettingsResult(symbol, current_mode, current.long, current.short)
    else:
        read_back = client.leverage(symbol)
        result = SymbolSettingsResult(
            symbol,
            client.margin_mode(symbol),
            read_back.long,
            read_back.short,
            changed=[f"{what} {side}".strip() for what, side, _ in undo],
        )
    if undo or record_always or (profile is not None and not profile.last_sync_ok):
        _record(profile, ok=True, text=result.describe(), actor=actor)
    return result


def _roll_back(client: BingXClient, symbol: str, undo: list[tuple[str, str, object]]) -> str:
    if not undo:
        return "nothing had been changed"
    failures = []
    for what, side, previous in reversed(undo):
        try:
            if what == "leverage" and previous is not None:
                client.set_leverage(symbol, side=side, leverage=int(previous))
            elif what == "margin mode":
                client.set_margin_mode(symbol, str(previous))
        except ExchangeError as error:
            failures.append(f"{what} {side} back to {previous}: {error}".replace("  ", " "))
    if failures:
        logger.error("%s: roll-back incomplete: %s", symbol, "; ".join(failures))
        return "ROLL-BACK INCOMPLETE, check BingX: " + "; ".join(failures)
    restored = ", ".join(f"{what} {side} {previous}".replace("  ", " ") for what, side, previous in reversed(undo))
    return f"restored {restored}"


def _record(profile: SymbolProfile | None, *, ok: bool, text: str, actor: Actor) -> None:
    if profile is None:
        return
    with transaction.atomic():
        profile.last_synced_at, profile.last_sync_ok, profile.last_sync_result = timezone.now(), ok, text
        profile.save(update_fields=["last_synced_at", "last_sync_ok", "last_sync_result", "updated_at"])
        audit_record(actor=actor, action="symbolprofile.exchange_sync", instance=profile, after={"ok": ok}, reason=text)


def symbol_profile_sync(*, profile: SymbolProfile, actor: Actor) -> SymbolSettingsResult:
    """Push one profile's margin mode and leverage to BingX (admin action, command, bot)."""
    return symbol_settings_ensure(
        account=profile.account,
        symbol=profile.symbol,
        margin_mode=profile.margin_mode,
        leverage=profile.leverage,
        actor=actor,
        profile=profile,
        record_always=True,
    )


def account_position_mode_sync(*, account: TradingAccount, actor: Actor, client: BingXClient | None = None) -> str:
    """Make BingX's position mode (one-way / hedge) the account's; BingX refuses while positions are open."""
    client = client or client_for(account)
    wanted = account.position_mode == PositionMode.HEDGE
    if client.hedge_mode() == wanted:
        return f"position mode already {account.get_position_mode_display()}"
    client.set_hedge_mode(wanted)
    audit_record(
        actor=actor,
        action="tradingaccount.position_mode_synced",
        instance=account,
        after={"position_mode": account.position_mode},
    )
    return f"position mode set to {account.get_position_mode_display()}"
