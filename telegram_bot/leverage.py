"""Margin mode and leverage of a whitelisted symbol, changed from Telegram (the "Margin & Leverage" dialog).

Plain sync services returning plain values (the dialog calls them through ``telegram_bot.db.db``). The new
settings go to BingX first (``trading.symbol_settings.symbol_settings_ensure``: margin mode, then leverage,
undone in reverse order when BingX refuses a step); only when BingX took them are they stored on the
symbol's profile, with an audit row. So a refusal leaves BingX and the profile as they were, and the
reply shows what BingX reports afterwards.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.db import transaction

from telegram_bot.access import BotUser, actor_of
from trading.audit import audit_record
from trading.exchange.errors import ExchangeError
from trading.markets import UnknownSymbol, markets_catalog
from trading.models import MarginMode, SymbolProfile, TradingAccount, TradingMode
from trading.selectors import risk_limits_get
from trading.symbol_settings import SymbolSettingsFailed, symbol_settings_ensure
from tvbingx.config import MAX_EXCHANGE_LEVERAGE

PAGE_SIZE = 8


class LeverageInvalid(ValueError):
    """The choice or the typed value cannot be used; the message says why (nothing was changed)."""


@dataclass(frozen=True)
class AccountChoice:
    pk: int
    name: str
    mode: str


@dataclass(frozen=True)
class SymbolPage:
    symbols: list[str]
    page: int
    pages: int


@dataclass(frozen=True)
class LeverageRange:
    """What leverage the symbol may have on this account, and which limit sets the top."""

    symbol: str
    maximum: int
    exchange_max: int | None  # BingX's maximum for the market (None: not published)
    account_max: int  # the account's risk limits
    profile_max: int  # the symbol profile's own maximum
    margin_mode: str  # the profile's current settings
    leverage: int

    def describe(self) -> str:
        parts = []
        if self.exchange_max:
            parts.append(f"BingX allows {self.exchange_max}x")
        parts.append(f"the account's limit is {self.account_max}x")
        parts.append(f"the symbol's limit is {self.profile_max}x")
        return f"1 to {self.maximum} ({', '.join(parts)})"


@dataclass(frozen=True)
class LeverageOutcome:
    ok: bool
    text: str


def leverage_accounts() -> list[AccountChoice]:
    return [
        AccountChoice(account.pk, account.name, account.mode)
        for account in TradingAccount.objects.filter(is_active=True).order_by("name")
    ]


def _account(account_id: int) -> TradingAccount:
    account = TradingAccount.objects.filter(pk=account_id, is_active=True).first()
    if account is None:
        raise LeverageInvalid("That account no longer exists or is inactive.")
    return account


def leverage_symbols(*, account_id: int, page: int = 0) -> SymbolPage:
    """One page of the account's whitelisted symbols (enabled profiles), in name order."""
    symbols = list(
        SymbolProfile.objects.filter(account_id=account_id, enabled=True)
        .order_by("symbol")
        .values_list("symbol", flat=True)
    )
    pages = max(1, -(-len(symbols) // PAGE_SIZE))
    page = min(max(page, 0), pages - 1)
    return SymbolPage(symbols[page * PAGE_SIZE : (page + 1) * PAGE_SIZE], page, pages)


def _profile(account_id: int, symbol: str) -> SymbolProfile:
    profile = SymbolProfile.objects.filter(account_id=account_id, symbol=symbol, enabled=True).first()
    if profile is None:
        raise LeverageInvalid(f"{symbol} is not whitelisted for this account; whitelist it in the admin first.")
    return profile


def leverage_symbol_resolve(*, account_id: int, text: str) -> str:
    """The whitelisted symbol a typed name means (``BTCUSDT``, ``BTC-USDT``, ``BTC/USDT:USDT``...)."""
    cleaned = text.strip()
    if not cleaned or len(cleaned) > 40 or not re.fullmatch(r"[A-Za-z0-9:/._\-]+", cleaned):
        raise LeverageInvalid(f"“{cleaned[:40]}” is not a symbol name; type one like BTCUSDT.")
    try:
        symbol = markets_catalog().resolve(cleaned).symbol
    except UnknownSymbol as error:
        raise LeverageInvalid(str(error)) from None
    return _profile(account_id, symbol).symbol


def leverage_range(*, account_id: int, symbol: str) -> LeverageRange:
    account = _account(account_id)
    profile = _profile(account_id, symbol)
    try:
        exchange_max = markets_catalog().resolve(symbol).rules.max_leverage
    except UnknownSymbol as error:
        raise LeverageInvalid(str(error)) from None
    account_max = risk_limits_get(account=account).max_leverage
    maximum = min(exchange_max or MAX_EXCHANGE_LEVERAGE, account_max, profile.max_leverage)
    return LeverageRange(
        symbol=symbol,
        maximum=maximum,
        exchange_max=exchange_max,
        account_max=account_max,
        profile_max=profile.max_leverage,
        margin_mode=profile.margin_mode,
        leverage=profile.leverage,
    )


def parse_leverage(text: str, allowed: LeverageRange) -> int:
    cleaned = text.strip().lower().removesuffix("x").strip()
    if not re.fullmatch(r"\d{1,4}", cleaned):
        raise LeverageInvalid(
            f"“{text.strip()[:40]}” is not a whole number; type a leverage from {allowed.describe()}."
        )
    value = int(cleaned)
    if not 1 <= value <= allowed.maximum:
        raise LeverageInvalid(f"{value}x is out of range: type a leverage from {allowed.describe()}.")
    return value


def leverage_apply(
    *, account_id: int, symbol: str, margin_mode: str, leverage: int, bot_user: BotUser
) -> LeverageOutcome:
    """Set the symbol's margin mode and leverage on BingX, then on its profile; a refusal changes neither.

    The range is checked again here (limits may have changed while the dialog was open)."""
    if margin_mode not in MarginMode.values:
        raise LeverageInvalid(f"Unknown margin mode {margin_mode!r}.")
    allowed = leverage_range(account_id=account_id, symbol=symbol)
    if not 1 <= leverage <= allowed.maximum:
        raise LeverageInvalid(f"{leverage}x is out of range: {allowed.describe()}.")
    account = _account(account_id)
    profile = _profile(account_id, symbol)
    actor = actor_of(bot_user)
    before = {"margin_mode": profile.margin_mode, "leverage": profile.leverage}
    after = {"margin_mode": margin_mode, "leverage": leverage}
    if account.mode == TradingMode.DRY_RUN:
        exchange_text = "dry-run account: nothing sent to BingX"
    else:
        try:
            result = symbol_settings_ensure(
                account=account,
                symbol=symbol,
                margin_mode=margin_mode,
                leverage=leverage,
                actor=actor,
                profile=profile,
                record_always=True,
            )
        except (SymbolSettingsFailed, ExchangeError) as error:
            return LeverageOutcome(False, f"Not changed: {error}")
        exchange_text = f"BingX now reports {result.describe()}"
    with transaction.atomic():
        locked = SymbolProfile.objects.select_for_update().get(pk=profile.pk)
        locked.margin_mode, locked.leverage = margin_mode, leverage
        locked.save(update_fields=["margin_mode", "leverage", "updated_at"])
        audit_record(
            actor=actor,
            action="symbolprofile.margin_leverage_set",
            instance=locked,
            before=before,
            after=after,
            reason=f"Margin & Leverage in Telegram; {exchange_text}",
        )
    return LeverageOutcome(True, f"Saved {symbol} on {account.name}: {margin_mode}, {leverage}x.\n{exchange_text}.")
